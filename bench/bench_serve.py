#!/usr/bin/env python3
"""`xlogtools serve` beside the real primary: pg_receivewal of the same major streams the
same >= --mb MB of WAL (pgbench, 16 MB segments; made once by bench_receive.py's primary and
kept in $XLOGTOOLS_BENCH_DIR) once from the primary and once from `xlogtools serve -D
<the primary's pg_wal>`, into an empty directory seeded with the segment before the start, up
to --endpos. Prints seconds, MB/s and the ratio (target: serve >= 0.8x the primary).

    python bench/bench_serve.py [--major 15] [--mb 1100] [--rounds 2]

(A standby catching up spends its time in the same protocol path plus replay, which is the
same for both sources; pg_receivewal measures the sending side alone.) Not a test.
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
from bench_receive import primary
from xlogtools.lsn import segment_name
from xlogtools.testing.cluster import wait_until


def receive(c, host_port: tuple[str, int], start: Lsn, end: Lsn, out: Path) -> float:  # type: ignore[no-untyped-def]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seg = 16 << 20
    prev = segment_name(1, int(start) // seg - 1, seg)
    shutil.copy(c.pg_wal / prev, out / prev)
    c._chown(out)
    c._chown(out / prev)
    t = time.monotonic()
    c.run([c.tool("pg_receivewal"), "-D", str(out), "-n", "--no-sync", "-E", str(end), "-d",
           f"host={host_port[0]} port={host_port[1]} user=postgres"], timeout=3600)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=1100)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    c, start, end = primary(a.major, a.mb)
    seg = 16 << 20
    start = Lsn(int(start) // seg * seg + seg)
    end = Lsn(int(end) // seg * seg)
    mb = (int(end) - int(start)) / (1 << 20)
    log = BENCH_DIR / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "xlogtools.cli", "serve", "-D", str(c.pg_wal),
                             "--trust", "--port", "0", "--status-interval", "0"],
                            stderr=open(log, "w"))
    port = int(wait_until(lambda: (m := re.search(r"listening on [^:]+:(\d+)", log.read_text()))
                          and m.group(1), 30))
    out = BENCH_DIR / "serve-out"
    best = {"primary": 1e9, "serve": 1e9}
    try:
        for _ in range(a.rounds):
            best["primary"] = min(best["primary"], receive(c, ("127.0.0.1", c.port), start, end, out))
            best["serve"] = min(best["serve"], receive(c, ("127.0.0.1", port), start, end, out))
    finally:
        proc.terminate()
        proc.wait()
        c.stop()
    for k, v in best.items():
        print(f"{k:8s} {mb:7.0f} MB in {v:6.2f} s = {mb / v:7.1f} MB/s")
    print(f"ratio serve/primary speed: {best['primary'] / best['serve']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
