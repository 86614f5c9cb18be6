"""`xlogtools serve`: a walsender over an archive, checked against real standbys and
pg_receivewal of every major, plus the protocol's bad-input paths against a running server."""
from __future__ import annotations

import contextlib
import gzip
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import zstandard

from xlogtools.lsn import Lsn
from xlogtools.parse.api import open_wal
from xlogtools.parse.source import parse_long_header
from xlogtools.stream import messages as M
from xlogtools.stream import protocol as P
from xlogtools.stream.backend import Backend, BState, ClientProtocolError
from xlogtools.stream.replcommands import (CommandError, IdentifySystem, Show, StartReplication,
                                           TimelineHistory, parse_command)
from xlogtools.stream.scram import ScramExchange, ScramVerifier
from xlogtools.stream.sender import valid_length
from xlogtools.stream.users import add_user, load_users, make_verifier
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import wait_until
from oracle import replayed

FIXTURE_WAL = Path(__file__).parent.parent / "fixtures" / "pg15" / "wal"
USER, PASSWORD = "replicator", "s3cret pw"


# ---------------------------------------------------------------------------------------------
# helpers: the server as a subprocess, a small blocking client


class Server:
    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.log = directory.parent / f"serve-{directory.name}.log"
        self.logfh = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xlogtools.cli", "serve", "-D", str(directory), "--port", "0",
             "--status-interval", "0", "-v", *args],
            stdout=subprocess.DEVNULL, stderr=self.logfh)
        self.port = int(wait_until(self._port, 20, what="serve to listen"))

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited {self.proc.returncode}: {self.log.read_text()}")
        m = re.search(r"listening on [^:]+:(\d+)", self.log.read_text())
        return int(m.group(1)) if m else None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfh.close()


@contextmanager
def serving(directory: Path, *args: str) -> Iterator[Server]:
    s = Server(directory, *args)
    try:
        yield s
    except BaseException:
        # what the server said goes with the failure (pytest shows captured output)
        text = s.log.read_text(errors="replace") if s.log.exists() else ""
        print(f"--- serve log tail ({s.log}) ---\n" + "\n".join(text.splitlines()[-80:]))
        raise
    finally:
        s.stop()


class Client:
    """A blocking replication client on protocol.Frontend (the project's own codec)."""

    def __init__(self, port: int, user: str = USER, password: str | None = PASSWORD,
                 replication: str | None = "true") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.fe = P.Frontend()
        params = [("user", user), ("application_name", "pytest")]
        if replication is not None:
            params.append(("replication", replication))
        self.sock.sendall(self.fe.send(M.StartupMessage(tuple(params))))
        self.password = password
        self.user = user

    def event(self) -> object:
        while True:
            ev = self.fe.next_event()
            if ev is not M.NEED_DATA:
                return ev
            self.fe.receive_data(self.sock.recv(65536))

    def login(self) -> object:
        """ReadyForQuery or the ErrorResponse that refused us."""
        from scramp import ScramClient
        sc = None
        while True:
            ev = self.event()
            if isinstance(ev, M.AuthenticationSASL):
                sc = ScramClient(list(ev.mechanisms), self.user, self.password or "")
                self.sock.sendall(self.fe.send(M.SASLInitialResponse(
                    "SCRAM-SHA-256", sc.get_client_first().encode())))
            elif isinstance(ev, M.AuthenticationSASLContinue):
                assert sc is not None
                sc.set_server_first(ev.data.decode())
                self.sock.sendall(self.fe.send(M.SASLResponse(sc.get_client_final().encode())))
            elif isinstance(ev, M.AuthenticationSASLFinal):
                assert sc is not None
                sc.set_server_final(ev.data.decode())
            elif isinstance(ev, (M.ReadyForQuery, M.ErrorResponse, M.ConnectionClosed)):
                return ev

    def query(self, sql: str) -> list[object]:
        self.sock.sendall(self.fe.send(M.Query(sql)))
        out = []
        while True:
            ev = self.event()
            out.append(ev)
            if isinstance(ev, (M.ReadyForQuery, M.CopyBothResponse, M.ConnectionClosed)):
                return out

    def close(self) -> None:
        self.sock.close()


def write_users(path: Path) -> Path:
    add_user(path, USER, PASSWORD)
    return path


# ---------------------------------------------------------------------------------------------
# pure parts


def test_replication_commands_parse() -> None:
    assert parse_command("IDENTIFY_SYSTEM") == IdentifySystem()
    assert parse_command("identify_system;") == IdentifySystem()
    assert parse_command("SHOW wal_segment_size") == Show("wal_segment_size")
    assert parse_command("TIMELINE_HISTORY 2") == TimelineHistory(2)
    assert parse_command("START_REPLICATION 0/3000000 TIMELINE 1") == \
        StartReplication(Lsn("0/3000000"), 1)
    assert parse_command('START_REPLICATION SLOT "sb 1" PHYSICAL 1A/B0 TIMELINE 3') == \
        StartReplication(Lsn("1A/B0"), 3, "sb 1")
    for bad, state in [("SELECT 1", "0A000"), ("BASE_BACKUP", "0A000"),
                       ("START_REPLICATION SLOT s LOGICAL 0/0", "0A000"),
                       ("START_REPLICATION", "42601"), ("TIMELINE_HISTORY x", "42601"),
                       ("START_REPLICATION 0/0 TIMELINE 0", "42601")]:
        with pytest.raises(CommandError) as ei:
            parse_command(bad)
        assert ei.value.sqlstate == state, bad


