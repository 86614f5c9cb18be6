"""The replication protocol codec and state machine, in memory: a scripted backend speaks
to our Frontend byte by byte; authentication (md5, SCRAM against scramp's server side);
connection strings, environment and ~/.pgpass as libpq reads them. No server needed."""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest

from xlogtools.lsn import Lsn
from xlogtools.stream import messages as M
from xlogtools.stream import protocol as P
from xlogtools.stream.auth import AuthError, Authenticator, md5_password
from xlogtools.stream.conninfo import (ConnInfoError, parse_conninfo, pgpass_lookup, redact,
                                       resolve)

# ---------------------------------------------------------------------------------------------
# a scripted backend: the messages walsender.c / postgres.c send, built by hand


def msg(t: bytes, body: bytes = b"") -> bytes:
    return t + struct.pack("!i", len(body) + 4) + body


def z(s: str) -> bytes:
    return s.encode() + b"\0"


def auth(code: int, extra: bytes = b"") -> bytes:
    return msg(b"R", struct.pack("!i", code) + extra)


def param(name: str, value: str) -> bytes:
    return msg(b"S", z(name) + z(value))


def ready(status: bytes = b"I") -> bytes:
    return msg(b"Z", status)


def error(severity: str, code: str, text: str, detail: str | None = None) -> bytes:
    body = b"S" + z(severity) + b"V" + z(severity) + b"C" + z(code) + b"M" + z(text)
    if detail:
        body += b"D" + z(detail)
    return msg(b"E", body + b"\0")


def row_description(*names: str, oid: int = 25) -> bytes:
    body = struct.pack("!h", len(names))
    for n in names:
        body += z(n) + struct.pack("!IhIhih", 0, 0, oid, -1, 0, 0)
    return msg(b"T", body)


def data_row(*values: bytes | None) -> bytes:
    body = struct.pack("!h", len(values))
    for v in values:
        body += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return msg(b"D", body)


def complete(tag: str) -> bytes:
    return msg(b"C", z(tag))


def xlogdata(start: int, data: bytes, wal_end: int | None = None) -> bytes:
    return msg(b"d", b"w" + struct.pack("!QQq", start, wal_end or start + len(data), 0) + data)


def keepalive(wal_end: int, reply: bool) -> bytes:
    return msg(b"d", b"k" + struct.pack("!Qq?", wal_end, 0, reply))


COPY_BOTH = msg(b"W", b"\0" + struct.pack("!h", 0))
COPY_DONE = msg(b"c")


def events(fe: P.Frontend, data: bytes, *, bytewise: bool = False) -> list[object]:
    """Feed data (all at once, or one byte at a time) and collect every event."""
    out: list[object] = []
    chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    for c in chunks:
        fe.receive_data(c)
        while (ev := fe.next_event()) is not M.NEED_DATA:
            out.append(ev)
            if isinstance(ev, M.ConnectionClosed):
                return out
    return out


def started(fe: P.Frontend | None = None) -> P.Frontend:
    fe = fe or P.Frontend()
    fe.send(M.StartupMessage((("user", "rep"), ("database", "replication"),
                              ("replication", "true"))))
    events(fe, auth(0) + param("server_version", "17.2") + msg(b"K", b"\0\0\0\7" + b"key!")
           + ready())
    assert fe.state is P.State.IDLE
    return fe


# ---------------------------------------------------------------------------------------------
# startup and authentication


def test_startup_message_is_what_libpq_sends() -> None:
    fe = P.Frontend()
    wire = fe.send(M.StartupMessage((("user", "rep"), ("replication", "true"))))
    length, version = struct.unpack("!ii", wire[:8])
    assert length == len(wire) and version == 3 << 16
    assert wire[8:] == b"user\0rep\0replication\0true\0\0"
    assert fe.state is P.State.AUTHENTICATING


