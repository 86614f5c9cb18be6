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
from xlogtools.stream import protocol as P
from xlogtools.stream.backend import (Backend, BState, ClientProtocolError, CommandError,
                                      IdentifySystem, ScramExchange, ScramVerifier, Show,
                                      StartReplication, TimelineHistory, parse_command)
from xlogtools.stream.sender import valid_length
from xlogtools.stream.users import add_user, load_users, make_verifier
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import wait_until

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
        self.sock.sendall(self.fe.send(P.StartupMessage(tuple(params))))
        self.password = password
        self.user = user

    def event(self) -> object:
        while True:
            ev = self.fe.next_event()
            if ev is not P.NEED_DATA:
                return ev
            self.fe.receive_data(self.sock.recv(65536))

    def login(self) -> object:
        """ReadyForQuery or the ErrorResponse that refused us."""
        from scramp import ScramClient
        sc = None
        while True:
            ev = self.event()
            if isinstance(ev, P.AuthenticationSASL):
                sc = ScramClient(list(ev.mechanisms), self.user, self.password or "")
                self.sock.sendall(self.fe.send(P.SASLInitialResponse(
                    "SCRAM-SHA-256", sc.get_client_first().encode())))
            elif isinstance(ev, P.AuthenticationSASLContinue):
                assert sc is not None
                sc.set_server_first(ev.data.decode())
                self.sock.sendall(self.fe.send(P.SASLResponse(sc.get_client_final().encode())))
            elif isinstance(ev, P.AuthenticationSASLFinal):
                assert sc is not None
                sc.set_server_final(ev.data.decode())
            elif isinstance(ev, (P.ReadyForQuery, P.ErrorResponse, P.ConnectionClosed)):
                return ev

    def query(self, sql: str) -> list[object]:
        self.sock.sendall(self.fe.send(P.Query(sql)))
        out = []
        while True:
            ev = self.event()
            out.append(ev)
            if isinstance(ev, (P.ReadyForQuery, P.CopyBothResponse, P.ConnectionClosed)):
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
    assert isinstance(be.next_event(), P.SSLRequest)
    be.receive_data(struct.pack("!ii", 8, 99 << 16))
    with pytest.raises(ClientProtocolError):
        be.next_event()
    be = Backend()
    be.state = BState.COPY_BOTH
    be.receive_data(P.encode(P.StandbyStatusUpdate(10, 9, 8, 7, True)))
    ev = be.next_event()
    assert isinstance(ev, P.StandbyStatusUpdate) and (ev.write, ev.flush, ev.apply) == (10, 9, 8)
    be.receive_data(b"d\0\0\0\x06r\0")
    with pytest.raises(ClientProtocolError):
        be.next_event()


def test_valid_length_stops_at_stale_pages() -> None:
    data = zstandard.ZstdDecompressor().stream_reader(
        open(FIXTURE_WAL / "000000010000000000000008.zst", "rb")).read()
    n, complete = valid_length(data, 8, 1 << 20, 8192, 0xD110)
    assert not complete and 909312 < n <= 917504  # the recycled pages after it are not sent


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
    assert isinstance(ev, P.ErrorResponse) and ev.sqlstate == "28P01", ev
    c = Client(port, user="nobody", password="x")
    ev = c.login()
    assert isinstance(ev, P.ErrorResponse) and ev.sqlstate == "28P01"
    c = Client(port, replication=None)  # a normal session: an error, not a hang
    ev = c.login()
    assert isinstance(ev, P.ErrorResponse) and ev.sqlstate == "28000"
    assert "replication" in ev.message
    c = Client(port)
    assert isinstance(c.login(), P.ReadyForQuery)
    res = c.query("SELECT 1")
    assert isinstance(res[0], P.ErrorResponse) and res[0].sqlstate == "0A000"
    res = c.query("IDENTIFY_SYSTEM")
    row = next(e for e in res if isinstance(e, P.DataRow))
    assert row.values[1] == b"1" and row.values[2] == b"0/8DE49A"
    c.close()


def test_removed_segment_error(fixture_server: Server) -> None:
    c = Client(fixture_server.port)
    assert isinstance(c.login(), P.ReadyForQuery)
    res = c.query("START_REPLICATION 0/100000 TIMELINE 1")
    assert isinstance(res[-1], P.CopyBothResponse)
    ev = c.event()
    assert isinstance(ev, P.ErrorResponse)
    assert ev.message == ("requested WAL segment 000000010000000000000001 has already been "
                          "removed"), ev.message
    assert ev.sqlstate == "58P01"
    assert isinstance(c.event(), P.ReadyForQuery)
    res = c.query("START_REPLICATION 0/800000 TIMELINE 1")  # still usable afterwards
    assert isinstance(res[-1], P.CopyBothResponse)
    data = c.event()
    assert isinstance(data, P.XLogData) and data.start == 0x800000
    c.close()


def test_fuzz_never_kills_the_server(fixture_server: Server) -> None:
    port = fixture_server.port
    rng = random.Random(6)
    good = Client(port)
    assert isinstance(good.login(), P.ReadyForQuery)
    startup = P.encode(P.StartupMessage((("user", USER), ("replication", "true"))))
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
    assert isinstance(bad.login(), P.ReadyForQuery)
    bad.query("START_REPLICATION 0/800000 TIMELINE 1")
    bad.sock.sendall(b"d\0\0\0\x09zgarbage" + os.urandom(50))
    bad.close()
    assert fixture_server.alive()
    res = good.query("IDENTIFY_SYSTEM")  # the other client never noticed
    assert isinstance(res[-1], P.ReadyForQuery)
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


def replayed(standby, lsn: str) -> bool:  # type: ignore[no-untyped-def]
    return standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == [("t",)]


def make_archive(src: Path, arch: Path) -> list[str]:
    """Copy pg_wal as an archive: some segments gzip/zstd-compressed, the last one .partial."""
    arch.mkdir(parents=True, exist_ok=True)
    segs = sorted(p.name for p in src.iterdir() if re.fullmatch(r"[0-9A-F]{24}", p.name))
    for i, name in enumerate(segs):
        data = (src / name).read_bytes()
        if i == len(segs) - 1:
            (arch / (name + ".partial")).write_bytes(data)
        elif i % 3 == 1:
            (arch / (name + ".gz")).write_bytes(gzip.compress(data, 1))
        elif i % 3 == 2:
            (arch / (name + ".zst")).write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            (arch / name).write_bytes(data)
    for h in src.glob("*.history"):
        shutil.copy(h, arch / h.name)
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
    lsn1 = primary.sql("SELECT pg_current_wal_flush_lsn()")[0][0]
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
        frozen = sb2.pids()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            primary.execute(WORKLOAD.replace("generate_series(1,", "generate_series(50001,"))
            lsn2 = primary.sql("SELECT pg_current_wal_flush_lsn()")[0][0]
            make_archive(primary.pg_wal, arch)  # new WAL arrives: the server polls it
            wait_until(lambda: replayed(sb1, lsn2), 60, 0.2, what="sb1 to keep streaming")
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