def test_scram_exchange_with_scramp_client_and_users_file(tmp_path: Path) -> None:
    from scramp import ScramClient

    users = load_users(write_users(tmp_path / "users"))
    for pw, ok in [(PASSWORD, True), ("wrong", False)]:
        c = ScramClient(["SCRAM-SHA-256"], USER, pw)
        ex = ScramExchange(USER, users[USER])
        c.set_server_first(ex.first("SCRAM-SHA-256", c.get_client_first().encode()).decode())
        if ok:
            c.set_server_final(ex.final(c.get_client_final().encode()).decode())
        else:
            with pytest.raises(Exception, match="password authentication failed"):
                ex.final(c.get_client_final().encode())
    assert ScramVerifier.parse(make_verifier("x")).iterations == 4096


def test_backend_rejects_garbage_and_parses_standby_messages() -> None:
    be = Backend()
    be.receive_data(struct.pack("!ii", 8, 1234 << 16 | 5679))
    assert isinstance(be.next_event(), M.SSLRequest)
    be.receive_data(struct.pack("!ii", 8, 99 << 16))
    with pytest.raises(ClientProtocolError):
        be.next_event()
    be = Backend()
    be.state = BState.COPY_BOTH
    be.receive_data(M.encode(M.StandbyStatusUpdate(10, 9, 8, 7, True)))
    ev = be.next_event()
    assert isinstance(ev, M.StandbyStatusUpdate) and (ev.write, ev.flush, ev.apply) == (10, 9, 8)
    be.receive_data(b"d\0\0\0\x06r\0")
    with pytest.raises(ClientProtocolError):
        be.next_event()


def test_valid_length_stops_at_stale_pages() -> None:
    data = zstandard.ZstdDecompressor().stream_reader(
        open(FIXTURE_WAL / "000000010000000000000008.zst", "rb")).read()
    cluster = parse_long_header(data[:40], "000000010000000000000008")
    assert cluster is not None
    n, complete = valid_length(data, 8, cluster, 1)
    # the recycled pages after the last record are not sent; it is the reader's end of WAL
    assert not complete and 909312 < n <= 917504
    reader = open_wal(FIXTURE_WAL, start=Lsn(8 << 20))
    last = None
    for last in reader:
        pass
    assert last is not None and reader.end_of_wal.reason == "invalid_length"  # zeros, then stale pages
    assert n == int(last.end) - (8 << 20)


# ---------------------------------------------------------------------------------------------
# a running server, no PostgreSQL needed: security, bad input, removed WAL


@pytest.fixture
def fixture_server(tmp_path: Path) -> Iterator[Server]:
    arch = tmp_path / "arch"
    shutil.copytree(FIXTURE_WAL, arch)
    with serving(arch, "--auth", str(write_users(tmp_path / "users")), "--timeout", "5") as s:
        yield s


def test_security_refusals(fixture_server: Server) -> None:
    port = fixture_server.port
    c = Client(port, password="wrong")
    ev = c.login()
    assert isinstance(ev, M.ErrorResponse) and ev.sqlstate == "28P01", ev
    c = Client(port, user="nobody", password="x")
    ev = c.login()
    assert isinstance(ev, M.ErrorResponse) and ev.sqlstate == "28P01"
    c = Client(port, replication=None)  # a normal session: an error, not a hang
    ev = c.login()
    assert isinstance(ev, M.ErrorResponse) and ev.sqlstate == "28000"
    assert "replication" in ev.message
    c = Client(port)
    assert isinstance(c.login(), M.ReadyForQuery)
    res = c.query("SELECT 1")
    assert isinstance(res[0], M.ErrorResponse) and res[0].sqlstate == "0A000"
    res = c.query("IDENTIFY_SYSTEM")
    row = next(e for e in res if isinstance(e, M.DataRow))
    # xlogpos: the end of the last record as PostgreSQL counts it (MAXALIGNed, EndRecPtr)
    assert row.values[1] == b"1" and row.values[2] == b"0/8DE4A0"
    c.close()


def test_removed_segment_error(fixture_server: Server) -> None:
    c = Client(fixture_server.port)
    assert isinstance(c.login(), M.ReadyForQuery)
    res = c.query("START_REPLICATION 0/100000 TIMELINE 1")
    assert isinstance(res[-1], M.CopyBothResponse)
    ev = c.event()
    assert isinstance(ev, M.ErrorResponse)
    assert ev.message == ("requested WAL segment 000000010000000000000001 has already been "
                          "removed"), ev.message
    assert ev.sqlstate == "58P01"
    assert isinstance(c.event(), M.ReadyForQuery)
    res = c.query("START_REPLICATION 0/800000 TIMELINE 1")  # still usable afterwards
    assert isinstance(res[-1], M.CopyBothResponse)
    data = c.event()
    assert isinstance(data, M.XLogData) and data.start == 0x800000
    c.close()