def test_trust_startup_byte_by_byte_reaches_idle() -> None:
    fe = P.Frontend()
    fe.send(M.StartupMessage((("user", "rep"),)))
    evs = events(fe, auth(0) + param("server_version", "13.4") + param("in_hot_standby", "off")
                 + msg(b"K", struct.pack("!i", 42) + b"abcd") + ready(), bytewise=True)
    assert [type(e) for e in evs] == [M.AuthenticationOk, M.ParameterStatus, M.ParameterStatus,
                                      M.BackendKeyData, M.ReadyForQuery]
    assert fe.state is P.State.IDLE
    assert fe.parameters == {"server_version": "13.4", "in_hot_standby": "off"}
    assert fe.backend_pid == 42


def test_md5_answer_is_postgres_double_md5() -> None:
    salt = b"\x01\x02\x03\x04"
    inner = hashlib.md5(b"secretrep").hexdigest()
    assert md5_password("rep", "secret", salt) == \
        b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()
    fe = P.Frontend()
    fe.send(M.StartupMessage((("user", "rep"),)))
    (req,) = events(fe, auth(5, salt))
    a = Authenticator("rep", lambda: "secret")
    reply = a.respond(req)  # type: ignore[arg-type]
    wire = fe.send(reply)  # type: ignore[arg-type]
    assert wire == msg(b"p", md5_password("rep", "secret", salt) + b"\0")
    assert "secret" not in repr(reply)


def test_scram_against_scramp_server() -> None:
    import scramp

    mech = scramp.ScramMechanism("SCRAM-SHA-256")
    salt, stored, server_key, it = mech.make_auth_info("pa ss:wörd", iteration_count=4096)
    server = mech.make_server(lambda user: (salt, stored, server_key, it))
    fe = P.Frontend()
    fe.send(M.StartupMessage((("user", "rep"),)))
    a = Authenticator("rep", lambda: "pa ss:wörd")
    (req,) = events(fe, auth(10, z("SCRAM-SHA-256") + b"\0"))
    first = a.respond(req)  # type: ignore[arg-type]
    assert isinstance(first, M.SASLInitialResponse) and first.mechanism == "SCRAM-SHA-256"
    wire = fe.send(first)
    # SASLInitialResponse: mechanism, int32 length, client-first-message
    assert wire[5:].startswith(z("SCRAM-SHA-256"))
    server.set_client_first(first.data.decode())
    (req,) = events(fe, auth(11, server.get_server_first().encode()))
    final = a.respond(req)  # type: ignore[arg-type]
    assert isinstance(final, M.SASLResponse)
    fe.send(final)
    server.set_client_final(final.data.decode())
    (req,) = events(fe, auth(12, server.get_server_final().encode()))
    assert a.respond(req) is None  # type: ignore[arg-type]
    (ok,) = events(fe, auth(0))
    assert a.respond(ok) is None  # type: ignore[arg-type]
    assert fe.state is P.State.STARTING


def test_scram_server_that_does_not_know_the_password_is_refused() -> None:
    import scramp

    mech = scramp.ScramMechanism("SCRAM-SHA-256")
    server = mech.make_server(lambda u: mech.make_auth_info("other", iteration_count=4096))
    a = Authenticator("rep", lambda: "mine")
    first = a.respond(M.AuthenticationSASL(("SCRAM-SHA-256",)))
    server.set_client_first(first.data.decode())  # type: ignore[union-attr]
    a.respond(M.AuthenticationSASLContinue(server.get_server_first().encode()))
    fake = "v=" + "A" * 43 + "="  # a server signature it could not compute
    with pytest.raises(AuthError, match="could not prove"):
        a.respond(M.AuthenticationSASLFinal(fake.encode()))


def test_auth_ok_before_scram_finished_is_refused() -> None:
    a = Authenticator("rep", lambda: "pw")
    a.respond(M.AuthenticationSASL(("SCRAM-SHA-256",)))
    with pytest.raises(AuthError, match="before the SCRAM exchange"):
        a.respond(M.AuthenticationOk())


