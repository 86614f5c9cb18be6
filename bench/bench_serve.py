#!/usr/bin/env python3
"""`xlogtools serve` beside the real primary, as the issue asks: a real standby catches up
>= --mb MB of WAL, once streaming from the primary and once from `xlogtools serve -D <the
primary's pg_wal>`, starting from the same base backup. Prints seconds (standby start to
`pg_last_wal_replay_lsn() >= end`), MB/s and the ratio (target: serve >= 0.8x the primary).

A second part streams the same range with pg_receivewal (no replay): the sending side alone.

    python bench/bench_serve.py [--major 15] [--mb 1100] [--rounds 2] [--skip-receivewal]

The data (a primary, a base backup taken before the WAL was written, pgbench WAL of 16 MB
segments kept by wal_keep_size) is made once and kept in $XLOGTOOLS_BENCH_DIR. Not a test.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, Lsn
from xlogtools.lsn import segment_name
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, make_standby, wait_until

SEG_MB = 16
CONF = {"max_wal_size": "8GB", "min_wal_size": "2GB", "checkpoint_timeout": "1h",
        "max_wal_senders": 10, "hot_standby": "on"}


def scenario(major: int, mb: int) -> tuple[Cluster, Path, Lsn, Lsn]:
    """The primary (started), the base backup's data directory, and the WAL range the
    standby has to catch up: from the backup's end to the primary's position after pgbench."""
    root = BENCH_DIR / f"serve-catchup-pg{major}-{mb}mb"
    marker = root / "range.txt"
    conf = {**CONF, "wal_keep_size": f"{mb * 2 + 512}MB"}
    c = Cluster(major, root / "primary", wal_segsize_mb=SEG_MB, conf=conf, name="primary")
    if marker.exists():
        c.start()
        a, b = marker.read_text().split()
        return c, root / "base", Lsn(a), Lsn(b)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    BENCH_DIR.chmod(0o755)
    root.chmod(0o755)
    c.init().start()
    c.pgbench(["-i", "-s", "20", "-q"])
    base = make_standby(c, root / "base", start=False, name="base")
    start = Lsn(c.current_lsn())
    print(f"making {mb} MB of WAL after the base backup (pgbench TPC-B)...", flush=True)
    while Lsn(c.current_lsn()) - start < mb << 20:
        c.pgbench(["-c", "4", "-j", "2", "-T", "20"])
    c.execute("CHECKPOINT;")
    end = Lsn(c.current_lsn())
    marker.write_text(f"{start} {end}\n")
    return c, base.base, start, end


def replayed(sb: Cluster) -> Lsn:
    v = sb.sql("SELECT pg_last_wal_replay_lsn()")[0][0]
    return Lsn(v) if v else Lsn(0)


def catch_up(c: Cluster, base: Path, conninfo: str, end: Lsn, work: Path) -> float:
    """Seconds from starting a copy of the base backup (primary_conninfo = conninfo) until
    it has replayed up to `end`."""
    shutil.rmtree(work, ignore_errors=True)
    sb = Cluster(c.major, work, wal_segsize_mb=SEG_MB, conf={**c.conf}, name="standby")
    sb._mkdir(work)  # noqa: SLF001
    shutil.copytree(base / "data", sb.datadir, symlinks=True)
    auto = sb.datadir / "postgresql.auto.conf"
    lines = [ln for ln in auto.read_text().splitlines()
             if not ln.lstrip().startswith("primary_conninfo")]
    auto.write_text("\n".join(lines + [f"primary_conninfo = '{conninfo}'"]) + "\n")
    sb._chown(work)  # noqa: SLF001
    for p in sb.base.rglob("*"):
        sb._chown(p)  # noqa: SLF001
    t = time.monotonic()
    sb.start()
    try:
        wait_until(lambda: replayed(sb) >= end, 3600, 0.1, what=f"standby replay up to {end}")
        return time.monotonic() - t
    finally:
        sb.stop()


def receivewal(c: Cluster, port: int, start: Lsn, end: Lsn, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seg = SEG_MB << 20
    prev = segment_name(1, int(start) // seg - 1, seg)
    shutil.copy(c.pg_wal / prev, out / prev)
    c._chown(out)  # noqa: SLF001
    c._chown(out / prev)  # noqa: SLF001
    t = time.monotonic()
    c.run([str(pgbin.tool(c.major, "pg_receivewal")), "-D", str(out), "-n", "--no-sync", "-E",
           str(end), "-d", f"host=127.0.0.1 port={port} user=postgres"], timeout=3600)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=1100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-receivewal", action="store_true")
    a = ap.parse_args()
    c, base, start, end = scenario(a.major, a.mb)
    mb = (int(end) - int(start)) / (1 << 20)
    log = BENCH_DIR / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "xlogtools.cli", "serve", "-D", str(c.pg_wal),
                             "--trust", "--port", "0", "--status-interval", "0"],
                            stderr=open(log, "w"))
    port = int(wait_until(lambda: (m := re.search(r"listening on [^:]+:(\d+)", log.read_text()))
                          and m.group(1), 30))
    work = BENCH_DIR / "serve-standby"
    sources = {"primary": f"host=127.0.0.1 port={c.port} user=postgres application_name=sb",
               "xlogtools serve": f"host=127.0.0.1 port={port} user=postgres application_name=sb"}
    times: dict[str, list[float]] = {k: [] for k in sources}
    recv: dict[str, list[float]] = {"primary": [], "xlogtools serve": []}
    seg = SEG_MB << 20
    r_start = Lsn(int(start) // seg * seg + seg)
    r_end = Lsn(int(end) // seg * seg)
    try:
        for i in range(a.rounds):
            for name, conninfo in sources.items():
                s = catch_up(c, base, conninfo, end, work)
                times[name].append(s)
                print(f"  round {i + 1}: standby catching up from {name:16s} {s:7.2f} s "
                      f"{mb / s:7.1f} MB/s", flush=True)
            if not a.skip_receivewal:
                for name, p in (("primary", c.port), ("xlogtools serve", port)):
                    s = receivewal(c, p, r_start, r_end, BENCH_DIR / "serve-out")
                    recv[name].append(s)
                    print(f"  round {i + 1}: pg_receivewal from {name:16s} {s:7.2f} s", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        c.stop()
    print(f"\nstandby catch-up, {mb:.0f} MB of pgbench WAL (PostgreSQL {c.major}, {SEG_MB} MB "
          f"segments), best of {a.rounds}, standby start to replay done:")
    for name, v in times.items():
        print(f"  {name:16s} {min(v):7.2f} s {mb / min(v):7.1f} MB/s")
    print(f"  ratio serve/primary speed: {min(times['primary']) / min(times['xlogtools serve']):.2f}x"
          " (target >= 0.8x)")
    if not a.skip_receivewal:
        rmb = (int(r_end) - int(r_start)) / (1 << 20)
        print(f"\npg_receivewal --endpos, {rmb:.0f} MB, best of {a.rounds} (sending side alone):")
        for name, v in recv.items():
            print(f"  {name:16s} {min(v):7.2f} s {rmb / min(v):7.1f} MB/s")
        print(f"  ratio serve/primary speed: {min(recv['primary']) / min(recv['xlogtools serve']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
