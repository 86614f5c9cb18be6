#!/usr/bin/env python3
"""Decode throughput of the reader core beside pg_waldump, on the same segments.

    python bench/bench_reader.py [--major 15] [--mb 200]

Runs, on >= MB of pgbench WAL (16 MB segments): our reader decoding every record with CRC
checks (in a fresh process), `pg_waldump -q` (decode + CRC, no output) and `pg_waldump >
/dev/null` (text); prints records/s, MB/s and the ratios. Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from common import ROOT, pgbench_wal, pgbin, size_mb, timed

DECODE = """
import sys, time
from xlogtools.parse.api import open_wal
t = time.perf_counter()
r = open_wal(sys.argv[1])
n = 0
for rec in r:
    n += 1
print(n, time.perf_counter() - t, r.end_of_wal.reason)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    wal = pgbench_wal(args.major, args.mb)
    segs = sorted(p.name for p in wal.iterdir() if len(p.name) == 24)
    mb = size_mb(wal)
    waldump = str(pgbin.tool(args.major, "pg_waldump"))
    wd_args = [waldump, "-p", str(wal), segs[0], segs[-1]]
    n_text = subprocess.run(wd_args, capture_output=True, text=True).stdout.count("\n")
    t_quiet, _ = timed([*wd_args[:1], "-q", *wd_args[1:]])
    t_text, _ = timed(wd_args)
    proc = subprocess.run([sys.executable, "-c", DECODE, str(wal)], capture_output=True,
                          text=True, cwd=ROOT, check=True)
    n_ours, t_ours, reason = proc.stdout.split()
    n, t_ours = int(n_ours), float(t_ours)
    print(f"WAL: {mb:.0f} MB in {len(segs)} segments of PostgreSQL {args.major} pgbench, "
          f"{n} records (pg_waldump: {n_text}); we stopped at: {reason}")
    rows = [("xlogtools reader (decode + CRC)", t_ours), ("pg_waldump -q", t_quiet),
            ("pg_waldump > /dev/null", t_text)]
    for name, t in rows:
        print(f"{name:34s} {t:7.2f} s {n / t / 1000:8.0f} k rec/s {mb / t:7.1f} MB/s")
    print(f"ratio to pg_waldump -q: {t_quiet / t_ours:.2f}x; "
          f"to pg_waldump text: {t_text / t_ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