def test_password_is_asked_for_only_when_needed_and_never_shown() -> None:
    asked = []
    a = Authenticator("rep", lambda: asked.append(1) or None)  # type: ignore[func-returns-value]
    a.respond(M.AuthenticationOk())
    assert not asked
    with pytest.raises(AuthError, match="no password supplied"):
        a.respond(M.AuthenticationCleartextPassword())
    assert asked == [1]
    assert "hunter2" not in repr(M.PasswordMessage(b"hunter2"))


def test_channel_binding_require_without_tls_fails() -> None:
    a = Authenticator("rep", lambda: "pw", channel_binding="require")
    with pytest.raises(AuthError, match="channel binding"):
        a.respond(M.AuthenticationSASL(("SCRAM-SHA-256",)))
    with pytest.raises(AuthError, match="channel binding"):
        Authenticator("rep", lambda: "pw", channel_binding="require").respond(
            M.AuthenticationMD5Password(b"salt"))


def test_fatal_error_during_startup_closes() -> None:
    fe = P.Frontend()
    fe.send(M.StartupMessage((("user", "rep"),)))
    ev, closed = events(fe, error("FATAL", "28P01",
                                  "password authentication failed for user \"rep\""))
    assert isinstance(closed, M.ConnectionClosed)
    assert isinstance(ev, M.ErrorResponse) and ev.fatal and ev.sqlstate == "28P01"
    assert fe.state is P.State.CLOSED
    assert ev.text() == 'FATAL:  password authentication failed for user "rep"'


def test_ssl_negotiation_and_the_cve_2021_23222_check() -> None:
    fe = P.Frontend()
    assert fe.send(M.SSLRequest()) == struct.pack("!ii", 8, 80877103)
    (ev,) = events(fe, b"N")
    assert ev == M.SSLResponse(False) and fe.state is P.State.INITIAL
    fe = P.Frontend()
    fe.send(M.SSLRequest())
    fe.receive_data(b"S" + auth(0))  # plaintext injected after 'S'
    with pytest.raises(M.RemoteProtocolError, match="unencrypted data after SSL response"):
        fe.next_event()


# ---------------------------------------------------------------------------------------------
# queries and the replication stream


def test_identify_system_result() -> None:
    fe = started()
    wire = fe.send(M.Query("IDENTIFY_SYSTEM"))
    assert wire == msg(b"Q", z("IDENTIFY_SYSTEM"))
    evs = events(fe, row_description("systemid", "timeline", "xlogpos", "dbname")
                 + data_row(b"7710485039444349862", b"3", b"16/B374D848", None)
                 + complete("IDENTIFY_SYSTEM") + ready())
    rows = tuple(e.values for e in evs if isinstance(e, M.DataRow))
    cols = next(e.columns for e in evs if isinstance(e, M.RowDescription))
    ident = P.SystemIdentity.from_result(P.QueryResult(cols, rows, "IDENTIFY_SYSTEM"))
    assert ident == P.SystemIdentity(7710485039444349862, 3, Lsn("16/B374D848"))
    assert fe.state is P.State.IDLE


def test_sending_out_of_turn_is_a_local_error() -> None:
    fe = P.Frontend()
    with pytest.raises(M.LocalProtocolError):
        fe.send(M.Query("IDENTIFY_SYSTEM"))
    fe = started()
    fe.send(M.Query("SHOW wal_segment_size"))
    with pytest.raises(M.LocalProtocolError, match="Query in state query"):
        fe.send(M.Query("IDENTIFY_SYSTEM"))
    with pytest.raises(M.LocalProtocolError):
        fe.send(M.StandbyStatusUpdate(1, 1))


def test_unexpected_server_message_is_a_remote_error() -> None:
    fe = started()
    fe.receive_data(COPY_BOTH)  # CopyBoth without a query
    with pytest.raises(M.RemoteProtocolError, match="CopyBothResponse"):
        fe.next_event()
    fe = started()
    fe.receive_data(msg(b"?", b"x"))
    with pytest.raises(M.RemoteProtocolError, match="unexpected message type"):
        fe.next_event()
    fe = started()
    fe.receive_data(b"d" + struct.pack("!i", 2))
    with pytest.raises(M.RemoteProtocolError, match="invalid message length"):
        fe.next_event()


