#!/usr/bin/env python3
"""`xlogtools locate` on a large pg_wal beside a full pg_waldump scan to the end of it.

    python bench/bench_locate.py [--major 15] [--mb 1024] [--runs 3]

The pg_wal is a real one: a 16 MB-segment cluster under pgbench (default checkpoint settings,
wal_keep_size holding >= MB of WAL, as a lagging standby's slot would) killed by SIGSTOP+SIGKILL
mid-run, copied once into $XLOGTOOLS_BENCH_DIR. Both tools run in fresh processes with the
files in the page cache; each is run --runs times and the median is kept. pg_waldump reads from
the first segment until the WAL ends (`pg_waldump -p DIR FIRSTSEG`), as text to /dev/null and
with -q. locate runs as by default (every record checked from the last checkpoint's redo
point), with --quick (the decoded tail only) and with --scan all (every record from the first
segment, the same span as pg_waldump). Also prints what locate read, and checks both found the
same last record.
Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from common import BENCH_DIR, ROOT, Cluster, Lsn, pgbin, timed


def crashed_pg_wal(major: int, mb: int) -> str:
    """A copy of pg_wal (16 MB segments) of a cluster killed under pgbench, with >= mb MB of
    WAL before the end; made once."""
    out = BENCH_DIR / f"locate-pg{major}-{mb}mb-seg16"
    if (out / ".complete").exists():
        return str(out)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)
    work = BENCH_DIR / f"locate-cluster-pg{major}"
    shutil.rmtree(work, ignore_errors=True)
    c = Cluster(major, work, wal_segsize_mb=16,
                conf={"wal_keep_size": f"{mb + 256}MB", "synchronous_commit": "off"})
    try:
        c.init().start()
        c.pgbench(["-i", "-s", "20", "-q"])
        start = Lsn(c.current_lsn())
        while Lsn(c.current_lsn()) - start < (mb + 64) << 20:
            c.pgbench(["-c", "4", "-j", "2", "-T", "10"])
            print(f"  {(Lsn(c.current_lsn()) - start) >> 20} MB of WAL", file=sys.stderr)
        argv = [str(c.tool("pgbench")), "-h", c.host, "-p", str(c.port), "-U", "postgres",
                "-c", "4", "-j", "2", "-T", "60", "postgres"]
        user = pgbin.server_user()
        kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        load = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=c.base, env=pgbin.runtime_env(argv[0]), **kw)
        time.sleep(5)
        c.crash()
        load.kill()
        load.wait()
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(c.pg_wal, out, ignore=shutil.ignore_patterns("archive_status", "summaries"))
        (out / ".complete").write_text("")
        return str(out)
    finally:
        c.destroy()


def median_time(argv: list[str], runs: int) -> float:
    return statistics.median(timed(argv)[0] for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    wal = crashed_pg_wal(args.major, args.mb)
    segs = sorted(n for n in os.listdir(wal) if len(n) == 24)
    total = sum(os.path.getsize(os.path.join(wal, n)) for n in segs)
    for n in segs:  # both tools get the files from the page cache
        with open(os.path.join(wal, n), "rb") as f:
            while f.read(1 << 24):
                pass
    ours = [sys.executable, "-m", "xlogtools.cli", "locate", wal, "--json"]
    res = json.loads(subprocess.run(ours, capture_output=True, text=True, cwd=ROOT,
                                    check=True).stdout)
    waldump = str(pgbin.tool(args.major, "pg_waldump"))
    first = Lsn(int(segs[0][8:16], 16) << 32 | int(segs[0][16:], 16) * (16 << 20))
    # -s with no file: from the first record of the first segment until the WAL ends (a file
    # argument alone would stop at that file's end)
    full = [waldump, "-p", wal, "-s", str(first)]
    quiet = [waldump, "-q", "-p", wal, "-s", str(first)]
    wd = subprocess.run(quiet, capture_output=True, text=True)
    m = re.search(r"error in WAL record at ([0-9A-F]+/[0-9A-F]+)", wd.stderr)
    wd_last = m.group(1) if m else wd.stderr.strip()
    current = Lsn(res["end_lsn"]) - first
    t_ours = median_time(ours, args.runs)
    t_quick = median_time([*ours, "--quick"], args.runs)
    t_all = median_time([*ours, "--scan", "all"], args.runs)
    t_text = median_time(full, args.runs)
    t_quiet = median_time(quiet, args.runs)
    cp = res["last_checkpoint"] or {}
    print(f"pg_wal: {len(segs)} files of 16 MB ({total >> 20} MB), PostgreSQL {args.major}, crashed "
          f"under pgbench; current WAL from the first file to the end: {current >> 20} MB")
    print(f"locate: end {res['end_lsn']} (last record {res['last_record_lsn']}, {res['reason']}); "
          f"pg_waldump's last record: {wd_last}; same: {wd_last == res['last_record_lsn']}")
    verified = Lsn(res["end_lsn"]) - Lsn(res["verified_from"])
    print(f"locate read {res['segments_read']} of {res['segments']} files; verified every record "
          f"from {res['verified_from']} ({verified >> 20} MB); last checkpoint {cp.get('lsn')} (redo {cp.get('redo')}, "
          f"{cp.get('found_by')}); {len(res['stale_segments'])} recycled files beyond the end")
    rows = [("xlogtools locate (from the redo point)", t_ours),
            ("xlogtools locate --quick (tail only)", t_quick),
            ("xlogtools locate --scan all", t_all),
            ("pg_waldump (text > /dev/null)", t_text), ("pg_waldump -q", t_quiet)]
    for name, t in rows:
        print(f"{name:40s} {t:8.3f} s")
    print(f"ratio: pg_waldump text / locate = {t_text / t_ours:.1f}x; "
          f"pg_waldump -q / locate = {t_quiet / t_ours:.2f}x; "
          f"pg_waldump -q / locate --scan all = {t_quiet / t_all:.2f}x; "
          f"text / --quick = {t_text / t_quick:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
