#!/usr/bin/env python3
"""`xlogtools receive` beside `pg_receivewal` of the same major, from the same primary.

    python bench/bench_receive.py [--major 15] [--mb 1100] [--rounds 3] [--seconds 20]

1. Throughput: >= MB of WAL made beforehand (pgbench -i plus pgbench TPC-B, 16 MB segments,
   kept in the primary's pg_wal and in $XLOGTOOLS_BENCH_DIR between runs) is streamed into an
   empty directory (seeded with the segment before the start) up to --endpos, by each tool in
   turn: MB/s and the ratio; ours with --verify (the default: every record decoded) and with
   --no-verify (what pg_receivewal does).
2. Synchronous commit: pgbench, 4 clients, --seconds, one small INSERT per transaction,
   against the primary whose synchronous_standby_names names the receiver (ours with
   --synchronous, then pg_receivewal --synchronous): TPS, mean latency, receiver CPU per
   transaction and the ratios.
3. With --modes: the loss-window table (docs/receive.md): TPS with our receiver in each mode
   (--synchronous, --fsync-interval 200 as a remote_write standby, the default and --no-sync
   asynchronous) and the most WAL written but not flushed at any moment (metrics, 50 ms).
Each measurement is repeated --rounds times, alternating the tools (the machine may be
shared: look at best and median); the synchronous rounds go in ABBA order and each starts
from an empty `ins` table and a fresh checkpoint, after one uncounted warm-up round per tool.
Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, ROOT, Lsn, pgbin
from xlogtools.lsn import segment_name
from xlogtools.testing.cluster import Cluster, wait_until

SEG_MB = 16
APP = "bench_recv"


def primary(major: int, mb: int) -> tuple[Cluster, Lsn, Lsn]:
    """A primary whose pg_wal holds >= mb MB of WAL between the two returned LSNs; made once."""
    base = BENCH_DIR / f"recv-primary-pg{major}-{mb}mb"
    marker = base / "range.txt"
    conf = {"max_wal_size": "8GB", "min_wal_size": "2GB", "checkpoint_timeout": "1h",
            "wal_keep_size": f"{mb * 2 + 512}MB", "synchronous_commit": "on",
            "max_wal_senders": 10}
    c = Cluster(major, base, wal_segsize_mb=SEG_MB, conf=conf)
    if marker.exists():
        c.start()
        a, b = marker.read_text().split()
        return c, Lsn(a), Lsn(b)
    shutil.rmtree(base, ignore_errors=True)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)
    c.init().start()
    c.execute("SELECT pg_switch_wal();")
    start = Lsn(c.current_lsn())
    print(f"making {mb} MB of WAL (pgbench -i -s 20, then TPC-B)...", flush=True)
    c.pgbench(["-i", "-s", "20", "-q"])
    while Lsn(c.current_lsn()) - start < (mb + SEG_MB) << 20:
        c.pgbench(["-c", "4", "-j", "2", "-T", "20"])
    end = Lsn(c.current_lsn())
    c.execute("CREATE TABLE ins (id bigserial PRIMARY KEY, v int, t timestamptz DEFAULT now());"
              "CHECKPOINT;")
    marker.write_text(f"{start} {end}\n")
    return c, start, end


def stream_once(argv: list[str], d: Path, seed: Path) -> float:
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    shutil.copy(seed, d / seed.name)
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def throughput(c: Cluster, start: Lsn, end: Lsn, rounds: int) -> None:
    seg = SEG_MB << 20
    first = start // seg + 1  # stream from the segment after start's (seeded with start's)
    seed = c.pg_wal / segment_name(1, first - 1, seg)
    endpos = Lsn(end - end % seg - 1)  # within the last full segment: both stop there
    mb = (int(endpos) - first * seg) / (1 << 20)
    conn = f"host=127.0.0.1 port={c.port} user=postgres"
    work = BENCH_DIR / "recv-out"
    tools = {
        "pg_receivewal": [str(pgbin.tool(c.major, "pg_receivewal")), "-d", conn, "-D",
                          str(work), "-E", str(endpos), "-n"],
        "xlogtools receive --no-verify": [sys.executable, "-m", "xlogtools.cli", "receive",
                                          "-d", conn, "-D", str(work), "-E", str(endpos), "-n",
                                          "--no-verify", "--no-status"],
        "xlogtools receive (verify)": [sys.executable, "-m", "xlogtools.cli", "receive", "-d",
                                       conn, "-D", str(work), "-E", str(endpos), "-n",
                                       "--no-status"],
    }
    times: dict[str, list[float]] = {k: [] for k in tools}
    for r in range(rounds):
        for name, argv in tools.items():
            t = stream_once(argv, work, seed)
            times[name].append(t)
            print(f"  round {r + 1}: {name:32s} {t:6.2f} s {mb / t:7.1f} MB/s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nthroughput: {mb:.0f} MB of WAL (PostgreSQL {c.major}, {SEG_MB} MB segments), "
          f"{rounds} rounds: best and median, wall time including start-up")
    base, base_med = min(times["pg_receivewal"]), sorted(times["pg_receivewal"])[rounds // 2]
    for name, ts in times.items():
        t, m = min(ts), sorted(ts)[rounds // 2]
        print(f"  {name:32s} best {t:6.2f} s {mb / t:6.1f} MB/s ratio {base / t:4.2f}x | "
              f"median {m:6.2f} s {mb / m:6.1f} MB/s ratio {base_med / m:4.2f}x")


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a running process, all its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pgbench_sync(c: Cluster, seconds: int, rounds: int, warmup: bool = True) -> None:
    conn = f"host=127.0.0.1 port={c.port} user=postgres application_name={APP}"
    work = BENCH_DIR / "recv-sync"
    script = BENCH_DIR / "insert.sql"
    script.write_text("INSERT INTO ins (v) VALUES (:client_id);\n")
    script.chmod(0o644)
    tools = {
        "pg_receivewal --synchronous": [str(pgbin.tool(c.major, "pg_receivewal")), "-d", conn,
                                        "-D", str(work), "--synchronous", "-n"],
        "xlogtools receive --synchronous": [sys.executable, "-m", "xlogtools.cli", "receive",
                                            "-d", conn, "-D", str(work), "--synchronous", "-n",
                                            "--no-status"],
    }
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    names = list(tools)
    # round 0 warms both tools up (page cache, the table's first extension, the interpreter's
    # files) and is not counted
    for r in range(-1 if warmup else 0, rounds):
        # ABBA: each tool goes first in every other round, so what drifts during a run (the
        # primary's own background work) falls on both alike
        for name in (names if r % 2 == 0 else names[::-1]):
            argv = tools[name]
            # the same start for each measurement: an empty table and a fresh checkpoint
            # (no synchronous standby is connected yet: this session must not wait for one)
            c.execute("SET synchronous_commit = local; TRUNCATE ins; CHECKPOINT;")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_until(lambda: c.sql(f"SELECT sync_state FROM pg_stat_replication WHERE "
                                         f"application_name = '{APP}'") == [("sync",)], 60,
                           what=f"{name} to be the synchronous standby")
                cpu0 = _cpu_seconds(proc.pid)
                out = c.pgbench(["-n", "-c", "4", "-j", "2", "-T", str(seconds), "-f",
                                 str(script)], timeout=seconds + 120)
                cpu1 = _cpu_seconds(proc.pid)
            finally:
                proc.send_signal(signal.SIGINT)
                _, _, ru = os.wait4(proc.pid, 0)
            tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
            lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore
            n = int(re.search(r"actually processed: (\d+)", out).group(1))  # type: ignore
            # CPU while pgbench ran (what each commit costs the receiver), and of the whole
            # process (start-up, connecting and catching up included)
            cpu = (cpu1 - cpu0) / max(n, 1) * 1e6
            whole = (ru.ru_utime + ru.ru_stime) / max(n, 1) * 1e6
            if r < 0:
                print(f"  warm-up: {name:32s} {tps:8.0f} TPS", flush=True)
                continue
            results[name].append((tps, lat))
            cpus[name].append(cpu)
            print(f"  round {r + 1}: {name:32s} {tps:8.0f} TPS {lat:6.3f} ms  receiver CPU "
                  f"{cpu:5.1f} us/transaction during the run ({whole:5.1f} with start-up)",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nsynchronous commit: pgbench -c 4 -j 2 -T {seconds}, one INSERT per transaction, "
          f"{rounds} rounds: best and median")
    best = {k: max(v) for k, v in results.items()}
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    base, base_med = best["pg_receivewal --synchronous"][0], med["pg_receivewal --synchronous"][0]
    base_cpu = sorted(cpus["pg_receivewal --synchronous"])[rounds // 2]
    for name in results:
        (tps, lat), (mtps, mlat) = best[name], med[name]
        cpu = sorted(cpus[name])[len(cpus[name]) // 2]
        print(f"  {name:32s} best {tps:6.0f} TPS {lat:6.3f} ms ratio {tps / base:4.2f}x | "
              f"median {mtps:6.0f} TPS {mlat:6.3f} ms ratio {mtps / base_med:4.2f}x | "
              f"CPU {cpu:5.1f} us/transaction during the run ({cpu / base_cpu:4.2f}x)")


MODES = [  # name, receive options, synchronous_standby_names, synchronous_commit
    ("--synchronous", ["--synchronous"], APP, "on"),
    ("--fsync-interval 200", ["--fsync-interval", "200"], APP, "remote_write"),
    ("default (per segment)", [], "", "on"),
    ("--no-sync", ["--no-sync"], "", "on"),
]


def loss_modes(c: Cluster, seconds: int) -> None:
    """The trade-off table of docs/receive.md: pgbench TPS with the receiver in each mode
    (as the synchronous standby where the mode is one), and the largest amount of WAL written
    but not yet flushed seen in the receiver's metrics (scraped every 50 ms): what a crash of
    the archive's machine could have lost at that moment."""
    import json
    import socket
    import threading
    import urllib.request

    script = BENCH_DIR / "insert.sql"
    script.write_text("INSERT INTO ins (v) VALUES (:client_id);\n")
    script.chmod(0o644)
    work = BENCH_DIR / "recv-modes"
    conn = f"host=127.0.0.1 port={c.port} user=postgres application_name={APP}"
    print(f"\nloss window by mode: pgbench -c 4 -j 2 -T {seconds}, one INSERT per transaction")
    for name, opts, standby, commit in MODES:
        c.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby}';"
                  f"ALTER SYSTEM SET synchronous_commit = '{commit}'; SELECT pg_reload_conf();")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with socket.socket() as sk:
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "xlogtools.cli", "receive", "-d", conn,
                                 "-D", str(work), "-n", "--no-status", "--metrics", str(port),
                                 *opts], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        gaps: list[int] = []
        done = threading.Event()

        def scrape() -> None:
            while not done.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
                        st = json.loads(r.read())
                    if st["written_lsn"] and st["flushed_lsn"]:
                        gaps.append(int(Lsn(st["written_lsn"])) - int(Lsn(st["flushed_lsn"])))
                except OSError:
                    pass
                time.sleep(0.05)

        try:
            want = [("sync",)] if standby else [("async",)]
            wait_until(lambda: c.sql(f"SELECT sync_state FROM pg_stat_replication WHERE "
                                     f"application_name = '{APP}'") == want, 60,
                       what=f"receive {name} to connect")
            lsn0 = Lsn(c.current_lsn())

            def caught_up() -> bool:  # the segment's WAL before the start was streamed
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
                        st = json.loads(r.read())
                except OSError:
                    return False
                return bool(st["written_lsn"]) and Lsn(st["written_lsn"]) >= lsn0

            wait_until(caught_up, 60, what=f"receive {name} to catch up")
            time.sleep(0.5)  # (what it caught up with is flushed by now where a mode flushes)
            lsn0 = Lsn(c.current_lsn())
            t = threading.Thread(target=scrape, daemon=True)
            t.start()
            out = c.pgbench(["-n", "-c", "4", "-j", "2", "-T", str(seconds), "-f", str(script)],
                            timeout=seconds + 120)
            rate = (Lsn(c.current_lsn()) - lsn0) / seconds
            done.set()
            t.join()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
        lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore
        worst = max(gaps) if gaps else 0
        print(f"  {name:24s} {'sync ' + commit if standby else 'async':18s} {tps:7.0f} TPS "
              f"{lat:6.3f} ms | written, not flushed: max {worst / 1024:8.1f} kB = "
              f"{worst / max(rate, 1) * 1000:7.1f} ms of WAL at {rate / 1024:.0f} kB/s", flush=True)
    c.execute("ALTER SYSTEM RESET synchronous_standby_names; ALTER SYSTEM RESET synchronous_commit;"
              "SELECT pg_reload_conf();")
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--mb", type=int, default=1100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--no-warmup", action="store_true",
                    help="count the first synchronous round too (by default an extra round per "
                         "tool warms up first and is not counted)")
    ap.add_argument("--modes", action="store_true",
                    help="also the loss-window table: TPS and unflushed WAL in each mode")
    args = ap.parse_args()
    os.chdir(ROOT)
    c, start, end = primary(args.major, args.mb)
    try:
        if not args.skip_throughput:
            throughput(c, start, end, args.rounds)
        if not args.skip_sync:
            c.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{APP}';"
                      "SELECT pg_reload_conf();")
            try:
                pgbench_sync(c, args.seconds, args.rounds, warmup=not args.no_warmup)
            finally:
                c.execute("ALTER SYSTEM RESET synchronous_standby_names;"
                          "SELECT pg_reload_conf();")
        if args.modes:
            loss_modes(c, args.seconds)
    finally:
        c.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