def test_stream_then_end_of_timeline_handshake() -> None:
    fe = started()
    cmd = P.start_replication_command(Lsn("0/3000000"), 1, "arch")
    assert cmd == 'START_REPLICATION SLOT "arch" PHYSICAL 0/3000000 TIMELINE 1'
    fe.send(M.Query(cmd))
    wal = bytes(range(256)) * 40
    evs = events(fe, COPY_BOTH + xlogdata(0x3000000, wal, 0x3100000) + keepalive(0x3100000, True),
                 bytewise=True)
    assert [type(e) for e in evs] == [M.CopyBothResponse, M.XLogData, M.PrimaryKeepalive]
    x, k = evs[1], evs[2]
    assert x.start == 0x3000000 and x.data == wal and x.end == 0x3000000 + len(wal)  # type: ignore
    assert k.reply_requested and k.wal_end == 0x3100000  # type: ignore[union-attr]
    # the status update: 'r', write, flush, apply, time, reply flag, in one CopyData
    wire = fe.send(M.StandbyStatusUpdate(write=0x3002800, flush=0x3002800, send_time=5))
    assert wire == msg(b"d", b"r" + struct.pack("!QQQq?", 0x3002800, 0x3002800, 0, 5, False))
    # the server ends the timeline: CopyDone, we answer CopyDone, then next_tli/startpos
    (done,) = events(fe, COPY_DONE)
    assert isinstance(done, M.CopyDone) and fe.state is P.State.COPY_SERVER_DONE
    fe.send(M.StandbyStatusUpdate(1, 1))  # still allowed: our side is open
    assert fe.send(M.CopyDone()) == COPY_DONE and fe.state is P.State.QUERY
    evs = events(fe, row_description("next_tli", "next_tli_startpos")
                 + data_row(b"2", b"0/3002800") + complete("SELECT 1")
                 + complete("START_STREAMING") + ready())
    rows = tuple(e.values for e in evs if isinstance(e, M.DataRow))
    cols = next(e.columns for e in evs if isinstance(e, M.RowDescription))
    nxt = P.NextTimeline.from_result(P.QueryResult(cols, rows))
    assert nxt == P.NextTimeline(2, Lsn("0/3002800"))
    assert fe.state is P.State.IDLE


def test_client_stops_first() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    events(fe, COPY_BOTH)
    fe.send(M.CopyDone())
    assert fe.state is P.State.COPY_CLIENT_DONE
    with pytest.raises(M.LocalProtocolError):
        fe.send(M.StandbyStatusUpdate(1, 1))  # our side is closed
    evs = events(fe, xlogdata(0x1000000, b"x" * 8) + COPY_DONE + complete("START_STREAMING")
                 + ready())
    assert [type(e) for e in evs] == [M.XLogData, M.CopyDone, M.CommandComplete, M.ReadyForQuery]
    assert fe.state is P.State.IDLE


def test_walsender_shutdown_ends_copy_with_command_complete_then_eof() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    evs = events(fe, COPY_BOTH + complete("COPY 0"))
    assert isinstance(evs[-1], M.CommandComplete) and fe.state is P.State.STREAM_ENDED
    fe.receive_data(b"")
    assert isinstance(fe.next_event(), M.ConnectionClosed)
    assert fe.state is P.State.CLOSED


def test_error_inside_copy_returns_to_query_then_idle() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 9/0 TIMELINE 1"))
    evs = events(fe, COPY_BOTH + error("ERROR", "XX000", "requested starting point 9/0 is ahead "
                                       "of the WAL flush position of this server 0/3000148")
                 + ready())
    assert isinstance(evs[1], M.ErrorResponse) and not evs[1].fatal  # type: ignore[union-attr]
    assert fe.state is P.State.IDLE


def test_historic_timeline_with_nothing_to_send_answers_without_copy() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/4000000 TIMELINE 1"))
    evs = events(fe, row_description("next_tli", "next_tli_startpos") + data_row(b"2", b"0/3FFF000")
                 + complete("SELECT 1") + complete("START_STREAMING") + ready())
    assert not any(isinstance(e, M.CopyBothResponse) for e in evs)
    assert fe.state is P.State.IDLE


