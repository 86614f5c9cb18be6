#!/usr/bin/env python3
"""pg_waldump's text of >= 16 MB of pgbench WAL made in process, in chunks of 1000 records
(as `dump --format waldump` does): export.waldump.format_records (Python) beside
parse.native_desc.describe_records (the C extension _waldesc, Python fills the fallbacks),
plain and -b, and the C calls alone on prepared arenas (describe_batch + waldump_lines).
Records/s, best of --runs; reading the WAL is not timed.

    python bench/bench_waldesc.py [--major 15] [--mb 32] [--runs 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from array import array
from typing import Callable, Sequence

from common import pgbench_wal, size_mb

from xlogtools.export.waldump import format_records
from xlogtools.parse import native_desc
from xlogtools.parse.api import open_wal
from xlogtools.parse.record import Record

CHUNK = 1000


def best(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not native_desc.AVAILABLE:
        print("the _waldesc extension is not built (or XLOGTOOLS_NO_C is set)")
        return 1
    wal = pgbench_wal(args.major, args.mb)
    records = list(open_wal(wal))
    n = len(records)
    chunks: list[Sequence[Record]] = [records[i:i + CHUNK] for i in range(0, n, CHUNK)]
    major, blcksz = records[0].pg_major, records[0].block_size
    arenas = [(*native_desc.arena(c), array("Q", [r.lsn for r in c]).tobytes(), len(c))
              for c in chunks]
    fallback = sum(native_desc.describe_texts(c, a, o, major, blcksz)[2]
                   for c, (a, o, _, _) in zip(chunks, arenas))
    print(f"WAL: {size_mb(wal):.0f} MB, {n} records (PostgreSQL {args.major} pgbench), "
          f"{fallback} ({fallback / n:.3%}) described in Python")

    def c_only(bkp: bool) -> None:
        for a, o, lsns, k in arenas:
            offs, data, _ = native_desc.describe_batch(a, o, k, major, blcksz)
            native_desc.waldump_lines(a, o, lsns, k, major, blcksz, bkp, offs, data)

    print(f"{'':36s} {'M rec/s':>8}")
    for bkp in (False, True):
        label = "-b" if bkp else "plain"
        t_py = best(max(1, args.runs - 1), lambda: [format_records(c, bkp) for c in chunks])
        t_nd = best(args.runs, lambda: [native_desc.describe_records(c, bkp) for c in chunks])
        t_c = best(args.runs, lambda: c_only(bkp))
        print(f"{'format_records ' + label:36s} {n / t_py / 1e6:8.2f}")
        print(f"{'describe_records ' + label:36s} {n / t_nd / 1e6:8.2f}   {t_py / t_nd:5.1f}x")
        print(f"{'describe_batch+waldump_lines ' + label:36s} {n / t_c / 1e6:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
