"""The PostgreSQL frontend/backend protocol 3.0, client side, as a sans-I/O state machine
(Frontend/Backend Protocol, "Message Formats" and "Streaming Replication Protocol" of the
PostgreSQL documentation; walsender.c, receivelog.c), servers 10-18.

Nothing here touches a socket: bytes come in through `Frontend.receive_data()`, events come
out of `Frontend.next_event()` (or `NEED_DATA`), and what the client says is turned into bytes
by `Frontend.send(event)` (the events themselves are in `messages.py`). Every state change is
a row of `_SERVER_TRANSITIONS` or `_CLIENT_TRANSITIONS`; anything else is a
`RemoteProtocolError` (the server broke the protocol) or a `LocalProtocolError` (we tried to
send something out of turn).
"""
from __future__ import annotations

import enum
import struct
import time
from dataclasses import dataclass

from ..lsn import Lsn
from .messages import (MAX_MESSAGE, NEED_DATA, PG_EPOCH_OFFSET_US, STATUS_UPDATE_MSG,
                       AuthenticationCleartextPassword, AuthenticationMD5Password,
                       AuthenticationOk, AuthenticationSASL,
                       AuthenticationSASLContinue, AuthenticationSASLFinal,
                       AuthenticationUnsupported, BackendKeyData, ClientEvent, Column,
                       CommandComplete, ConnectionClosed, CopyBothResponse, CopyData, CopyDone,
                       DataRow, EmptyQueryResponse, ErrorResponse, LocalProtocolError,
                       NegotiateProtocolVersion, NoticeResponse, NotificationResponse,
                       ParameterStatus, PasswordMessage, PrimaryKeepalive, Query, ReadyForQuery,
                       RemoteProtocolError, RowDescription, SASLInitialResponse, SASLResponse,
                       Sentinel, ServerEvent, SSLRequest, SSLResponse, StandbyStatusUpdate,
                       StartupMessage, Terminate, XLogData, encode)

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_HDR = struct.Struct("!ci")  # message type byte + length (which counts itself)
_XLOGDATA = struct.Struct("!QQq")  # dataStart, walEnd, sendTime
_KEEPALIVE = struct.Struct("!Qq?")  # walEnd, sendTime, replyRequested
_FIELD = struct.Struct("!IhIhih")  # RowDescription: table oid, attnum, type oid, len, mod, fmt
_INITIAL_BUFFER = 1 << 20  # walsender messages are up to 128 kB of WAL (MAX_SEND_SIZE)
_MIN_READ = 256 << 10  # room offered to each socket read


class State(enum.Enum):
    """The connection's state, one for both sides (the client drives the turns)."""

    INITIAL = "initial"  # nothing sent yet (also again after a TLS handshake)
    SSL_REQUESTED = "ssl_requested"  # SSLRequest sent; a single byte 'S' or 'N' comes next
    AUTHENTICATING = "authenticating"  # StartupMessage sent, until AuthenticationOk
    STARTING = "starting"  # ParameterStatus / BackendKeyData until the first ReadyForQuery
    IDLE = "idle"  # ReadyForQuery received: a query may be sent
    QUERY = "query"  # a simple query is running: results until ReadyForQuery
    COPY_BOTH = "copy_both"  # replication stream, both directions open
    COPY_SERVER_DONE = "copy_server_done"  # server sent CopyDone; we still may send
    COPY_CLIENT_DONE = "copy_client_done"  # we sent CopyDone; the server still may send
    STREAM_ENDED = "stream_ended"  # CommandComplete inside copy: walsender shutting down
    CLOSED = "closed"


_AUTH_EVENTS = (AuthenticationCleartextPassword, AuthenticationMD5Password, AuthenticationSASL,
                AuthenticationSASLContinue, AuthenticationSASLFinal, AuthenticationUnsupported)
_RESULT_EVENTS = (RowDescription, DataRow, CommandComplete, EmptyQueryResponse, ErrorResponse)
_STREAM_EVENTS = (XLogData, PrimaryKeepalive, CopyData)

# ---------------------------------------------------------------------------------------------
# the transitions: (state, event type) -> next state. Events that may arrive in any state
# (notices, parameter changes, notifications, a FATAL error, EOF) are handled in one place
# in Frontend._server_transition.


def _rows(state: State, events: tuple[type, ...], to: State) -> dict[tuple[State, type], State]:
    return {(state, e): to for e in events}