def test_fuzz_never_kills_the_server(fixture_server: Server) -> None:
    port = fixture_server.port
    rng = random.Random(6)
    good = Client(port)
    assert isinstance(good.login(), M.ReadyForQuery)
    startup = M.encode(M.StartupMessage((("user", USER), ("replication", "true"))))
    frames = [b"", b"\0", os.urandom(3), startup[:7], startup[:-1],
              struct.pack("!ii", 8, 1234 << 16 | 5679) + b"junk", struct.pack("!i", -5),
              struct.pack("!i", 1 << 30), b"Q\0\0\0\x05", b"p\xff\xff\xff\xff"]
    frames += [os.urandom(rng.randrange(1, 300)) for _ in range(60)]
    frames += [startup + os.urandom(rng.randrange(1, 100)) for _ in range(30)]
    for f in frames:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f)
            s.shutdown(socket.SHUT_WR)
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            # an answer, if any, is an ErrorResponse, an auth request or an SSL 'N'
            assert got[:1] in (b"", b"E", b"R", b"N"), (f, got[:40])
    # inside an established session: garbage while streaming
    bad = Client(port)
    assert isinstance(bad.login(), M.ReadyForQuery)
    bad.query("START_REPLICATION 0/800000 TIMELINE 1")
    bad.sock.sendall(b"d\0\0\0\x09zgarbage" + os.urandom(50))
    bad.close()
    assert fixture_server.alive()
    res = good.query("IDENTIFY_SYSTEM")  # the other client never noticed
    assert isinstance(res[-1], M.ReadyForQuery)
    good.close()


# ---------------------------------------------------------------------------------------------
# real standbys and pg_receivewal


def chown_to_server_user(path: Path) -> None:
    user = pgbin.server_user()
    if user is not None:
        for p in [path, *path.rglob("*")]:
            os.chown(p, user.pw_uid, user.pw_gid)


def digest(cluster) -> list[tuple[str | None, ...]]:  # type: ignore[no-untyped-def]
    return cluster.sql("SELECT 't1', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id)"
                       ", '')) FROM t1 t UNION ALL SELECT 't2', count(*), md5(coalesce("
                       "string_agg(t::text, '|' ORDER BY id), '')) FROM t2 t")


WORKLOAD = """
INSERT INTO t1 SELECT g, md5(g::text), repeat('x', g % 300) FROM generate_series(1, 20000) g;
UPDATE t1 SET v = v || '!' WHERE id % 7 = 0;
DELETE FROM t1 WHERE id % 11 = 0;
INSERT INTO t2 SELECT g, now(), g * 1.5 FROM generate_series(1, 8000) g;
SELECT pg_switch_wal();
UPDATE t2 SET n = n + 1 WHERE id % 3 = 0;
"""


def set_conninfo(standby, port: int, name: str, extra: str = "") -> None:  # type: ignore[no-untyped-def]
    auto = standby.datadir / "postgresql.auto.conf"
    lines = [ln for ln in auto.read_text().splitlines()
             if not ln.lstrip().startswith("primary_conninfo")]
    lines.append(f"primary_conninfo = 'host=127.0.0.1 port={port} user={USER} "
                 f"password=''{PASSWORD}'' application_name={name}{extra}'")
    auto.write_text("\n".join(lines) + "\n")


def flushed_record_end(c) -> str:  # type: ignore[no-untyped-def]
    """The end of the last record inserted so far, once it is on disk: a target a standby can
    replay to from a copy of pg_wal taken now. (The flush position itself can lie inside a
    record, when the WAL writer flushed whole pages of one still being written, e.g. a
    background record: a copy taken then holds only part of it, and no standby of that copy
    replays to there.)"""
    lsn = c.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
    wait_until(lambda: Lsn(c.sql("SELECT pg_current_wal_flush_lsn()")[0][0]) >= Lsn(lsn), 30,
               0.05, what=f"the WAL up to {lsn} to be flushed")
    return str(lsn)


def make_archive(src: Path, arch: Path) -> list[str]:
    """Copy pg_wal as an archive: some segments gzip/zstd-compressed, the last one .partial.
    Every file appears whole (written aside, then renamed, as an archiver does), and a
    segment archived whole replaces its earlier .partial (as pg_receivewal renames it), so a
    server polling DIR never reads a half-written file."""
    arch.mkdir(parents=True, exist_ok=True)
    segs = sorted(p.name for p in src.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))

    def put(name: str, data: bytes) -> None:
        tmp = arch / f".tmp-{name}"
        tmp.write_bytes(data)
        os.replace(tmp, arch / name)

    for i, name in enumerate(segs):
        data = (src / name).read_bytes()
        if i == len(segs) - 1:
            put(name + ".partial", data)
            continue
        if i % 3 == 1:
            put(name + ".gz", gzip.compress(data, 1))
        elif i % 3 == 2:
            put(name + ".zst", zstandard.ZstdCompressor().compress(data))
        else:
            put(name, data)
        with contextlib.suppress(FileNotFoundError):
            (arch / (name + ".partial")).unlink()
    for h in src.glob("*.history"):
        put(h.name, h.read_bytes())
    return segs


