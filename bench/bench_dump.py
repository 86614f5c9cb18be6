#!/usr/bin/env python3
"""`dump --format waldump` and `--format parquet` beside pg_waldump on the same >= 200 MB of
pgbench WAL, with --jobs 1 and 2: MB/s, records/s, peak RSS, ratio to pg_waldump's text.

    python bench/bench_dump.py [--major 15] [--mb 200]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from common import ROOT, pgbench_wal, pgbin, size_mb, timed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    wal = pgbench_wal(args.major, args.mb)
    segs = sorted(p.name for p in wal.iterdir() if len(p.name) == 24)
    mb = size_mb(wal)
    waldump = str(pgbin.tool(args.major, "pg_waldump"))
    with subprocess.Popen([waldump, "-p", str(wal), segs[0], segs[-1]], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:  # streamed: keep this process small
        n = sum(1 for _ in proc.stdout)  # type: ignore[union-attr]
    t_ref, rss_ref = timed([waldump, "-p", str(wal), segs[0], segs[-1]])
    print(f"WAL: {mb:.0f} MB, {len(segs)} segments, {n} records (PostgreSQL {args.major} pgbench)")
    print(f"{'tool':44s} {'seconds':>8} {'k rec/s':>8} {'MB/s':>7} {'peak RSS':>9} {'ratio':>6}")
    print(f"{'pg_waldump > /dev/null':44s} {t_ref:8.2f} {n / t_ref / 1000:8.0f} {mb / t_ref:7.1f} "
          f"{rss_ref / 1024:7.0f}MB {1.0:6.2f}")
    xl = [sys.executable, "-m", "xlogtools.cli", "dump", str(wal)]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("waldump", "parquet"):
            for jobs in (1, 2):
                out = os.path.join(tmp, f"out.{fmt}")
                t, rss = timed([*xl, "--format", fmt, "-o", out, "--jobs", str(jobs),
                                "--no-progress"])
                name = f"xlogtools dump --format {fmt} --jobs {jobs}"
                print(f"{name:44s} {t:8.2f} {n / t / 1000:8.0f} {mb / t:7.1f} {rss / 1024:7.0f}MB "
                      f"{t_ref / t:6.2f}")
    print("(peak RSS of --jobs 2 is the largest single process, not the sum)")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