_SERVER_TRANSITIONS: dict[tuple[State, type], State] = {
    (State.SSL_REQUESTED, SSLResponse): State.INITIAL,
    **_rows(State.AUTHENTICATING, _AUTH_EVENTS, State.AUTHENTICATING),
    (State.AUTHENTICATING, AuthenticationOk): State.STARTING,
    (State.AUTHENTICATING, NegotiateProtocolVersion): State.AUTHENTICATING,
    (State.STARTING, BackendKeyData): State.STARTING,
    (State.STARTING, NegotiateProtocolVersion): State.STARTING,
    (State.STARTING, ReadyForQuery): State.IDLE,
    **_rows(State.QUERY, _RESULT_EVENTS, State.QUERY),
    (State.QUERY, CopyBothResponse): State.COPY_BOTH,
    (State.QUERY, ReadyForQuery): State.IDLE,
    **_rows(State.COPY_BOTH, _STREAM_EVENTS, State.COPY_BOTH),
    (State.COPY_BOTH, CopyDone): State.COPY_SERVER_DONE,
    (State.COPY_BOTH, CommandComplete): State.STREAM_ENDED,  # WalSndDone: "COPY 0", exit
    (State.COPY_BOTH, ErrorResponse): State.QUERY,  # an ERROR ends the copy; RFQ follows
    **_rows(State.COPY_CLIENT_DONE, _STREAM_EVENTS, State.COPY_CLIENT_DONE),
    (State.COPY_CLIENT_DONE, CopyDone): State.QUERY,
    (State.COPY_CLIENT_DONE, CommandComplete): State.QUERY,
    (State.COPY_CLIENT_DONE, ErrorResponse): State.QUERY,
    (State.COPY_SERVER_DONE, ErrorResponse): State.QUERY,
    (State.STREAM_ENDED, ReadyForQuery): State.IDLE,
}

_CLIENT_TRANSITIONS: dict[tuple[State, type], State] = {
    (State.INITIAL, SSLRequest): State.SSL_REQUESTED,
    (State.INITIAL, StartupMessage): State.AUTHENTICATING,
    (State.AUTHENTICATING, PasswordMessage): State.AUTHENTICATING,
    (State.AUTHENTICATING, SASLInitialResponse): State.AUTHENTICATING,
    (State.AUTHENTICATING, SASLResponse): State.AUTHENTICATING,
    (State.IDLE, Query): State.QUERY,
    (State.COPY_BOTH, StandbyStatusUpdate): State.COPY_BOTH,
    (State.COPY_BOTH, CopyDone): State.COPY_CLIENT_DONE,
    (State.COPY_SERVER_DONE, StandbyStatusUpdate): State.COPY_SERVER_DONE,
    (State.COPY_SERVER_DONE, CopyDone): State.QUERY,
    # a client may leave at any time, whatever the state
    **{(s, Terminate): State.CLOSED for s in State},
}

_ANYTIME = (NoticeResponse, ParameterStatus, NotificationResponse)


def _cstr(buf: bytes | bytearray, pos: int, end: int) -> tuple[str, int]:
    z = buf.index(0, pos, end)
    return bytes(buf[pos:z]).decode("utf-8", "replace"), z + 1