def test_standby_and_pg_receivewal_from_archive(pg_major: int, cluster_factory,  # type: ignore[no-untyped-def]
                                                 pg_cluster_root: Path) -> None:
    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t1 (id int PRIMARY KEY, h text, v text);"
                    "CREATE TABLE t2 (id int PRIMARY KEY, ts timestamptz, n numeric);")
    standby = cluster_factory.standby(primary, name="sb", start=False)
    primary.execute(WORKLOAD)
    target = primary.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
    expected = digest(primary)
    primary.stop()
    work = primary.base.parent / f"{primary.base.name}-serve"
    arch = work / "arch"
    segs = make_archive(primary.pg_wal, arch)
    assert len(segs) >= 4
    with serving(arch, "--auth", str(write_users(work / "users")), "--timeout", "20",
                 "--status-file", str(work / "status.json")) as srv:
        set_conninfo(standby, srv.port, "sb")
        standby.start()
        wait_until(lambda: replayed(standby, target), 60, 0.3, what="standby to catch up")
        assert digest(standby) == expected
        status = work / "status.json"
        wait_until(lambda: status.exists() and '"application_name": "sb"' in status.read_text(),
                   10, what="the status file to list the standby")

        # (2) pg_receivewal of the same major writes the primary's segments byte for byte
        rw = work / "rw"
        rw.mkdir()
        shutil.copy(primary.pg_wal / segs[0], rw / segs[0])  # it resumes after this one
        chown_to_server_user(rw)
        last_complete = segs[-2]
        endpos = Lsn((int(last_complete[8:16], 16) * 0x100000000 // (1 << 20)
                      + int(last_complete[16:], 16) + 1) * (1 << 20))
        try:
            tool = primary.tool("pg_receivewal")
        except pgbin.Unavailable:  # 13 ships a server only: Debian's 15 client streams 13 too
            tool = pgbin.tool(15, "pg_receivewal")
        primary.run([tool, "-D", str(rw), "-n", "--no-sync"
                     if pg_major >= 15 else "-n", "-E", str(endpos), "-d",
                     f"host=127.0.0.1 port={srv.port} user={USER} password='{PASSWORD}'"],
                    timeout=120)
        for name in segs[1:-1]:
            assert (rw / name).read_bytes() == (primary.pg_wal / name).read_bytes(), name
    standby.stop()


def copy_new_timeline(src: Path, arch: Path, tli: int) -> None:
    for p in src.iterdir():
        if p.name.startswith(f"{tli:08X}") and re.fullmatch(r"[0-9A-F]{24}", p.name) \
                or p.name.endswith(".history"):
            shutil.copy(p, arch / p.name)


def test_standby_follows_timeline_switch_in_archive(pg_major: int, cluster_factory) -> None:  # type: ignore[no-untyped-def]
    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t1 (id int PRIMARY KEY, h text, v text);"
                    "CREATE TABLE t2 (id int PRIMARY KEY, ts timestamptz, n numeric);")
    promoted = cluster_factory.standby(primary, name="promoted")
    late = cluster_factory.standby(primary, name="late", start=False)
    primary.execute(WORKLOAD)
    lsn = primary.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
    wait_until(lambda: replayed(promoted, lsn), 60, 0.2, what="the standby to catch up")
    primary.stop()
    promoted.promote()
    promoted.execute("INSERT INTO t1 SELECT g, 'tli2', 'after promotion' FROM "
                     "generate_series(100001, 103000) g; DELETE FROM t2 WHERE id < 100;")
    target = promoted.sql("SELECT pg_current_wal_insert_lsn()")[0][0]
    expected = digest(promoted)
    promoted.stop()
    work = primary.base.parent / f"{primary.base.name}-serve"
    arch = work / "arch"
    make_archive(primary.pg_wal, arch)
    copy_new_timeline(promoted.pg_wal, arch, 2)
    assert (arch / "00000002.history").exists()
    with serving(arch, "--auth", str(write_users(work / "users"))) as srv:
        set_conninfo(late, srv.port, "late")
        late.start()
        wait_until(lambda: replayed(late, target), 90, 0.3, what="the standby to follow tli 2")
        assert digest(late) == expected
        log = srv.log.read_text()
        assert "end of timeline 1" in log and "TIMELINE 2" in log
    late.stop()