def test_xlogdata_header_too_small_is_refused() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    events(fe, COPY_BOTH)
    fe.receive_data(msg(b"d", b"w" + b"\0" * 10))
    with pytest.raises(M.RemoteProtocolError, match="streaming header too small"):
        fe.next_event()


def test_large_stream_in_odd_chunks_keeps_every_byte() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    payloads = [os.urandom(n) for n in (1, 8192, 131072, 7, 65536, 3)]
    stream = COPY_BOTH
    pos = 0x1000000
    for p in payloads:
        stream += xlogdata(pos, p)
        pos += len(p)
    got = []
    for i in range(0, len(stream), 9973):  # chunk boundaries fall anywhere
        got += events(fe, stream[i:i + 9973])
    datas = [e.data for e in got if isinstance(e, M.XLogData)]  # type: ignore[union-attr]
    assert datas == payloads
    assert fe.buffered == 0


def test_replication_command_syntax_per_server_version() -> None:
    assert P.create_slot_command("s1", 150000) == \
        'CREATE_REPLICATION_SLOT "s1" PHYSICAL (RESERVE_WAL)'
    assert P.create_slot_command("s1", 140010) == 'CREATE_REPLICATION_SLOT "s1" PHYSICAL RESERVE_WAL'
    assert P.start_replication_command(Lsn("1/A0000000"), 3) == \
        "START_REPLICATION PHYSICAL 1/A0000000 TIMELINE 3"
    assert P.parse_size_setting("16MB") == 16 << 20
    assert P.parse_size_setting("1GB") == 1 << 30
    assert P.parse_size_setting("8192") == 8192


# ---------------------------------------------------------------------------------------------
# connection strings, environment, password file


def test_keyword_value_strings() -> None:
    kv = parse_conninfo(r"host=db1  port = 5433 user='my user' password='it\'s' dbname=a\ b")
    assert kv == {"host": "db1", "port": "5433", "user": "my user", "password": "it's",
                  "dbname": "a b"}
    with pytest.raises(ConnInfoError, match="invalid connection option \"bogus\""):
        parse_conninfo("bogus=1")
    with pytest.raises(ConnInfoError, match="missing"):
        parse_conninfo("host")


def test_quoted_values_as_libpq() -> None:
    assert parse_conninfo(r"password='a b\'c\\d'")["password"] == "a b'c\\d"
    assert parse_conninfo("options='-c geqo=off'")["options"] == "-c geqo=off"


def test_uris() -> None:
    kv = parse_conninfo("postgresql://rep:s%40cret@db1:5433,[::1]:5434/app?sslmode=require"
                        "&application_name=arch%201&connect_timeout=5")
    assert kv == {"user": "rep", "password": "s@cret", "host": "db1,::1", "port": "5433,5434",
                  "dbname": "app", "sslmode": "require", "application_name": "arch 1",
                  "connect_timeout": "5"}
    assert parse_conninfo("postgres://%2Ftmp%2Fsock/db") == {"host": "/tmp/sock", "dbname": "db"}
    assert parse_conninfo("postgresql://h/?ssl=true")["sslmode"] == "require"
    with pytest.raises(ConnInfoError, match="invalid URI query parameter"):
        parse_conninfo("postgresql://h/?nope=1")


def test_passwords_are_redacted() -> None:
    assert "s3cret" not in redact("host=a password=s3cret user=u")
    assert "s3cret" not in redact("postgresql://u:s3cret@h/db")
    p = resolve("host=a password=s3cret", environ={})
    assert "s3cret" not in repr(p) and "s3cret" not in p.describe()
    with pytest.raises(ConnInfoError) as ei:
        parse_conninfo("password=s3cret more")  # an unquoted space in a password
    assert "more" not in str(ei.value) and "s3cret" not in str(ei.value)


