"""Replay throughput: row changes reconstructed per second from a pgbench run's WAL (all four
tables: accounts/tellers/branches updates, history inserts), and peak RSS, beside
`pg_waldump > /dev/null` on the same WAL (the cost of just decoding and printing records).

    python bench/bench_replay.py [--major 15] [--transactions 20000] [--scale 1]

Data (WAL + catalog snapshot) is made once by a real server and kept in $XLOGTOOLS_BENCH_DIR.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, ROOT, pgbin, size_mb, timed

from xlogtools.lsn import Lsn
from xlogtools.testing.cluster import Cluster


def make_data(major: int, transactions: int, scale: int) -> Path:
    out = BENCH_DIR / f"replay-pg{major}-s{scale}-t{transactions}"
    if (out / "meta.json").exists():
        return out
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)
    work = BENCH_DIR / f"replay-cluster-pg{major}"
    shutil.rmtree(work, ignore_errors=True)
    c = Cluster(major, work, wal_segsize_mb=16,
                conf={"max_wal_size": "4GB", "checkpoint_timeout": "1h", "autovacuum": "off",
                      "wal_keep_size": "2GB", "synchronous_commit": "off"})
    try:
        c.init().start()
        c.pgbench(["-i", "-s", str(scale), "-q"])
        c.execute("CHECKPOINT;")
        start = c.current_lsn()
        c.pgbench(["-c", "4", "-j", "2", "-t", str(transactions // 4), "-n"])
        c.execute("SELECT pg_switch_wal();")
        end = c.current_lsn()
        from xlogtools.replay.catalog import capture

        shutil.rmtree(out, ignore_errors=True)
        (out / "wal").mkdir(parents=True)
        capture(f"host={c.host} port={c.port} user=postgres dbname=postgres").save(
            out / "catalog.json")
        c.stop()
        seg = 16 << 20
        for f in sorted(c.pg_wal.iterdir()):
            if len(f.name) == 24:
                segno = int(f.name[8:16], 16) * (0x100000000 // seg) + int(f.name[16:], 16)
                if Lsn(start) // seg <= segno <= Lsn(end) // seg:
                    shutil.copy(f, out / "wal" / f.name)
        (out / "meta.json").write_text(json.dumps({"start": start, "end": end,
                                                   "transactions": transactions}))
        return out
    finally:
        c.destroy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--transactions", type=int, default=20000)
    ap.add_argument("--scale", type=int, default=1)
    args = ap.parse_args()
    data = make_data(args.major, args.transactions, args.scale)
    meta = json.loads((data / "meta.json").read_text())
    wal = data / "wal"
    cli = [sys.executable, "-m", "xlogtools.cli", "replay", str(wal), "--catalog",
           str(data / "catalog.json"), "-s", meta["start"], "-e", meta["end"]]
    # rows: count them once with the library (same work as the CLI minus writing)
    code = ("import sys, collections; sys.path.insert(0, %r)\n"
            "from xlogtools.replay.api import Replay\n"
            "from xlogtools.replay.catalog import Catalog\n"
            "n = collections.Counter(); rp = Replay([%r], Catalog.load(%r), start=%r, end=%r)\n"
            "for ch in rp: n[ch.table] += 1\n"
            "print(sum(n.values()), dict(n), rp.stats['records'])"
            % (str(ROOT), str(wal), str(data / "catalog.json"), meta["start"], meta["end"]))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    t_lib_count = time.perf_counter() - t0
    rows, per_table, records = res.stdout.split(" ", 1)[0], None, None
    parts = res.stdout.strip().split(" ", 1)[1]
    per_table, records = parts.rsplit(" ", 1)
    rows_n = int(rows)
    t_lib, rss_lib = timed([sys.executable, "-c", code])
    t_jsonl, rss_jsonl = timed([*cli, "--format", "jsonl"])
    t_sql, _ = timed([*cli, "--format", "sql"])
    waldump = pgbin.bindir(args.major) / "pg_waldump"
    t_wd = None
    if waldump.exists():
        t_wd, _ = timed([str(waldump), "-p", str(wal), "-s", meta["start"], "-e", meta["end"]])
    mb = size_mb(wal)
    print(f"pgbench WAL: PostgreSQL {args.major}, scale {args.scale}, "
          f"{meta['transactions']} transactions, {int(records)} records in range, "
          f"{mb:.0f} MB of segments")
    print(f"row changes: {rows_n} ({per_table})")
    print(f"library (Replay, all rows decoded): {t_lib:.2f} s = {rows_n / t_lib:,.0f} rows/s, "
          f"peak RSS {rss_lib / 1024:.0f} MB (first run {t_lib_count:.2f} s)")
    print(f"replay --format jsonl > /dev/null: {t_jsonl:.2f} s = {rows_n / t_jsonl:,.0f} rows/s,"
          f" peak RSS {rss_jsonl / 1024:.0f} MB")
    print(f"replay --format sql > /dev/null:   {t_sql:.2f} s = {rows_n / t_sql:,.0f} rows/s")
    if t_wd is not None:
        print(f"pg_waldump > /dev/null (same range): {t_wd:.2f} s = "
              f"{int(records) / t_wd:,.0f} records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