def test_stopped_standby_is_dropped_other_keeps_streaming(pg_major: int, cluster_factory) -> None:  # type: ignore[no-untyped-def]
    import json

    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t1 (id int PRIMARY KEY, h text, v text);"
                    "CREATE TABLE t2 (id int PRIMARY KEY, ts timestamptz, n numeric);")
    sb1 = cluster_factory.standby(primary, name="sb1", start=False)
    sb2 = cluster_factory.standby(primary, name="sb2", start=False)
    primary.execute("INSERT INTO t1 SELECT g, 'a', 'b' FROM generate_series(1, 5000) g")
    lsn1 = flushed_record_end(primary)
    work = primary.base.parent / f"{primary.base.name}-serve"
    arch = work / "arch"
    make_archive(primary.pg_wal, arch)  # a live primary's pg_wal: the last one is growing
    status = work / "status.json"
    with serving(arch, "--auth", str(write_users(work / "users")), "--timeout", "3",
                 "--status-file", str(status), "--poll-interval", "0.2") as srv:
        for sb in (sb1, sb2):
            set_conninfo(sb, srv.port, sb.name)
            sb.start()
        for sb in (sb1, sb2):
            wait_until(lambda: replayed(sb, lsn1), 60, 0.2, what=f"{sb.name} to catch up")
        frozen = []
        for pid in sb2.pids():  # (a short-lived child may have exited since it was listed)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)
        try:
            primary.execute(WORKLOAD.replace("generate_series(1,", "generate_series(50001,"))
            lsn2 = flushed_record_end(primary)
            make_archive(primary.pg_wal, arch)  # new WAL arrives: the server polls it
            try:
                wait_until(lambda: replayed(sb1, lsn2), 60, 0.2, what="sb1 to keep streaming")
            except TimeoutError:
                print(f"--- sb1 log tail ---\n" + "\n".join(sb1.log_text().splitlines()[-40:]))
                print(f"--- waiting for {lsn2}; sb1: " + repr(sb1.sql(
                    "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), status, "
                    "written_lsn, flushed_lsn, latest_end_lsn FROM pg_stat_wal_receiver")))
                print("--- status file ---\n" + (status.read_text() if status.exists() else ""))
                print("--- archive ---\n" + " ".join(sorted(p.name for p in arch.iterdir())))
                from xlogtools.stream.sendable import Archive
                a = Archive(arch)
                a.refresh()
                assert a.source is not None
                for (t, sn), f in sorted(a.source.files.items()):
                    _d, n, complete = a.segment_data(f, sn)
                    print(f"  {f.path.name}: sendable {n:#x} complete {complete}")
                raise
            assert digest(sb1) == digest(primary)

            def names() -> list[str]:
                try:
                    return [c["application_name"] for c in json.loads(status.read_text())["clients"]]
                except (OSError, ValueError):
                    return []
            wait_until(lambda: names() == ["sb1"], 20, 0.3, what="sb2 to be dropped")
            wait_until(lambda: "replication timeout" in srv.log.read_text(), 10, 0.2,
                       what="the drop to be logged")  # the status file can be written first
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        wait_until(lambda: replayed(sb2, lsn2), 60, 0.3, what="sb2 to reconnect and catch up")
        assert digest(sb2) == digest(primary)
    for sb in (sb1, sb2):
        sb.stop()


# ---------------------------------------------------------------------------------------------
# an archive with a hole


@pytest.mark.pg_majors(15)
def test_tls_with_pg_receivewal_verify_full(pg_major: int, cluster_factory,  # type: ignore[no-untyped-def]
                                           server_cert: tuple[Path, Path]) -> None:
    """serve --ssl-cert/--ssl-key: pg_receivewal with sslmode=verify-full (libpq checks the
    certificate and the host name) streams segments byte-identical to the primary's; without
    a certificate, sslmode=require is refused by libpq ("server does not support SSL")."""
    crt, key = server_cert
    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t (a int, b text)")
    for i in range(3):
        primary.execute(f"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;"
                        "SELECT pg_switch_wal();")
    end = Lsn(primary.current_lsn())  # the start of the segment after the last switch
    primary.stop()
    work = primary.base.parent / f"{primary.base.name}-serve"
    arch = work / "arch"
    arch.mkdir(parents=True)
    segs = sorted(p.name for p in primary.pg_wal.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name)
                  and int(p.name[8:], 16) <= int(end) >> 20)  # not the recycled future files
    for name in segs:
        shutil.copy(primary.pg_wal / name, arch / name)
    tool = primary.tool("pg_receivewal")
    user = pgbin.server_user()
    kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    users = str(write_users(work / "users"))
    for tls in (True, False):
        rw = work / f"rw-{tls}"
        rw.mkdir()
        shutil.copy(primary.pg_wal / segs[0], rw / segs[0])
        chown_to_server_user(rw)
        args = ["--auth", users, "--status-file", str(work / "status.json")]
        if tls:
            args += ["--ssl-cert", str(crt), "--ssl-key", str(key)]
        with serving(arch, *args) as srv:
            conn = (f"host=localhost hostaddr=127.0.0.1 port={srv.port} user={USER} "
                    f"password='{PASSWORD}' sslmode=" +
                    (f"verify-full sslrootcert={crt}" if tls else "require"))
            proc = subprocess.run([str(tool), "-D", str(rw), "-n", "--no-sync", "-v", "-E",
                                   str(Lsn(int(end) - 1)), "-d", conn],
                                  capture_output=True, text=True, timeout=20,
                                  env={**pgbin.runtime_env(tool), "HOME": str(work)}, **kw)
            if tls:
                assert proc.returncode == 0, proc.stderr
                for name in segs[1:-1]:
                    assert (rw / name).read_bytes() == (primary.pg_wal / name).read_bytes()
                assert "TLS handshake failed" not in srv.log.read_text()
            else:
                assert proc.returncode != 0
                assert "server does not support SSL" in proc.stderr, proc.stderr
                assert not any((rw / n).exists() for n in segs[1:])