class Frontend:
    """The client end of one connection.

    Feed it what the socket gave with `receive_data()` (b"" at EOF), or let the socket
    write straight into it (`get_buffer()` then `buffer_updated()`, for asyncio's
    BufferedProtocol); take events with `next_event()` until it returns NEED_DATA, and write
    the bytes `send()` returns.

    zero_copy: XLogData.data is then a memoryview into the receive buffer, valid only until
    the next receive_data()/get_buffer() call (a receiver writes each one out at once).
    """

    def __init__(self, *, zero_copy: bool = False) -> None:
        self.state = State.INITIAL
        self._buf = bytearray(_INITIAL_BUFFER)
        self._pos = 0  # where the next message starts
        self._end = 0  # end of what was received
        self._eof = False
        self.zero_copy = zero_copy
        self.parameters: dict[str, str] = {}  # ParameterStatus values seen so far
        self.backend_pid: int | None = None

    # -- input ----------------------------------------------------------------------------
    def _make_room(self, n: int) -> None:
        """At least n free bytes after _end: move the unparsed rest to the front, or grow.
        The buffer is never resized in place (views of it may exist): a new one replaces it."""
        if self._pos == self._end:
            self._pos = self._end = 0
        buf = self._buf
        if len(buf) - self._end >= n:
            return
        live = self._end - self._pos
        if live + n <= len(buf):
            buf[0:live] = buf[self._pos:self._end]  # same length: no resize
        else:
            new = bytearray(max(2 * len(buf), live + n))
            new[0:live] = buf[self._pos:self._end]
            self._buf = new
        self._pos, self._end = 0, live

    def receive_data(self, data: bytes) -> None:
        if self._eof and data:
            raise LocalProtocolError("received data after end of file")
        if not data:
            self._eof = True
            return
        n = len(data)
        self._make_room(n)
        self._buf[self._end:self._end + n] = data
        self._end += n

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view where the next bytes from the socket go (buffer_updated after)."""
        self._make_room(max(sizehint, _MIN_READ))
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._eof and nbytes:
            raise LocalProtocolError("received data after end of file")
        self._end += nbytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return self._end - self._pos

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._buf[self._pos:self._end])

    def next_event(self) -> ServerEvent | Sentinel:
        if self.state is State.CLOSED:
            return ConnectionClosed()
        ev = self._parse()
        if ev is NEED_DATA:
            if self._eof:
                self.state = State.CLOSED
                return ConnectionClosed()
            return NEED_DATA
        self._server_transition(ev)
        return ev

    def _server_transition(self, ev: ServerEvent) -> None:
        kind = type(ev)
        if kind in _ANYTIME:
            if kind is ParameterStatus:
                self.parameters[ev.name] = ev.value  # type: ignore[union-attr]
            return
        if kind is ErrorResponse and ev.fatal:  # type: ignore[union-attr]
            self.state = State.CLOSED  # the server closes the connection after FATAL
            return
        if kind is ErrorResponse and self.state in (State.AUTHENTICATING, State.STARTING):
            self.state = State.CLOSED  # errors during startup are always fatal
            return
        new = _SERVER_TRANSITIONS.get((self.state, kind))
        if new is None:
            raise RemoteProtocolError(
                f"unexpected {kind.__name__} from the server in state {self.state.value}")
        if kind is BackendKeyData:
            self.backend_pid = ev.pid  # type: ignore[union-attr]
        self.state = new

    # -- parsing --------------------------------------------------------------------------
    def _parse(self) -> ServerEvent | Sentinel:
        buf = self._buf
        pos = self._pos
        avail = self._end - pos
        if self.state is State.SSL_REQUESTED:
            if avail < 1:
                return NEED_DATA
            b = buf[pos]
            if b == 0x53 or b == 0x4E:  # 'S' / 'N'
                self._pos = pos + 1
                if b == 0x53 and self._end > self._pos:
                    # CVE-2021-23222: bytes after 'S' were not protected by TLS.
                    raise RemoteProtocolError("received unencrypted data after SSL response")
                return SSLResponse(b == 0x53)
            if b != 0x45:  # an ErrorResponse (servers before 7.0.x did so) is parsed below
                raise RemoteProtocolError(f"received invalid response to SSL negotiation: "
                                          f"{chr(b)!r}")
        if avail < 5:
            return NEED_DATA
        typ, length = _HDR.unpack_from(buf, pos)
        if length < 4 or length > MAX_MESSAGE:
            raise RemoteProtocolError(f"invalid message length {length} (type {typ!r})")
        end = pos + 1 + length
        if self._end < end:
            return NEED_DATA
        body = pos + 5
        self._pos = end
        t = typ[0]
        try:
            if t == 0x64:  # 'd' CopyData: the hot path
                sub = buf[body] if end > body else 0
                if sub == 0x77 and end - body >= 25:  # 'w' XLogData
                    start, wal_end, send_time = _XLOGDATA.unpack_from(buf, body + 1)
                    if self.zero_copy:
                        return XLogData(start, wal_end, send_time,
                                        memoryview(buf)[body + 25:end])  # type: ignore[arg-type]
                    with memoryview(buf) as mv:
                        data = mv[body + 25:end].tobytes()
                    return XLogData(start, wal_end, send_time, data)
                if sub == 0x6B and end - body >= 18:  # 'k' keepalive
                    wal_end, send_time, reply = _KEEPALIVE.unpack_from(buf, body + 1)
                    return PrimaryKeepalive(wal_end, send_time, reply)
                if sub in (0x77, 0x6B):
                    raise RemoteProtocolError(f"streaming header too small: {end - body}")
                return CopyData(bytes(buf[body:end]))
            return self._parse_other(t, buf, body, end)
        except (struct.error, ValueError, IndexError) as exc:
            raise RemoteProtocolError(f"malformed {chr(t)!r} message from the server: {exc}") \
                from None

    def _parse_other(self, t: int, buf: bytearray, body: int, end: int) -> ServerEvent:
        if t == 0x52:  # 'R'
            code = _I32.unpack_from(buf, body)[0]
            if code == 0:
                return AuthenticationOk()
            if code == 3:
                return AuthenticationCleartextPassword()
            if code == 5:
                return AuthenticationMD5Password(bytes(buf[body + 4:body + 8]))
            if code == 10:
                mechs = bytes(buf[body + 4:end]).split(b"\0")
                return AuthenticationSASL(tuple(m.decode() for m in mechs if m))
            if code == 11:
                return AuthenticationSASLContinue(bytes(buf[body + 4:end]))
            if code == 12:
                return AuthenticationSASLFinal(bytes(buf[body + 4:end]))
            return AuthenticationUnsupported(code)
        if t == 0x53:  # 'S'
            name, p = _cstr(buf, body, end)
            value, _ = _cstr(buf, p, end)
            return ParameterStatus(name, value)
        if t == 0x4B:  # 'K'
            return BackendKeyData(_I32.unpack_from(buf, body)[0], bytes(buf[body + 4:end]))
        if t == 0x5A:  # 'Z'
            return ReadyForQuery(chr(buf[body]))
        if t == 0x45 or t == 0x4E:  # 'E' / 'N'
            fields: dict[str, str] = {}
            p = body
            while p < end and buf[p] != 0:
                code = chr(buf[p])
                fields[code], p = _cstr(buf, p + 1, end)
            return ErrorResponse(fields) if t == 0x45 else NoticeResponse(fields)
        if t == 0x54:  # 'T'
            n = _I16.unpack_from(buf, body)[0]
            p = body + 2
            cols = []
            for _ in range(n):
                name, p = _cstr(buf, p, end)
                _tbl, _att, typoid, _len, _mod, fmt = _FIELD.unpack_from(buf, p)
                p += _FIELD.size
                cols.append(Column(name, typoid, fmt))
            return RowDescription(tuple(cols))
        if t == 0x44:  # 'D'
            n = _I16.unpack_from(buf, body)[0]
            p = body + 2
            values: list[bytes | None] = []
            for _ in range(n):
                ln = _I32.unpack_from(buf, p)[0]
                p += 4
                if ln < 0:
                    values.append(None)
                else:
                    if p + ln > end:
                        raise RemoteProtocolError("DataRow column runs past its message")
                    values.append(bytes(buf[p:p + ln]))
                    p += ln
            return DataRow(tuple(values))
        if t == 0x43:  # 'C'
            return CommandComplete(_cstr(buf, body, end)[0])
        if t == 0x49:  # 'I'
            return EmptyQueryResponse()
        if t == 0x57:  # 'W'
            return CopyBothResponse(buf[body])
        if t == 0x63:  # 'c'
            return CopyDone()
        if t == 0x76:  # 'v'
            minor, n = _I32.unpack_from(buf, body)[0], _I32.unpack_from(buf, body + 4)[0]
            p = body + 8
            names = []
            for _ in range(n):
                s, p = _cstr(buf, p, end)
                names.append(s)
            return NegotiateProtocolVersion(minor, tuple(names))
        if t == 0x41:  # 'A'
            pid = _I32.unpack_from(buf, body)[0]
            channel, p = _cstr(buf, body + 4, end)
            payload, _ = _cstr(buf, p, end)
            return NotificationResponse(pid, channel, payload)
        raise RemoteProtocolError(f"unexpected message type {chr(t)!r} from the server "
                                  f"(state {self.state.value})")

    # -- output ---------------------------------------------------------------------------
    def standby_status(self, write: int, flush: int, apply: int = 0,
                       reply_requested: bool = False) -> bytes:
        """send(StandbyStatusUpdate(...)) without building the event: a synchronous
        receiver sends one per commit it acknowledges."""
        if self.state is not State.COPY_BOTH and self.state is not State.COPY_SERVER_DONE:
            raise LocalProtocolError(f"cannot send StandbyStatusUpdate in state "
                                     f"{self.state.value}")
        return STATUS_UPDATE_MSG.pack(b"d", STATUS_UPDATE_MSG.size - 1, b"r", write, flush,
                                      apply, time.time_ns() // 1000 - PG_EPOCH_OFFSET_US,
                                      reply_requested)

    def send(self, event: ClientEvent) -> bytes:
        """Bytes for `event`; moves the state machine (LocalProtocolError when out of turn)."""
        kind = type(event)
        new = _CLIENT_TRANSITIONS.get((self.state, kind))
        if new is None:
            raise LocalProtocolError(f"cannot send {kind.__name__} in state {self.state.value}")
        data = encode(event)
        self.state = new
        return data


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def start_replication_command(start: Lsn | int, timeline: int, slot: str | None = None) -> str:
    """START_REPLICATION [SLOT s] PHYSICAL X/X TIMELINE tli."""
    slot_part = f"SLOT {quote_ident(slot)} " if slot else ""
    return f"START_REPLICATION {slot_part}PHYSICAL {Lsn(start)} TIMELINE {timeline}"


def create_slot_command(slot: str, server_version: int) -> str:
    """CREATE_REPLICATION_SLOT in the syntax of the server: the option list is 15+."""
    if server_version >= 150000:
        return f"CREATE_REPLICATION_SLOT {quote_ident(slot)} PHYSICAL (RESERVE_WAL)"
    return f"CREATE_REPLICATION_SLOT {quote_ident(slot)} PHYSICAL RESERVE_WAL"


def drop_slot_command(slot: str) -> str:
    return f"DROP_REPLICATION_SLOT {quote_ident(slot)}"


@dataclass(frozen=True)
class QueryResult:
    """The rows of one simple-query statement, as text (bytes) values."""

    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[bytes | None, ...], ...] = ()
    tag: str = ""

    def text(self, row: int, col: int) -> str | None:
        v = self.rows[row][col]
        return None if v is None else v.decode("utf-8", "replace")


@dataclass(frozen=True)
class SystemIdentity:
    """IDENTIFY_SYSTEM: systemid, timeline, xlogpos (dbname is NULL for physical)."""

    system_identifier: int
    timeline: int
    xlogpos: Lsn

    @classmethod
    def from_result(cls, r: QueryResult) -> "SystemIdentity":
        if len(r.rows) != 1 or len(r.columns) < 3:
            raise RemoteProtocolError(f"could not identify system: got {len(r.rows)} rows and "
                                      f"{len(r.columns)} fields, expected 1 rows and 3 or more "
                                      "fields")
        try:
            return cls(int(r.text(0, 0) or ""), int(r.text(0, 1) or ""), Lsn(r.text(0, 2) or ""))
        except ValueError as exc:
            raise RemoteProtocolError(f"could not parse IDENTIFY_SYSTEM result: {exc}") from None


@dataclass(frozen=True)
class SlotInfo:
    """READ_REPLICATION_SLOT (15+): slot_type, restart_lsn, restart_tli (NULL if unset)."""

    slot_type: str | None
    restart_lsn: Lsn | None
    restart_tli: int | None

    @classmethod
    def from_result(cls, r: QueryResult) -> "SlotInfo":
        if len(r.rows) != 1 or len(r.columns) != 3:
            raise RemoteProtocolError(f"could not read replication slot: got {len(r.rows)} rows "
                                      f"and {len(r.columns)} fields, expected 1 rows and 3 "
                                      "fields")
        t, lsn, tli = r.text(0, 0), r.text(0, 1), r.text(0, 2)
        try:
            return cls(t, Lsn(lsn) if lsn else None, int(tli) if tli else None)
        except ValueError as exc:
            raise RemoteProtocolError(f"could not parse READ_REPLICATION_SLOT result: {exc}") \
                from None


@dataclass(frozen=True)
class NextTimeline:
    """The result set after the end of a timeline: next_tli, next_tli_startpos."""

    timeline: int
    start: Lsn

    @classmethod
    def from_result(cls, r: QueryResult) -> "NextTimeline":
        if len(r.rows) != 1 or len(r.columns) < 2:
            raise RemoteProtocolError(f"unexpected result set after end-of-timeline: got "
                                      f"{len(r.rows)} rows and {len(r.columns)} fields, expected "
                                      "1 rows and 2 fields")
        try:
            return cls(int(r.text(0, 0) or ""), Lsn(r.text(0, 1) or ""))
        except ValueError:
            raise RemoteProtocolError("could not parse next timeline's starting point "
                                      f"{r.text(0, 1)!r}") from None


def parse_size_setting(text: str) -> int:
    """SHOW wal_segment_size / wal_block_size ('16MB', '8192') in bytes."""
    s = text.strip()
    units = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u) and s[:-len(u)].strip().isdigit():
            return int(s[:-len(u)]) * units[u]
    if s.isdigit():
        return int(s)
    raise RemoteProtocolError(f"could not parse size setting {text!r}")
