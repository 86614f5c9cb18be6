#!/usr/bin/env python3
"""`dump --format waldump`, `jsonl` and `parquet` beside pg_waldump on the same >= 200 MB of
pgbench WAL, with --jobs 1 and 2: seconds (median of --runs), MB/s, records/s, peak RSS, the
speed ratio to pg_waldump's text (> 1: faster) and --jobs 2 over --jobs 1. Text formats are
written to /dev/null (as pg_waldump's text is), Parquet to a file.

    python bench/bench_dump.py [--major 15] [--mb 200] [--runs 3] [--formats waldump,jsonl,parquet]
                               [--case pgbench|fpi]

Not a test: nothing is asserted. On a shared machine the numbers are indicative only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from common import ROOT, pgbench_wal, pgbin, size_mb, timed


def median_run(argv: list[str], runs: int) -> tuple[float, int]:
    """Median wall seconds and the largest peak RSS (kB) of `runs` runs of argv."""
    got = [timed(argv) for _ in range(runs)]
    return statistics.median(t for t, _ in got), max(r for _, r in got)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--formats", default="waldump,jsonl,parquet")
    ap.add_argument("--case", choices=("pgbench", "fpi"), default="pgbench",
                    help="fpi: WAL of pgbench right after checkpoints (mostly full-page images)")
    args = ap.parse_args()
    wal = pgbench_wal(args.major, args.mb, kind=args.case)
    segs = sorted(p.name for p in wal.iterdir() if len(p.name) == 24)
    mb = size_mb(wal)
    waldump = str(pgbin.tool(args.major, "pg_waldump"))
    with subprocess.Popen([waldump, "-p", str(wal), segs[0], segs[-1]], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:  # streamed: keep this process small
        n = sum(1 for _ in proc.stdout)  # type: ignore[union-attr]
    t_ref, rss_ref = median_run([waldump, "-p", str(wal), segs[0], segs[-1]], args.runs)
    print(f"WAL: {mb:.0f} MB, {len(segs)} segments, {n} records (PostgreSQL {args.major} "
          f"{'pgbench' if args.case == 'pgbench' else 'pgbench after checkpoints'}); "
          f"medians of {args.runs} runs")
    print(f"{'tool':44s} {'seconds':>8} {'k rec/s':>8} {'MB/s':>7} {'peak RSS':>9} {'ratio':>6} "
          f"{'j2/j1':>6}")
    print(f"{'pg_waldump > /dev/null':44s} {t_ref:8.2f} {n / t_ref / 1000:8.0f} {mb / t_ref:7.1f} "
          f"{rss_ref / 1024:7.0f}MB {1.0:6.2f}")
    xl = [sys.executable, "-m", "xlogtools.cli", "dump", str(wal)]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            one = None
            for jobs in (1, 2):
                # text goes to /dev/null as pg_waldump's does (1.5 GB of jsonl written to a
                # slow disk measures the disk); parquet to a file
                out = os.path.join(tmp, f"out.{fmt}") if fmt == "parquet" else os.devnull
                t, rss = median_run([*xl, "--format", fmt, "-o", out, "--jobs", str(jobs),
                                     "--no-progress"], args.runs)
                one = t if jobs == 1 else one
                scale = f"{one / t:6.2f}" if jobs == 2 and one else ""
                name = f"xlogtools dump --format {fmt} --jobs {jobs}"
                print(f"{name:44s} {t:8.2f} {n / t / 1000:8.0f} {mb / t:7.1f} {rss / 1024:7.0f}MB "
                      f"{t_ref / t:6.2f} {scale:>6}", flush=True)
    print("(ratio: pg_waldump's seconds / ours; j2/j1: --jobs 1 seconds / --jobs 2 seconds; "
          "peak RSS of --jobs 2 is the largest single process, not the sum)")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