@pytest.mark.pg_majors(15)
def test_hole_in_archive_is_served_up_to_the_missing_segment(pg_major: int, cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """pg_receivewal 15 gets every segment before the hole, byte for byte (the one before it
    ends in a WAL switch: zeros the sender must send because WAL went on after it), the
    WARNING that names the missing segment, and nothing after it."""
    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t (a int, b text)")
    for i in range(5):
        primary.execute(f"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, {2000 * (i + 1)}) g;"
                        "SELECT pg_switch_wal();")
    primary.stop()
    work = primary.base.parent / f"{primary.base.name}-serve"
    arch = work / "arch"
    arch.mkdir(parents=True)
    segs = sorted(p.name for p in primary.pg_wal.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
    hole = 3
    assert len(segs) > hole + 1
    for name in segs[:hole] + segs[hole + 1:]:
        shutil.copy(primary.pg_wal / name, arch / name)
    # the segment before the hole ends in a WAL switch: a tail of zeros
    assert (arch / segs[hole - 1]).read_bytes().endswith(bytes(8192))
    rw = work / "rw"
    rw.mkdir()
    shutil.copy(primary.pg_wal / segs[0], rw / segs[0])  # pg_receivewal resumes after it
    chown_to_server_user(rw)
    with serving(arch, "--auth", str(write_users(work / "users"))) as srv:
        tool = primary.tool("pg_receivewal")
        user = pgbin.server_user()
        kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        errlog = work / "pg_receivewal.err"
        with open(errlog, "w") as err:
            proc = subprocess.Popen(
                [str(tool), "-D", str(rw), "-n", "--no-sync", "-v", "-d",
                 f"host=127.0.0.1 port={srv.port} user={USER} password='{PASSWORD}'"],
                stdout=subprocess.DEVNULL, stderr=err, env=pgbin.runtime_env(tool), **kw)
        try:
            missing = f"WAL segment {segs[hole]} is missing from the archive"
            wait_until(lambda: missing in errlog.read_text(), 30, 0.2,
                       what="pg_receivewal to get the WARNING")
            wait_until(lambda: (rw / segs[hole - 1]).exists(), 30, 0.2,
                       what="the segment before the hole to be complete")
            assert proc.poll() is None, errlog.read_text()  # it waits for more, no error
        finally:
            proc.terminate()
            proc.wait(30)
        assert "WARNING" in errlog.read_text()
        assert f"client #1: {missing}" in srv.log.read_text()
    for name in segs[1:hole]:
        assert (rw / name).read_bytes() == (primary.pg_wal / name).read_bytes(), name
    assert sorted(p.name for p in rw.iterdir()) == segs[:hole], "WAL after the hole was sent"


# ---------------------------------------------------------------------------------------------
# relay mode: serve --upstream


def upstream_dsn(cluster, app: str = "relay") -> str:  # type: ignore[no-untyped-def]
    return f"host=127.0.0.1 port={cluster.port} user=postgres application_name={app}"


def read_status(path: Path) -> dict:  # type: ignore[type-arg]
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def identify(port: int) -> tuple[str, ...]:
    """(systemid, timeline, xlogpos) of IDENTIFY_SYSTEM."""
    c = Client(port)
    try:
        assert isinstance(c.login(), M.ReadyForQuery)
        row = next(e for e in c.query("IDENTIFY_SYSTEM") if isinstance(e, M.DataRow))
        return tuple(v.decode() for v in row.values[:3])
    finally:
        c.close()


def upstream_state(path: Path) -> str | None:
    return (read_status(path).get("upstream") or {}).get("state")


TABLES = ("t1", "t2", "t3", "pgbench_accounts", "pgbench_branches", "pgbench_tellers",
          "pgbench_history")


def table_digests(cluster) -> dict[str, tuple[str | None, ...]]:  # type: ignore[no-untyped-def]
    return {t: cluster.sql(f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY "
                           f"t::text), '')) FROM {t} t")[0] for t in TABLES}


def test_relay_streams_live_to_a_standby(pg_major: int, cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """primary -> serve --upstream -> standby (pg_basebackup of the primary, no
    restore_command). DIR is never polled (--poll-interval 3600): all the standby gets comes
    through the receiver's notifications. The primary restarts in between: the relay keeps
    serving, reconnects through its slot, and the standby goes on."""
    primary = cluster_factory(pg_major, name="primary")
    primary.execute("CREATE TABLE t1 (id int PRIMARY KEY, h text, v text);"
                    "CREATE TABLE t2 (id int PRIMARY KEY, ts timestamptz, n numeric);")
    work = primary.base.parent / f"{primary.base.name}-relay"
    arch = work / "arch"
    arch.mkdir(parents=True)
    status = work / "status.json"
    with serving(arch, "--auth", str(write_users(work / "users")), "--timeout", "20",
                 "--status-file", str(status), "--poll-interval", "3600",
                 "--upstream", upstream_dsn(primary), "-S", "relay_slot", "--create-slot") as srv:
        wait_until(lambda: read_status(status).get("archive_end_lsn", "0/0") != "0/0", 30,
                   0.2, what="the relay to receive WAL")
        standby = cluster_factory.standby(primary, name="sb", start=False)
        set_conninfo(standby, srv.port, "sb")
        standby.start()
        wait_until(lambda: replayed(standby, primary.current_lsn()), 60, 0.2,
                   what="the standby to catch up through the relay")
        # one small commit: the standby gets it from the .partial the relay is writing
        primary.execute("INSERT INTO t1 VALUES (0, 'live', 'from the .partial')")
        lsn, walfile = primary.sql("SELECT pg_current_wal_lsn(), "
                                   "pg_walfile_name(pg_current_wal_lsn())")[0]
        wait_until(lambda: replayed(standby, lsn), 30, 0.1, what="the small commit")
        assert (arch / f"{walfile}.partial").exists() and not (arch / walfile).exists(), \
            (lsn, sorted(p.name for p in arch.iterdir()))
        assert standby.sql("SELECT v FROM t1 WHERE id = 0") == [("from the .partial",)]

        # a workload while the standby streams: pgbench (its tables are DDL too), DML, DDL
        primary.pgbench(["-i", "-s", "1", "-q"])
        primary.execute(WORKLOAD)
        primary.pgbench(["-n", "-c", "2", "-t", "300"])
        primary.execute("CREATE TABLE t3 AS SELECT g AS id, md5(g::text) AS h FROM "
                        "generate_series(1, 5000) g; ALTER TABLE t3 ADD PRIMARY KEY (id);"
                        "CREATE INDEX ON t1 (h); UPDATE t3 SET h = upper(h) WHERE id % 5 = 0;")
        target = primary.current_lsn()
        wait_until(lambda: replayed(standby, target), 60, 0.2, what="the standby to replay")
        assert table_digests(standby) == table_digests(primary)
        rows = standby.sql("SELECT status, sender_port FROM pg_stat_wal_receiver")
        assert rows == [("streaming", str(srv.port))], rows
        rows = primary.sql("SELECT application_name, state FROM pg_stat_replication")
        assert rows == [("relay", "streaming")], rows
        assert primary.sql("SELECT active FROM pg_replication_slots WHERE slot_name = "
                           "'relay_slot'") == [("t",)]
        # the status file (rewritten every second) shows the upstream and the standby
        st = wait_until(lambda: (s := read_status(status)) and Lsn(
            s["upstream"]["flushed_lsn"]) >= Lsn(target) and s, 10, 0.2,
            what="the status file to show the upstream's flushed position")
        assert st["upstream"]["state"] == "streaming" and st["upstream"]["slot"] == "relay_slot"
        assert [(c["application_name"], c["state"]) for c in st["clients"]] == \
            [("sb", "streaming")], st
        assert "upstream_lag_bytes" in st["clients"][0]
        # IDENTIFY_SYSTEM: the upstream's system identifier and timeline, our flushed position
        sysid, tli, xlogpos = identify(srv.port)
        assert (sysid, tli) == (primary.sql("SELECT system_identifier FROM "
                                            "pg_control_system()")[0][0], "1")
        assert Lsn(xlogpos) >= Lsn(target)

        # the upstream goes away: the relay keeps its standby, then reconnects
        primary.stop()
        wait_until(lambda: upstream_state(status) in ("disconnected", "connecting"), 30, 0.2,
                   what="the relay to see the upstream gone")
        assert srv.alive(), srv.log.read_text()
        rows = standby.sql("SELECT status, sender_port FROM pg_stat_wal_receiver")
        assert rows == [("streaming", str(srv.port))], rows  # still connected to the relay
        primary.start()
        primary.execute("INSERT INTO t1 SELECT g, 'after restart', 'x' FROM "
                        "generate_series(900001, 903000) g; DELETE FROM t2 WHERE id % 4 = 0;")
        target = primary.current_lsn()
        wait_until(lambda: replayed(standby, target), 60, 0.2,
                   what="the standby to go on after the upstream's restart")
        assert table_digests(standby) == table_digests(primary)
        wait_until(lambda: upstream_state(status) == "streaming", 10, 0.2,
                   what="the status file to show the upstream back")
        log = srv.log.read_text()
        assert "upstream: lost" in log and "Traceback" not in log, log
    standby.stop()


def test_relay_follows_upstream_promotion(pg_major: int, cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """primary -> standby U -> serve --upstream U -> standby S. The primary stops, U is
    promoted (timeline 2): the relay follows U to timeline 2, and S follows the relay."""
    primary = cluster_factory(pg_major, name="primary")
    upstream = cluster_factory.standby(primary, name="up")
    work = primary.base.parent / f"{primary.base.name}-relay"
    arch = work / "arch"
    arch.mkdir(parents=True)
    status = work / "status.json"
    with serving(arch, "--auth", str(write_users(work / "users")), "--status-file",
                 str(status), "--upstream", upstream_dsn(upstream)) as srv:
        # (U's position after its base backup is a segment start: WAL to relay comes now)
        primary.execute("CREATE TABLE t1 (id int PRIMARY KEY, h text, v text);"
                        "CREATE TABLE t2 (id int PRIMARY KEY, ts timestamptz, n numeric);")
        wait_until(lambda: read_status(status).get("archive_end_lsn", "0/0") != "0/0", 30,
                   0.2, what="the relay to receive WAL")
        sb = cluster_factory.standby(primary, name="sb", start=False)
        set_conninfo(sb, srv.port, "sb")
        sb.start()
        primary.execute(WORKLOAD)
        lsn = primary.current_lsn()
        wait_until(lambda: replayed(sb, lsn), 60, 0.2, what="S to catch up through U and the relay")
        primary.stop()
        upstream.promote()
        upstream.execute("INSERT INTO t1 SELECT g, 'tli2', 'after promotion' FROM "
                         "generate_series(100001, 103000) g; DELETE FROM t2 WHERE id < 100;")
        target = upstream.current_lsn()
        wait_until(lambda: replayed(sb, target), 60, 0.2, what="S to follow to timeline 2")
        assert sb.sql("SELECT received_tli, status FROM pg_stat_wal_receiver") == \
            [("2", "streaming")]
        assert digest(sb) == digest(upstream)
        assert (arch / "00000002.history").exists()
        wait_until(lambda: read_status(status).get("timeline") == 2
                   and upstream_state(status) == "streaming", 10, 0.2,
                   what="the status file to show timeline 2")
        assert read_status(status)["upstream"]["timeline"] == 2
        assert identify(srv.port)[1] == "2"
        log = srv.log.read_text()
        assert "timeline 1 became historic" in log and "TIMELINE 2" in log
    sb.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


def test_relay_without_its_upstream_serves_dir_and_keeps_trying(tmp_path: Path) -> None:
    """No server at --upstream when serve starts: one clear line (no traceback), DIR is
    served meanwhile, the status shows the upstream down and the attempts go on."""
    arch = tmp_path / "arch"
    shutil.copytree(FIXTURE_WAL, arch)
    status = tmp_path / "status.json"
    port = closed_port()
    with serving(arch, "--auth", str(write_users(tmp_path / "users")), "--status-file",
                 str(status), "--status-interval", "1",
                 "--upstream", f"host=127.0.0.1 port={port} user=rep") as srv:
        wait_until(lambda: "serving the WAL already in" in srv.log.read_text(), 20, 0.1,
                   what="the log line saying DIR is served meanwhile")
        c = Client(srv.port)
        assert isinstance(c.login(), M.ReadyForQuery)
        res = c.query("IDENTIFY_SYSTEM")
        row = next(e for e in res if isinstance(e, M.DataRow))
        assert tuple(row.values[1:3]) == (b"1", b"0/8DE4A0")  # DIR's timeline and end of WAL
        res = c.query("START_REPLICATION 0/800000 TIMELINE 1")
        assert isinstance(res[-1], M.CopyBothResponse)
        ev = c.event()
        assert isinstance(ev, M.XLogData) and ev.start == 0x800000
        c.close()
        wait_until(lambda: (read_status(status).get("upstream") or {}).get("disconnects", 0)
                   >= 2, 20, 0.2, what="a second attempt to connect")
        up = read_status(status)["upstream"]
        assert up["state"] in ("disconnected", "connecting")
        assert "Connection refused" in up["last_error"] and up["server"] == f"127.0.0.1:{port}"
        wait_until(lambda: re.search(rf"upstream 127\.0\.0\.1:{port} (disconnected|connecting) "
                                     r"tli 0 .*\(last error: .*Connection refused",
                                     srv.log.read_text()), 10, 0.2, what="the status text")
        assert srv.alive(), srv.log.read_text()
        log = srv.log.read_text()
        assert f'connection to server at "127.0.0.1", port {port} failed: Connection refused' \
            in log
        assert "Traceback" not in log


def test_relay_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xlogtools.cli", "serve", "-D",
                               str(tmp_path), "--trust", "--port", "0", *args],
                              capture_output=True, text=True, timeout=30)
    r = run("-S", "s1")
    assert r.returncode == 2 and "--slot needs --upstream" in r.stderr
    r = run("--upstream", "host=127.0.0.1", "--create-slot")
    assert r.returncode == 2 and "--create-slot needs a slot" in r.stderr
    r = run("--upstream", "host=127.0.0.1", "-S", "Bad-Name")
    assert r.returncode == 2 and "replication slot name \"Bad-Name\" is invalid" in r.stderr
    r = run("--upstream", "host=127.0.0.1 port=notaport")  # refused before listening
    assert r.returncode == 1 and r.stderr == 'xlogtools: error: invalid integer value ' \
        '"notaport" for connection option "port"\n', r.stderr


@pytest.mark.pg_majors(15)
def test_relay_refusals_end_serve(pg_major: int, cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What a new connection would not fix ends serve with exit 1 and one line: a role the
    upstream does not know, and WAL of another cluster in DIR."""
    primary = cluster_factory(pg_major, name="primary")
    users = str(write_users(tmp_path / "users"))

    def run(arch: Path, dsn: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xlogtools.cli", "serve", "-D", str(arch),
                               "--auth", users, "--port", "0", "--upstream", dsn],
                              capture_output=True, text=True, timeout=60)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(empty, f"host=127.0.0.1 port={primary.port} user=nosuchrole")
    assert r.returncode == 1, r.stderr
    assert 'xlogtools: error: connection to server at "127.0.0.1", port ' in r.stderr
    assert r.stderr.count('role "nosuchrole" does not exist') == 1, r.stderr  # one line
    assert "Traceback" not in r.stderr
    foreign = tmp_path / "foreign"
    shutil.copytree(FIXTURE_WAL, foreign)
    r = run(foreign, upstream_dsn(primary))
    assert r.returncode == 1, r.stderr
    assert "holds WAL of another database system" in r.stderr and "Traceback" not in r.stderr