def test_environment_and_precedence() -> None:
    env = {"PGHOST": "envhost", "PGPORT": "6000", "PGUSER": "envuser", "PGPASSWORD": "envpw",
           "PGAPPNAME": "envapp", "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "1"}
    p = resolve("host=connhost", {"port": "7000", "user": None}, environ=env,
                force={"dbname": "replication"}, fallback_application_name="xlogtools")
    assert [(h.host, h.port) for h in p.hosts] == [("connhost", 7000)]
    assert (p.user, p.password, p.application_name, p.sslmode, p.dbname) == \
        ("envuser", "envpw", "envapp", "require", "replication")
    assert p.connect_timeout == 2  # libpq's minimum
    p = resolve(None, environ={"PGUSER": "u"}, fallback_application_name="xlogtools")
    assert p.application_name == "xlogtools" and p.hosts[0].is_unix
    p = resolve("host=a,b port=1,2", environ={})
    assert [(h.host, h.port) for h in p.hosts] == [("a", 1), ("b", 2)]
    with pytest.raises(ConnInfoError, match="sslmode"):
        resolve("sslmode=sometimes", environ={})
    assert resolve(None, environ={"PGREQUIRESSL": "1"}).sslmode == "require"
    assert resolve("mydb", environ={}).dbname == "mydb"  # a plain name is a database


def test_pgpass_matching_escapes_and_permissions(tmp_path: Path) -> None:
    f = tmp_path / "pgpass"
    f.write_text("# comment\n"
                 "other:5432:*:rep:wrong\n"
                 "db1:5432:replication:rep:pa\\:ss\\\\word\n"
                 "*:*:*:*:fallback\n")
    f.chmod(0o600)
    assert pgpass_lookup(str(f), "db1", 5432, "replication", "rep") == "pa:ss\\word"
    assert pgpass_lookup(str(f), "db2", 5432, "replication", "rep") == "fallback"
    f.write_text("localhost:5432:*:rep:local\n")
    assert pgpass_lookup(str(f), "/var/run/postgresql" if Path("/var/run/postgresql").is_dir()
                         else "/tmp", 5432, "x", "rep") == "local"
    f.chmod(0o644)  # group/world readable: ignored with a warning, as libpq does
    assert pgpass_lookup(str(f), "localhost", 5432, "x", "rep") is None
    p = resolve(f"host=db1 passfile={f}", environ={})
    assert p.password is None


def test_reading_straight_into_the_buffer_with_zero_copy_views() -> None:
    """The asyncio layer lets the socket write into the Frontend's buffer (BufferedProtocol);
    with zero_copy each XLogData is a view, good until the next read."""
    fe = started(P.Frontend(zero_copy=True))
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    payloads = [os.urandom(n) for n in (131072, 5, 131072, 131072, 77, 300_000)]
    stream = COPY_BOTH
    pos = 0x1000000
    for p in payloads:
        stream += xlogdata(pos, p)
        pos += len(p)
    got: list[bytes] = []
    i = 0
    while i < len(stream):
        view = fe.get_buffer(-1)
        n = min(len(view), 70_001, len(stream) - i)  # reads of odd sizes
        view[:n] = stream[i:i + n]
        del view
        fe.buffer_updated(n)
        i += n
        while (ev := fe.next_event()) is not M.NEED_DATA:
            if isinstance(ev, M.XLogData):
                assert isinstance(ev.data, memoryview)
                got.append(bytes(ev.data))  # consumed before the next read, as required
    assert got == payloads and fe.buffered == 0


def test_standby_status_fast_path_is_the_same_message() -> None:
    fe = started()
    fe.send(M.Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1"))
    events(fe, COPY_BOTH)
    fast = fe.standby_status(0x1000100, 0x1000080)
    slow = M.encode(M.StandbyStatusUpdate(0x1000100, 0x1000080,
                                          send_time=struct.unpack("!q", fast[30:38])[0]))
    assert fast == slow and fe.state is P.State.COPY_BOTH
    fe.send(M.CopyDone())
    with pytest.raises(M.LocalProtocolError):
        fe.standby_status(1, 1)
