"""`xlogtools receive` against real primaries of every major: byte-identical segments,
synchronous standby behaviour, crash and restart, slots, promotion, authentication, TLS, bad
input. The receiver runs as the real command (a subprocess), so signals are real too."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zstandard

from xlogtools.lsn import Lsn, parse_segment_name
from xlogtools.parse.api import open_wal
from xlogtools.stream.verifier import StreamVerifier, VerifyError
from xlogtools.testing.cluster import Cluster, wait_until

SEG = 1 << 20  # the test clusters' segment size
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PASSWORD = "Sekr3t pa:ss'wörd"  # must never show up in any output


# ---------------------------------------------------------------------------------------------
# helpers


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=str(home), **extra)
    return env


def conninfo(c: Cluster, app: str = "xlt_recv", user: str = "postgres", **kw: str) -> str:
    extra = "".join(f" {k}={v}" for k, v in kw.items())
    return f"host=127.0.0.1 port={c.port} user={user} application_name={app}{extra}"


class Receiver:
    """A running `xlogtools receive -v --no-status`; stderr goes to a file."""

    def __init__(self, directory: Path, dsn: str, *args: str, env: dict[str, str] | None = None
                 ) -> None:
        self.dir = directory
        self.log = tempfile.NamedTemporaryFile("w+", prefix="xlt-recv-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xlogtools.cli", "receive", "-D", str(directory), "-d", dsn,
             "-v", "--no-status", *args],
            stdout=subprocess.DEVNULL, stderr=self.log,
            env=env or clean_env(directory.parent))

    @property
    def stderr(self) -> str:
        with open(self.log.name, newline="") as f:  # keep the status line's \r
            return f.read()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"receiver did not exit in {timeout}s:\n{self.stderr}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.wait(timeout)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def flushed(self) -> Lsn:
        m = re.findall(r"flushed up to (\S+) \(timeline", self.stderr)
        assert m, self.stderr
        return Lsn(m[-1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def run_receive(directory: Path, dsn: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", "receive", "-D",
                           str(directory), "-d", dsn, "--no-status", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(directory.parent))


def make_wal(c: Cluster, kb: int) -> Lsn:
    """About `kb` kB of WAL in one committed transaction; the LSN after its commit."""
    c.execute("CREATE TABLE IF NOT EXISTS w (a int, b text);"
              f"INSERT INTO w SELECT g, repeat('x', 900) FROM generate_series(1, {kb}) g;")
    return Lsn(c.current_lsn())


def repl_row(c: Cluster, app: str) -> tuple[Lsn | None, Lsn | None] | None:
    rows = c.sql(f"SELECT write_lsn, flush_lsn FROM pg_stat_replication "
                 f"WHERE application_name = '{app}'")
    if not rows:
        return None
    w, f = rows[0]
    return (Lsn(w) if w else None, Lsn(f) if f else None)


def wait_received(c: Cluster, app: str, target: Lsn, timeout: float = 60,
                  flush: bool = False) -> None:
    def reached() -> bool:
        row = repl_row(c, app)
        got = row and row[1 if flush else 0]
        return bool(got and got >= target)
    wait_until(reached, timeout, what=f"{app} to receive up to {target}")


def segments(d: Path) -> dict[str, Path]:
    return {p.name: p for p in d.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name)}


def assert_identical(d: Path, pg_wal: Path, saved: dict[str, bytes] | None = None) -> int:
    """Every completed segment in d equals the primary's file of that name (or the copy in
    `saved` of one the primary has removed since); how many."""
    done = segments(d)
    assert done, sorted(p.name for p in d.iterdir())
    for name, p in done.items():
        theirs = pg_wal / name
        if not theirs.exists() and saved and name in saved:
            assert p.read_bytes() == saved[name], f"{name} differs from the primary's"
            continue
        assert theirs.exists(), f"{name} is no longer in the primary's pg_wal"
        assert p.read_bytes() == theirs.read_bytes(), f"{name} differs from the primary's"
    return len(done)


def assert_partial_is_prefix(d: Path, pg_wal: Path, upto: Lsn, tli: int = 1) -> None:
    """The .partial holding `upto` has exactly the primary's bytes before it, then zeros."""
    from xlogtools.lsn import segment_name

    name = segment_name(tli, upto // SEG, SEG)
    if upto % SEG == 0 and not (d / f"{name}.partial").exists():
        assert (d / segment_name(tli, upto // SEG - 1, SEG)).exists()  # ended with a segment
        return
    part = (d / f"{name}.partial").read_bytes()
    ours = (pg_wal / name).read_bytes()
    off = upto % SEG
    assert len(part) == SEG
    assert part[:off] == ours[:off], "the .partial differs from what the primary wrote"
    assert not any(part[off:]), "the .partial holds bytes beyond what was streamed"


def assert_contiguous(d: Path, tli: int = 1) -> list[int]:
    segnos = sorted(parse_segment_name(p.name[:24], SEG)[1] for p in d.iterdir()
                    if re.fullmatch(r"[0-9A-F]{24}(\.partial)?", p.name)
                    and parse_segment_name(p.name[:24], SEG)[0] == tli)
    assert segnos == list(range(segnos[0], segnos[-1] + 1)), f"gap or duplicate: {segnos}"
    return segnos


# ---------------------------------------------------------------------------------------------
# fixtures: one primary per major, shared by this module's tests


PRIMARY_CONF = {"wal_keep_size": "64MB", "wal_sender_timeout": "20s", "checkpoint_timeout": "1h"}
HBA_PREFIX = """\
host replication scram_u 127.0.0.1/32 scram-sha-256
host replication md5_u 127.0.0.1/32 md5
host replication pw_u 127.0.0.1/32 password
hostssl replication ssl_u 127.0.0.1/32 scram-sha-256
host replication ssl_u 127.0.0.1/32 reject
host replication norepl 127.0.0.1/32 trust
"""


@pytest.fixture(scope="module")
def primaries(module_cluster_factory: Any) -> Iterator[Callable[[int], Cluster]]:
    """get(major): a started primary with password users and their pg_hba lines; one at a
    time (the previous major's is destroyed when the next is asked for)."""
    made: dict[int, Cluster] = {}

    def get(major: int) -> Cluster:
        if major not in made:
            for old in list(made):
                made.pop(old).destroy()
            c = module_cluster_factory(major, name=f"recv{major}", conf=PRIMARY_CONF)
            hba = c.datadir / "pg_hba.conf"
            hba.write_text(HBA_PREFIX + hba.read_text())
            c.execute(
                "SET password_encryption = 'scram-sha-256';"
                f"CREATE ROLE scram_u LOGIN REPLICATION PASSWORD '{PASSWORD.replace(chr(39), 2 * chr(39))}';"
                f"CREATE ROLE ssl_u LOGIN REPLICATION PASSWORD '{PASSWORD.replace(chr(39), 2 * chr(39))}';"
                f"CREATE ROLE pw_u LOGIN REPLICATION PASSWORD '{PASSWORD.replace(chr(39), 2 * chr(39))}';"
                "SET password_encryption = 'md5';"
                f"CREATE ROLE md5_u LOGIN REPLICATION PASSWORD '{PASSWORD.replace(chr(39), 2 * chr(39))}';"
                "CREATE ROLE norepl LOGIN;"
                "SELECT pg_reload_conf();")
            made[major] = c
        return made[major]

    yield get


@pytest.fixture
def primary(pg_major: int, primaries: Callable[[int], Cluster]) -> Cluster:
    return primaries(pg_major)


@pytest.fixture
def arch(pg_cluster_root: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="arch-", dir=pg_cluster_root))
    (d / "DIR").mkdir()
    yield d / "DIR"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


# ---------------------------------------------------------------------------------------------
# online verification, in memory (no server)


def _fixture_segments(major: int) -> list[tuple[int, bytes]]:
    """(segno, bytes) of the committed fixture WAL (1 MB segments)."""
    return [(parse_segment_name(p.name[:24], SEG)[1],
             zstandard.ZstdDecompressor().decompress(p.read_bytes(), max_output_size=1 << 24))
            for p in sorted((FIXTURES / f"pg{major}" / "wal").glob("*.zst"))]


def test_verifier_decodes_every_record_as_bytes_arrive(tmp_path: Path) -> None:
    from xlogtools.lsn import segment_name
    from xlogtools.parse.source import parse_long_header

    segs = _fixture_segments(15)
    info = parse_long_header(segs[0][1], "fixture")
    assert info is not None and info.seg_size == SEG
    # the reference: the reader over the same bytes as files; a server streams only up to
    # the end of its WAL, never the zeros after it
    for segno, data in segs:
        (tmp_path / segment_name(1, segno, info.seg_size)).write_bytes(data)
    expected = list(open_wal(tmp_path))
    wal_end = int(expected[-1].end)
    v = StreamVerifier(info.seg_size, info.sysid)
    v.timeline = 1
    # feed in odd-sized chunks, running the verifier after each, as the receiver does
    for segno, data in segs:
        v.start_segment(segno)
        for off in range(0, min(len(data), wal_end - segno * SEG), 7777):
            n = min(7777, wal_end - segno * SEG - off)
            v.feed(segno, off, memoryview(data)[off:off + n])
            v.run()
    assert v.records == len(expected) > 100
    assert v.next_lsn == expected[-1].end


def test_verifier_stops_at_a_bad_crc_naming_the_lsn() -> None:
    from xlogtools.parse.source import parse_long_header

    segno, data = _fixture_segments(15)[0]
    info = parse_long_header(data, "fixture")
    assert info is not None
    bad = bytearray(data)
    bad[300_000] ^= 0xFF  # somewhere inside a record
    v = StreamVerifier(info.seg_size, info.sysid)
    v.timeline = 1
    v.start_segment(segno)
    with pytest.raises(VerifyError) as ei:
        for off in range(0, len(bad), 65536):
            v.feed(segno, off, memoryview(bad)[off:off + 65536])
            v.run()
    err = ei.value
    base = segno * SEG
    assert err.lsn is not None and base <= int(err.lsn) <= base + 300_000
    assert str(err.lsn) in str(err) and err.valid_end is not None
    assert int(err.valid_end) <= base + 300_000


# ---------------------------------------------------------------------------------------------
# the command line


def test_help_and_bad_usage(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "xlogtools.cli", "receive", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Example:" in out.stdout and "--synchronous" in out.stdout
    bad = run_receive(tmp_path, "host=127.0.0.1", "--create-slot")
    assert bad.returncode == 2 and "--slot" in bad.stderr
    bad = run_receive(tmp_path, "host=127.0.0.1", "--synchronous", "--no-sync")
    assert bad.returncode == 2


def test_unreachable_host_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "keep").write_text("x")
    res = run_receive(tmp_path, f"host=127.0.0.1 port={port} password={PASSWORD.split()[0]}",
                      "-n")
    assert res.returncode == 1
    assert "Connection refused" in res.stderr and "Traceback" not in res.stderr
    assert PASSWORD.split()[0] not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


# ---------------------------------------------------------------------------------------------
# live primaries


def test_segments_are_identical_and_partial_is_what_was_streamed(
        primary: Cluster, arch: Path, receivers: list[Receiver]) -> None:
    c = primary
    c.execute("SELECT pg_switch_wal();")
    r = Receiver(arch, conninfo(c, "xlt_basic"), "-S", "xlt_basic_slot")
    receivers.append(r)
    # the slot does not exist yet: a clear error
    assert r.wait() == 1 and "replication slot \"xlt_basic_slot\" does not exist" in r.stderr
    ok = run_receive(arch, conninfo(c), "-S", "xlt_basic_slot", "--create-slot")
    assert ok.returncode == 0, ok.stderr
    again = run_receive(arch, conninfo(c), "-S", "xlt_basic_slot", "--create-slot",
                        "--if-not-exists")
    assert again.returncode == 0, again.stderr
    r = Receiver(arch, conninfo(c, "xlt_basic"), "-S", "xlt_basic_slot", "-s", "1")
    receivers.append(r)
    first = wait_until(lambda: (row := repl_row(c, "xlt_basic")) and row[0] and row[1] and row,
                       30, what="the receiver to connect and report")
    target = make_wal(c, 2500)  # ~2.5 segments
    c.execute("SELECT pg_switch_wal();")
    mid = make_wal(c, 300)  # and part of the next segment
    wait_received(c, "xlt_basic", mid, flush=True)
    last = repl_row(c, "xlt_basic")
    assert first and last and last[0] > first[0] and last[1] and first[1] and last[1] > first[1]
    assert last[1] >= target  # a slot makes the receiver report flush
    assert r.stop() == 0, r.stderr
    flushed = r.flushed()
    assert flushed >= mid
    assert assert_identical(arch, c.pg_wal) >= 3
    assert_partial_is_prefix(arch, c.pg_wal, flushed)
    assert_contiguous(arch)
    reader = open_wal(arch)
    records = list(reader)
    assert records and reader.end_of_wal is not None and reader.end_of_wal.lsn >= mid
    assert re.search(r"[1-9]\d* records verified", r.stderr), r.stderr
    slot = c.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name='xlt_basic_slot'")
    assert Lsn(slot[0][0]) == flushed  # the last report before exit carried the flush position
    c.execute("SELECT pg_drop_replication_slot('xlt_basic_slot');")


def test_compressed_segments_and_endpos(primary: Cluster, arch: Path) -> None:
    c = primary
    end = Lsn(c.current_lsn()) + 2_200_000
    method, ext = {13: ("gzip", "gz"), 14: ("lz4", "lz4"), 15: ("zstd", "zst"),
                   16: ("gzip:1", "gz"), 17: ("lz4", "lz4"), 18: ("zstd:9", "zst")}[c.major]
    r = Receiver(arch, conninfo(c, "xlt_z"), "-E", str(end), "-Z", method, "-n", "-s", "1")
    try:
        wait_until(lambda: repl_row(c, "xlt_z"), 30, what="the receiver to connect")
        while Lsn(c.current_lsn()) < end + 8192:
            make_wal(c, 600)
        assert r.wait() == 0, r.stderr  # endpos reached: exit 0 on its own
    finally:
        r.close()
    got = sorted(p.name for p in arch.iterdir() if p.name.endswith("." + ext))
    assert len(got) >= 2, sorted(p.name for p in arch.iterdir())
    for name in got:
        from xlogtools.parse.source import read_file_bytes

        raw = read_file_bytes(arch / name, "zst" if ext == "zst" else ext)
        assert raw == (c.pg_wal / name[:24]).read_bytes()
        assert not (arch / name[:24]).exists()  # the plain file went once compressed
    reader = open_wal(arch)
    list(reader)
    assert reader.end_of_wal is not None and reader.end_of_wal.lsn >= end


def test_synchronous_standby_waits_for_the_receiver(
        primary: Cluster, arch: Path, receivers: list[Receiver]) -> None:
    c = primary
    r = Receiver(arch, conninfo(c, "xlt_sync"), "--synchronous", "-s", "1")
    receivers.append(r)
    wait_until(lambda: repl_row(c, "xlt_sync"), 30, what="the receiver to connect")
    c.execute("ALTER SYSTEM SET synchronous_standby_names = 'xlt_sync'; SELECT pg_reload_conf();")
    try:
        wait_until(lambda: c.sql("SELECT sync_state FROM pg_stat_replication WHERE "
                                 "application_name = 'xlt_sync'") == [("sync",)], 30,
                   what="the receiver to become the synchronous standby")
        c.execute("CREATE TABLE IF NOT EXISTS s (a int)")
        # At the moment a commit returns, the WAL up to the flush position the primary has
        # seen is in our files (checked with the receiver frozen, so it cannot catch up).
        for i in range(5):
            before = Lsn(c.execute(f"BEGIN; INSERT INTO s VALUES ({i}); "
                                   "SELECT pg_current_wal_insert_lsn(); COMMIT;").strip())
            os.kill(r.proc.pid, signal.SIGSTOP)
            try:
                row = repl_row(c, "xlt_sync")
                assert row and row[1] is not None and row[1] > before, (row, before)
                flush = row[1]
                part = arch / (f"{1:08X}{0:08X}{flush // SEG:08X}.partial")
                off = flush % SEG
                data = part.read_bytes()[:off] if part.exists() else b""
                if off:
                    assert data == (c.pg_wal / part.name[:24]).read_bytes()[:off]
            finally:
                os.kill(r.proc.pid, signal.SIGCONT)
        # a commit waits while the receiver is stopped, and completes after it resumes
        os.kill(r.proc.pid, signal.SIGSTOP)
        done = threading.Event()
        t = threading.Thread(target=lambda: (c.execute("INSERT INTO s VALUES (42)"), done.set()))
        t.start()
        time.sleep(2.0)
        assert not done.is_set(), "the commit did not wait for the synchronous receiver"
        os.kill(r.proc.pid, signal.SIGCONT)
        assert done.wait(20), "the commit did not complete after the receiver resumed"
        t.join()
    finally:
        c.execute("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();")
    assert r.stop(signal.SIGTERM) == 0, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("loop", ["c", "python"])
def test_synchronous_under_load_segments_identical(
        primary: Cluster, arch: Path, receivers: list[Receiver], loop: str) -> None:
    """A synchronous receiver under many small commits (the C loop's rounds, or with
    XLOGTOOLS_NO_C=1 the Python path's), across segment ends and big multi-message
    transactions: the segments are the primary's, the .partial its prefix, and what the
    primary was told is flushed is in the files."""
    if loop == "c" and os.environ.get("XLOGTOOLS_NO_C"):
        pytest.skip("XLOGTOOLS_NO_C is set: the Python path is under test")
    c = primary
    app = f"xlt_load_{loop}"
    env = clean_env(arch.parent, **({"XLOGTOOLS_NO_C": "1"} if loop == "python" else {}))
    start = Lsn(c.current_lsn())
    # without TLS: the C loop does not serve TLS connections, and another test may have
    # turned ssl on for this module's primary (sslmode=prefer would then use it)
    r = Receiver(arch, conninfo(c, app, sslmode="disable"), "--synchronous", env=env)
    receivers.append(r)
    wait_until(lambda: repl_row(c, app) or r.proc.poll() is not None, 30,
               what="the receiver to connect")
    assert r.proc.poll() is None, r.stderr
    c.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{app}'; SELECT pg_reload_conf();")
    try:
        wait_until(lambda: c.sql("SELECT sync_state FROM pg_stat_replication WHERE "
                                 f"application_name = '{app}'") == [("sync",)], 30,
                   what="the receiver to become the synchronous standby")
        c.execute("CREATE TABLE IF NOT EXISTS small (a int, b text)")
        script = c.base / "small.sql"
        script.write_text("INSERT INTO small VALUES (:client_id, repeat('y', 200));\n")
        script.chmod(0o644)
        while Lsn(c.current_lsn()) - start < 3 * SEG:
            c.pgbench(["-n", "-c", "4", "-t", "1500", "-f", str(script)])
            make_wal(c, 700)  # one big transaction: many full messages, a segment end
        end = Lsn(c.current_lsn())
        wait_received(c, app, end, flush=True)
    finally:
        c.execute("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();")
    assert r.stop() == 0, r.stderr
    assert assert_identical(arch, c.pg_wal) >= 3
    assert_contiguous(arch)
    flushed = r.flushed()  # (the server may have written more after `end`)
    assert flushed >= end
    assert_partial_is_prefix(arch, c.pg_wal, flushed)
    rounds = re.findall(r"(\d+) synchronous rounds were done by the C loop", r.stderr)
    if loop == "c":
        assert rounds and int(rounds[-1]) > 1000, r.stderr[-2000:]
    else:
        assert not rounds, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_kill9_restart_slot_retention_and_primary_restart(
        primary: Cluster, arch: Path, receivers: list[Receiver]) -> None:
    c = primary
    ok = run_receive(arch, conninfo(c), "-S", "xlt_crash", "--create-slot")
    assert ok.returncode == 0, ok.stderr
    r = Receiver(arch, conninfo(c, "xlt_crash"), "-S", "xlt_crash", "-s", "1")
    receivers.append(r)
    wait_until(lambda: repl_row(c, "xlt_crash"), 30, what="the receiver to connect")
    mid = make_wal(c, 1500)  # 1.5 segments: the receiver is in the middle of one
    wait_received(c, "xlt_crash", mid, flush=True)
    r.kill9()
    assert any(p.name.endswith(".partial") for p in arch.iterdir())
    saved = {n: (c.pg_wal / n).read_bytes() for n in segments(arch)}
    # while it is down the slot holds the WAL, even with wal_keep_size 0 and checkpoints
    c.execute("ALTER SYSTEM SET wal_keep_size = 0; SELECT pg_reload_conf();")
    try:
        restart = Lsn(c.sql("SELECT restart_lsn FROM pg_replication_slots "
                            "WHERE slot_name = 'xlt_crash'")[0][0])
        for _ in range(3):
            make_wal(c, 1200)
            c.execute("SELECT pg_switch_wal(); CHECKPOINT;")
        assert (c.pg_wal / f"{1:08X}{0:08X}{restart // SEG:08X}").exists()
        c.execute("ALTER SYSTEM RESET wal_keep_size; SELECT pg_reload_conf();")
        r2 = Receiver(arch, conninfo(c, "xlt_crash"), "-S", "xlt_crash", "-s", "1",
                      "--status")
        receivers.append(r2)
        target = make_wal(c, 800)
        wait_received(c, "xlt_crash", target, flush=True)
        # the primary restarts mid-stream: the receiver reconnects and goes on
        c.restart()
        wait_until(lambda: "disconnected" in r2.stderr, 30, what="the receiver to notice")
        wait_until(lambda: repl_row(c, "xlt_crash"), 60, what="the receiver to reconnect")
        target = make_wal(c, 1000)
        wait_received(c, "xlt_crash", target, flush=True)
        assert r2.stop() == 0, r2.stderr
    finally:
        c.execute("ALTER SYSTEM RESET wal_keep_size; SELECT pg_reload_conf();")
    assert_identical(arch, c.pg_wal, saved)
    assert_contiguous(arch)
    reader = open_wal(arch)
    records = list(reader)
    for a, b in zip(records, records[1:]):  # no gap, no duplicate: one unbroken chain
        assert b.prev == a.lsn
    assert reader.end_of_wal is not None and reader.end_of_wal.lsn >= target
    assert_partial_is_prefix(arch, c.pg_wal, r2.flushed())
    # the status line (forced on: stderr is not a terminal here)
    assert re.search(r"\r[0-9A-F]+/[0-9A-F]+ \(timeline 1\) flushed \S+ lag \d+ \S+ +[\d.]+ MB/s",
                     r2.stderr), r2.stderr[-500:]
    dropped = run_receive(arch, conninfo(c), "-S", "xlt_crash", "--drop-slot")
    assert dropped.returncode == 0, dropped.stderr
    assert c.sql("SELECT count(*) FROM pg_replication_slots") == [("0",)]


@pytest.mark.parametrize("user,how", [
    ("scram_u", "conninfo"), ("scram_u", "PGPASSWORD"), ("scram_u", "pgpass"),
    ("md5_u", "conninfo"), ("md5_u", "PGPASSWORD"), ("md5_u", "pgpass"), ("pw_u", "uri")])
def test_password_authentication(primary: Cluster, arch: Path, user: str, how: str) -> None:
    c = primary
    home = arch.parent
    env = clean_env(home)
    dsn = conninfo(c, user=user)
    quoted = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    if how == "conninfo":
        dsn += f" password='{quoted}'"
    elif how == "PGPASSWORD":
        env["PGPASSWORD"] = PASSWORD
    elif how == "pgpass":
        pgpass = home / ".pgpass"
        pgpass.write_text(f"127.0.0.1:{c.port}:replication:{user}:"
                          + PASSWORD.replace("\\", "\\\\").replace(":", "\\:") + "\n")
        pgpass.chmod(0o600)
    else:
        from urllib.parse import quote

        dsn = f"postgresql://{user}:{quote(PASSWORD, safe='')}@127.0.0.1:{c.port}/x"
    # endpos before the start: connect, authenticate, IDENTIFY_SYSTEM, nothing to stream
    res = run_receive(arch, dsn, "-E", "0/1", "-n", "-v", env=env)
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stderr and PASSWORD.split()[0] not in res.stderr
    if how == "pgpass":  # a readable password file is refused, as libpq does
        (home / ".pgpass").chmod(0o644)
        res = run_receive(arch, dsn, "-E", "0/1", "-n", env=env)
        assert res.returncode == 1 and "group or world access" in res.stderr
        assert "no password supplied" in res.stderr


def test_authentication_failures(primary: Cluster, arch: Path) -> None:
    c = primary
    before = sorted(p.name for p in arch.iterdir())
    res = run_receive(arch, conninfo(c, user="scram_u") + " password=wrongpass", "-n")
    assert res.returncode == 1
    assert "password authentication failed for user \"scram_u\"" in res.stderr
    assert "wrongpass" not in res.stderr and "Traceback" not in res.stderr
    res = run_receive(arch, conninfo(c, user="md5_u") + " password=wrongpass", "-n")
    assert res.returncode == 1 and "password authentication failed" in res.stderr
    res = run_receive(arch, conninfo(c, user="norepl"), "-n")
    assert res.returncode == 1
    assert re.search(r"replication role|permission denied to start WAL sender|REPLICATION",
                     res.stderr), res.stderr
    assert sorted(p.name for p in arch.iterdir()) == before


def test_sslmode_require_with_a_self_signed_certificate(
        primary: Cluster, arch: Path, server_cert: tuple[Path, Path]) -> None:
    c = primary
    crt, key = server_cert
    for src, name in ((crt, "server.crt"), (key, "server.key")):
        dst = c.datadir / name
        shutil.copy(src, dst)
        dst.chmod(0o600)
        c._chown(dst)
    c.execute("ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();")
    if c.sql("SHOW ssl") != [("on",)]:
        pytest.skip(f"PostgreSQL {c.major} here was built without SSL support")
    env = clean_env(arch.parent, PGPASSWORD=PASSWORD)
    res = run_receive(arch, conninfo(c, user="ssl_u", sslmode="require"), "-E", "0/1", "-n",
                      env=env)
    assert res.returncode == 0, res.stderr
    res = run_receive(arch, conninfo(c, user="ssl_u", sslmode="disable"), "-E", "0/1", "-n",
                      env=env)  # pg_hba: ssl_u only over SSL
    assert res.returncode == 1 and "pg_hba.conf rejects" in res.stderr
    res = run_receive(arch, conninfo(c, user="ssl_u", sslmode="verify-full"), "-E", "0/1",
                      "-n", env=env)  # no root certificate to check it against
    assert res.returncode == 1 and "root certificate file" in res.stderr
    res = run_receive(arch, conninfo(c, user="ssl_u", sslmode="verify-ca",
                                     sslrootcert=str(crt)), "-E", "0/1", "-n", env=env)
    assert res.returncode == 0, res.stderr
    # streaming over TLS works too (and SCRAM binds to the channel: SCRAM-SHA-256-PLUS)
    end = Lsn(c.current_lsn()) + 300_000
    r = Receiver(arch, conninfo(c, "xlt_tls", user="ssl_u", sslmode="require",
                                channel_binding="require"), "-E", str(end), "-n", env=env)
    try:
        wait_until(lambda: c.sql("SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s "
                                 "USING (pid) WHERE application_name = 'xlt_tls'") == [("t",)],
                   30, what="the receiver to stream over TLS")
        while Lsn(c.current_lsn()) < end + 8192:
            make_wal(c, 200)
        assert r.wait() == 0, r.stderr
        assert PASSWORD not in r.stderr
    finally:
        r.close()
    reader = open_wal(arch)
    list(reader)
    assert reader.end_of_wal is not None and reader.end_of_wal.lsn >= end


def test_foreign_wal_in_dir_is_refused_untouched(
        primary: Cluster, arch: Path, cluster_factory: Any) -> None:
    other = cluster_factory(primary.major, name="other", start=False)
    seg = sorted(p for p in other.pg_wal.iterdir() if len(p.name) == 24)[0]
    shutil.copy(seg, arch / seg.name)
    before = (arch / seg.name).read_bytes()
    res = run_receive(arch, conninfo(primary), "-n")
    assert res.returncode == 1
    assert "holds WAL of another database system" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert (arch / seg.name).read_bytes() == before
    assert sorted(p.name for p in arch.iterdir() if not p.name.startswith(".")) == [seg.name]


def test_server_error_mid_stream(primary: Cluster, arch: Path, receivers: list[Receiver]) -> None:
    c = primary
    r = Receiver(arch, conninfo(c, "xlt_term"), "-n", "-s", "1")
    receivers.append(r)
    wait_until(lambda: repl_row(c, "xlt_term"), 30, what="the receiver to connect")
    target = make_wal(c, 1200)
    wait_received(c, "xlt_term", target)
    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication "
              "WHERE application_name = 'xlt_term'")
    assert r.wait() == 1
    assert "terminating connection due to administrator command" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert_identical(arch, c.pg_wal)
    part = [p for p in arch.iterdir() if p.name.endswith(".partial")]
    assert len(part) == 1
    data = part[0].read_bytes()
    used = len(data.rstrip(b"\0"))
    assert data[:used] == (c.pg_wal / part[0].name[:24]).read_bytes()[:used]


def test_corrupt_wal_on_the_server_stops_verification(primary: Cluster, arch: Path) -> None:
    c = primary
    start = Lsn(c.current_lsn())
    make_wal(c, 2500)  # the segment after start's is all records
    c.execute("SELECT pg_switch_wal();")
    for _ in range(6):  # push the segment out of the server's WAL buffers
        make_wal(c, 1000)
    segno = start // SEG + 1
    name = f"{1:08X}{0:08X}{segno:08X}"
    victim = c.pg_wal / name
    original = victim.read_bytes()
    shutil.copy(c.pg_wal / f"{1:08X}{0:08X}{segno - 1:08X}", arch)  # start at the victim
    end = Lsn((segno + 1) * SEG)
    try:
        with open(victim, "r+b") as f:
            f.seek(500_000)
            b = f.read(1)
            f.seek(500_000)
            f.write(bytes([b[0] ^ 0xFF]))
        res = run_receive(arch, conninfo(c), "-E", str(end), "-n")
    finally:
        victim.write_bytes(original)
    assert res.returncode == 1, res.stderr
    m = re.search(r"at ([0-9A-F]+/[0-9A-F]+)", res.stderr)
    assert "WAL verification failed" in res.stderr and m, res.stderr
    assert segno * SEG <= Lsn(m.group(1)) <= segno * SEG + 500_000
    assert "is valid and kept" in res.stderr


def test_promotion_is_followed_to_the_new_timeline(
        pg_major: int, cluster_factory: Any, arch: Path, receivers: list[Receiver]) -> None:
    primary = cluster_factory(pg_major, name="tlprim", conf=PRIMARY_CONF)
    standby = cluster_factory.standby(primary, name="tlstby")
    r = Receiver(arch, conninfo(standby, "xlt_tl"), "-s", "1")
    receivers.append(r)
    wait_until(lambda: repl_row(standby, "xlt_tl"), 60, what="the receiver to connect")
    end1 = make_wal(primary, 1500)
    wait_until(lambda: Lsn(standby.current_lsn()) >= end1, 60, what="the standby to replay")
    wait_received(standby, "xlt_tl", end1)
    standby.promote()
    wait_until(lambda: (arch / "00000002.history").exists(), 60,
               what="the receiver to fetch the history file")
    end2 = make_wal(standby, 1500)
    wait_received(standby, "xlt_tl", end2)
    assert r.stop() == 0, r.stderr
    assert (arch / "00000002.history").read_bytes() == \
        (standby.pg_wal / "00000002.history").read_bytes()
    assert "switched to timeline 2" in r.stderr
    for name in segments(arch):  # completed segments of both timelines match the server's
        if (standby.pg_wal / name).exists():
            assert (arch / name).read_bytes() == (standby.pg_wal / name).read_bytes(), name
    reader = open_wal(arch)
    records = list(reader)
    assert reader.end_of_wal is not None and reader.end_of_wal.lsn >= end2
    assert {rec.timeline for rec in records} == {1, 2}
    for a, b in zip(records, records[1:]):
        assert b.prev == a.lsn
    dump = subprocess.run([sys.executable, "-m", "xlogtools.cli", "dump", str(arch)],
                          capture_output=True, text=True, timeout=120)
    assert dump.stdout.count("\n") == len(records), dump.stderr[-500:]
