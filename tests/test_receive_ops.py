"""`xlogtools receive` as an operator runs it, against real primaries of every major: the
bounded loss window of --fsync-interval under SIGKILL, metrics and the status file checked
against pg_stat_replication under pgbench load, and an archive whose file system fills up
mid-stream (a tmpfs mounted by the test) and is freed again."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from xlogtools.lsn import Lsn, segment_name
from xlogtools.testing.cluster import Cluster, wait_until

from test_receive import (SEG, Receiver, arch, assert_contiguous, assert_identical,  # noqa: F401
                          conninfo, make_wal, primaries, primary, receivers, repl_row,
                          run_receive, wait_received)

# intervals measured against the wall clock: run alone, not beside other tests
pytestmark = pytest.mark.serial

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_slot(c: Cluster, arch: Path, slot: str) -> None:
    ok = run_receive(arch, conninfo(c), "-S", slot, "--create-slot", "--if-not-exists")
    assert ok.returncode == 0, ok.stderr


def drop_slot(c: Cluster, slot: str) -> None:
    c.execute(f"SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots "
              f"WHERE slot_name = '{slot}';")


class Load:
    """A steady trickle of small committed transactions from a thread (a psql per statement,
    some tens per second: a segment of 1 MB takes far longer than any interval here)."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.stop = threading.Event()
        c.execute("CREATE TABLE IF NOT EXISTS trickle (i int, t text);")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.c.execute(f"INSERT INTO trickle VALUES ({i}, repeat('t', 200));")
            i += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def archived_bytes(arch: Path, tli: int, start: int, end: int) -> bytes:
    """The archive's bytes of WAL [start, end) from its segment files (.partial or done)."""
    out = bytearray()
    pos = start
    while pos < end:
        name = segment_name(tli, pos // SEG, SEG)
        f = arch / name if (arch / name).exists() else arch / f"{name}.partial"
        data = f.read_bytes()
        take = min(end, (pos // SEG + 1) * SEG) - pos
        out += data[pos % SEG:pos % SEG + take]
        pos += take
    return bytes(out)


def primary_bytes(c: Cluster, start: int, end: int) -> bytes:
    out = bytearray()
    pos = start
    while pos < end:
        data = (c.pg_wal / segment_name(1, pos // SEG, SEG)).read_bytes()
        take = min(end, (pos // SEG + 1) * SEG) - pos
        out += data[pos % SEG:pos % SEG + take]
        pos += take
    return bytes(out)


def test_fsync_interval_bounds_the_loss_window(primary: Cluster, arch: Path,
                                               receivers: list[Receiver]) -> None:
    """--fsync-interval 200 with a 10 s status interval: under a steady load the flush
    position the server sees is never further behind what the receiver had written than the
    interval (plus scheduling slack), although no segment completes meanwhile, and once the
    load stops the last WAL is flushed within the interval as well; after SIGKILL
    every byte up to the last reported flush is in the files, equal to the primary's WAL, and
    a restarted receiver goes on without a gap."""
    c = primary
    create_slot(c, arch, "xlt_fsi")
    interval, slack = 0.2, 2.0
    r = Receiver(arch, conninfo(c, "xlt_fsi"), "-S", "xlt_fsi", "-s", "10",
                 "--fsync-interval", str(int(interval * 1000)))
    receivers.append(r)
    wait_until(lambda: (row := repl_row(c, "xlt_fsi")) and row[1], 30,
               what="the receiver to connect and report a flush position")
    load = Load(c)
    samples: list[tuple[float, Lsn, Lsn]] = []
    try:
        # at least 6 s, and on until the load has written enough WAL to tell (a loaded
        # machine runs fewer of its psql calls a second), at most 120 s
        t0 = time.monotonic()
        while True:
            now = time.monotonic()
            enough = len(samples) > 30 and samples[-1][1] - samples[0][1] > 32 << 10
            if (now - t0 >= 6 and enough) or now - t0 >= 120:
                break
            row = repl_row(c, "xlt_fsi")
            if row and row[0] and row[1]:
                samples.append((time.monotonic(), row[0], row[1]))
            time.sleep(0.05)
    finally:
        load.close()
    # no more WAL comes: what arrived is flushed within the interval all the same
    t_quiet = time.monotonic()
    settled = wait_until(lambda: (row := repl_row(c, "xlt_fsi")) and row[0] and row[1] == row[0]
                         and row, 30, interval=0.02, what="the last WAL to be flushed")
    assert time.monotonic() - t_quiet < interval + slack, "flushed only at the status interval"
    last_flush = killed_at_write = settled[1]
    r.kill9()
    assert len(samples) > 30
    first_w = samples[0][1]
    assert killed_at_write - first_w > 16 << 10, "the load wrote too little to tell"
    for i, (t, w, f) in enumerate(samples):
        assert f <= w
        if i:
            assert w >= samples[i - 1][1] and f >= samples[i - 1][2], "not monotonic"
        # what had been written interval + slack ago is flushed by now
        older = [sw for st, sw, _sf in samples if st <= t - interval - slack]
        if older:
            assert f >= older[-1], (f"flush {f} at {t:.2f} is behind the write position "
                                    f"{older[-1]} of {interval + slack} s before")
    # after SIGKILL: everything up to the last reported flush is in the files, as written
    start = int(samples[0][2]) - int(samples[0][2]) % SEG
    assert archived_bytes(arch, 1, start, int(last_flush)) == \
        primary_bytes(c, start, int(last_flush))
    # restarted: it streams on from its files, no gap, no duplicate
    r2 = Receiver(arch, conninfo(c, "xlt_fsi"), "-S", "xlt_fsi", "-s", "1",
                  "--fsync-interval", "200")
    receivers.append(r2)
    target = make_wal(c, 1200)
    c.execute("SELECT pg_switch_wal();")
    wait_received(c, "xlt_fsi", target, flush=True)
    assert r2.stop() == 0, r2.stderr
    assert assert_identical(arch, c.pg_wal) >= 1
    assert_contiguous(arch)
    drop_slot(c, "xlt_fsi")


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"xlogtools_receive_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in\n{text}")


def test_metrics_and_status_file_agree_with_pg_stat_replication(
        primary: Cluster, arch: Path, receivers: list[Receiver]) -> None:
    """Scraped every 100 ms under pgbench: received, written and flushed positions and the
    segment count never go back; pg_stat_replication's write/flush positions (what the
    receiver reported) are never ahead of the metrics, and behind them by at most one status
    interval (1 s, plus slack); the status file holds the same figures as JSON."""
    c = primary
    create_slot(c, arch, "xlt_met")
    port = free_port()
    status = arch.parent / "status.json"
    r = Receiver(arch, conninfo(c, "xlt_met"), "-S", "xlt_met", "-s", "1",
                 "--metrics", f"127.0.0.1:{port}", "--status-file", str(status))
    receivers.append(r)
    wait_until(lambda: (row := repl_row(c, "xlt_met")) and row[1], 30,
               what="the receiver to connect")
    c.pgbench(["-i", "-s", "1", "-q"])
    # pgbench in rounds of 3 s, for at least 5 s and on until there are enough samples (a
    # loaded machine scrapes fewer times a second), at most 120 s
    enough = threading.Event()

    def rounds() -> None:
        while not enough.is_set():
            c.pgbench(["-c", "2", "-T", "3"])

    bench = threading.Thread(target=rounds, daemon=True)
    bench.start()
    scraped: list[tuple[float, float, float, float, float]] = []  # t, recv, written, flushed, segs
    pg: list[tuple[float, int, int]] = []
    t0 = time.monotonic()
    while bench.is_alive():
        now = time.monotonic()
        if (now - t0 >= 5 and len(scraped) > 20 and len(pg) > 20
                and scraped[-1][3] - scraped[0][3] > SEG) or now - t0 >= 120:
            enough.set()
        text = scrape(port)
        scraped.append((time.monotonic(), metric(text, "received_lsn_bytes"),
                        metric(text, "written_lsn_bytes"), metric(text, "flushed_lsn_bytes"),
                        metric(text, "segments_completed_total")))
        row = repl_row(c, "xlt_met")
        if row and row[0] and row[1]:
            pg.append((time.monotonic(), int(row[0]), int(row[1])))
        time.sleep(0.1)
    bench.join()
    text = scrape(port)
    assert 'xlogtools_receive_state{state="streaming"} 1' in text
    assert metric(text, "reconnects_total") == 0 and metric(text, "storage_waiting") == 0
    assert metric(text, "lag_bytes") >= 0 and metric(text, "lag_seconds") >= 0
    assert len(scraped) > 20 and len(pg) > 20
    for a, b in zip(scraped, scraped[1:]):
        assert all(y >= x for x, y in zip(a[1:], b[1:])), (a, b)
    assert scraped[-1][3] - scraped[0][3] > SEG, "pgbench wrote too little to tell"
    assert scraped[-1][4] > scraped[0][4], "no segment completed"
    interval, slack = 1.0, 1.5
    for t, w, f in pg:
        later = [s for s in scraped if s[0] >= t]
        if later:  # the server never heard of more than the receiver had
            assert w <= later[0][2] and f <= later[0][3], ((t, w, f), later[0])
        earlier = [s for s in scraped if s[0] <= t - interval - slack]
        if earlier:  # and heard of what it had one status interval before
            assert f >= earlier[-1][3], ((t, w, f), earlier[-1])
    # the status file: the same figures, as JSON, replaced whole
    js = json.loads(status.read_text())
    assert js["state"] == "streaming" and js["slot"] == "xlt_met"
    assert Lsn(js["flushed_lsn"]) <= Lsn(js["written_lsn"]) <= Lsn(js["server_end_lsn"])
    assert int(Lsn(js["flushed_lsn"])) >= scraped[-1][3] - 4 * SEG
    assert json.loads(scrape(port, "/status"))["directory"] == str(arch)
    assert r.stop() == 0, r.stderr
    final = json.loads(status.read_text())
    assert final["state"] == "stopped" and Lsn(final["flushed_lsn"]) >= Lsn(js["flushed_lsn"])
    drop_slot(c, "xlt_met")


@pytest.fixture
def small_fs(pg_cluster_root: Path) -> Any:
    """A 16 MB tmpfs mounted for the test (root only); yields its mount point."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system for the archive needs root")
    d = Path(pg_cluster_root) / f"smallfs-{os.getpid()}-{time.monotonic_ns()}"
    d.mkdir()
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(d)],
                         capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {got.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_archive_disk_fills_up_and_is_freed(primary: Cluster, small_fs: Path,
                                            receivers: list[Receiver]) -> None:
    """The archive's file system (a 16 MB tmpfs) fills up mid-stream (another file takes
    all but 2.5 MB): the receiver stays up and says so, waiting for storage; the server never
    hears of a flush beyond what is in the files (equal to its own WAL); the slot keeps the
    rest. Once the other file is removed it streams on: every completed segment is equal to
    the primary's and none is missing."""
    c = primary
    arch = small_fs / "DIR"
    arch.mkdir()
    c.execute("CHECKPOINT;")  # a new physical slot reserves WAL from the last redo point
    create_slot(c, arch, "xlt_full")
    status = small_fs.parent / f"{small_fs.name}.status.json"  # outside the full disk
    # catch up with what the slot holds, then keep only the newest files (streaming resumes
    # after them) and take all but 2.5 MB of the space
    r0 = Receiver(arch, conninfo(c, "xlt_full"), "-S", "xlt_full", "-s", "1")
    receivers.append(r0)
    wait_until(lambda: repl_row(c, "xlt_full"), 30, what="the receiver to connect")
    make_wal(c, 10)
    c.execute("SELECT pg_switch_wal();")
    wait_received(c, "xlt_full", Lsn(c.current_lsn()), flush=True)
    assert r0.stop() == 0, r0.stderr
    done = sorted(p for p in arch.iterdir() if len(p.name) == 24)
    assert done, sorted(p.name for p in arch.iterdir())
    for p in done[:-1]:
        p.unlink()
    start_seg = int(done[-1].name[16:], 16) + 1  # where it resumes
    free = os.statvfs(small_fs)
    filler = small_fs / "filler"
    filler.write_bytes(bytes(free.f_bavail * free.f_frsize - (5 << 19)))
    r = Receiver(arch, conninfo(c, "xlt_full"), "-S", "xlt_full", "-s", "1",
                 "--status-file", str(status))
    receivers.append(r)
    wait_until(lambda: json.loads(status.read_text())["state"] == "streaming"
               if status.exists() else False, 30, what="the receiver to stream")
    target = make_wal(c, 5000)  # ~5 segments: more than the disk has room for
    wait_until(lambda: "No space left on device" in r.stderr or r.proc.poll() is not None, 60,
               what="the receiver to meet the full disk")
    wait_until(lambda: json.loads(status.read_text())["storage_waiting"], 10,
               what="the status file to say it waits for storage")
    assert r.proc.poll() is None, r.stderr
    assert "the archive cannot be written" in r.stderr and "slot \"xlt_full\"" in r.stderr
    time.sleep(3)  # it keeps trying (backoff); nothing it reports may be ahead of the files
    assert r.proc.poll() is None, r.stderr
    # what it says is durable, and what the server heard (the slot), is in the files
    said = Lsn(re.findall(r"WAL up to (\S+) is durable", r.stderr)[-1])
    row = repl_row(c, "xlt_full")
    slot_lsn = Lsn(c.sql("SELECT restart_lsn FROM pg_replication_slots "
                         "WHERE slot_name = 'xlt_full'")[0][0])
    reported = max(row[1] if row and row[1] else Lsn(0), slot_lsn)
    begin = start_seg * SEG
    assert begin < said < target and begin <= reported <= said, (said, reported, r.stderr)
    assert archived_bytes(arch, 1, begin, int(said)) == primary_bytes(c, begin, int(said))
    # the slot holds the WAL the archive has not got
    assert (c.pg_wal / segment_name(1, int(said) // SEG, SEG)).exists()
    # space freed: it streams on by itself
    filler.unlink()
    c.execute("SELECT pg_switch_wal();")
    wait_received(c, "xlt_full", target, timeout=90, flush=True)
    js = json.loads(status.read_text())
    assert r.stop() == 0, r.stderr
    assert not json.loads(status.read_text())["storage_waiting"]
    assert js["reconnects"] >= 1 and "No space left on device" in js["last_error"]
    assert assert_identical(arch, c.pg_wal) >= 4
    segnos = assert_contiguous(arch)
    assert segnos[0] == start_seg - 1
    drop_slot(c, "xlt_full")
