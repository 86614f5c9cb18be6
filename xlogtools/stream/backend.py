"""The PostgreSQL frontend/backend protocol 3.0, server (walsender) side, as a sans-I/O codec
(Frontend/Backend Protocol "Message Formats", "Streaming Replication Protocol"; walsender.c,
repl_gram.y, auth-scram.c), for the physical replication clients of PostgreSQL 13-18.

Nothing here touches a socket: bytes from the client go into `Backend.receive_data()`,
client events come out of `Backend.next_event()` (or `NEED_DATA`), and what the server says
is turned into bytes by `Backend.send(event)`. Server events reuse the dataclasses of
`messages.py` (shared with the client side); the client events it lacks are defined here.
Anything the client sends out of turn or malformed raises `ClientProtocolError`, which
carries the SQLSTATE (08P01) of the ErrorResponse the I/O layer sends before closing.

Also here, all pure: builders of the result sets walsender sends. The replication command
parser (`parse_command`) is in `replcommands.py`, the SCRAM-SHA-256 server exchange
(`ScramExchange`) in `scram.py`.
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Union

from .messages import (NEED_DATA, PROTOCOL_VERSION, SSL_REQUEST_CODE, AuthenticationOk,
                       AuthenticationSASL, AuthenticationSASLContinue, AuthenticationSASLFinal,
                       BackendKeyData, Column, CommandComplete, ConnectionClosed, CopyBothResponse,
                       CopyData, CopyDone, DataRow, EmptyQueryResponse, ErrorResponse,
                       NegotiateProtocolVersion, NoticeResponse, ParameterStatus, PasswordMessage,
                       PrimaryKeepalive, ProtocolError, Query, ReadyForQuery, RowDescription,
                       SASLInitialResponse, SASLResponse, SSLRequest, SSLResponse, Sentinel,
                       StandbyStatusUpdate, StartupMessage, Terminate, XLogData, msg)

GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
MAX_STARTUP_PACKET = 10000  # postmaster's MAX_STARTUP_PACKET_LENGTH
MAX_CLIENT_MESSAGE = 1 << 20  # replication clients send small messages only
MAX_SEND_SIZE = 16 * 8192  # walsender's MAX_SEND_SIZE: XLogData payload per message

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HDR = struct.Struct("!ci")
_XLOGDATA_HDR = struct.Struct("!cQQq")
_KEEPALIVE = struct.Struct("!cQq?")
_STATUS = struct.Struct("!QQQq?")  # after 'r'
_HSFEEDBACK = struct.Struct("!qIIII")  # after 'h': time, xmin, epoch, catalog xmin, epoch
_FIELD = struct.Struct("!IhIhih")

INT8OID, TEXTOID, BYTEAOID = 20, 25, 17
_TYPLEN = {INT8OID: 8, 23: 4, TEXTOID: -1, BYTEAOID: -1}

# SQLSTATEs of our refusals (errcodes.txt)
PROTOCOL_VIOLATION = "08P01"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
FEATURE_NOT_SUPPORTED = "0A000"
SYNTAX_ERROR = "42601"
UNDEFINED_OBJECT = "42704"
UNDEFINED_FILE = "58P01"
OBJECT_NOT_IN_STATE = "55000"
INTERNAL_ERROR = "XX000"
TOO_MANY_CONNECTIONS = "53300"
ADMIN_SHUTDOWN = "57P01"
CONNECTION_FAILURE = "08006"


class ClientProtocolError(ProtocolError):
    """The client broke the protocol; answer with an ErrorResponse of `sqlstate` and close."""

    def __init__(self, message: str, sqlstate: str = PROTOCOL_VIOLATION) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ServerProtocolError(ProtocolError):
    """We (the server) tried to send something out of turn: a bug of ours."""


# ---------------------------------------------------------------------------------------------
# client events the frontend module does not define


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    pid: int
    key: bytes


@dataclass(frozen=True, slots=True)
class HotStandbyFeedback:
    """'h': the standby's xmin (0 = none) and catalog xmin, with their epochs."""

    send_time: int
    xmin: int
    xmin_epoch: int
    catalog_xmin: int
    catalog_xmin_epoch: int


ClientMessage = Union[SSLRequest, GSSENCRequest, CancelRequest, StartupMessage, PasswordMessage,
                      SASLInitialResponse, SASLResponse, Query, StandbyStatusUpdate,
                      HotStandbyFeedback, CopyData, CopyDone, Terminate, ConnectionClosed]


class BState(enum.Enum):
    """The server's view of one connection."""

    STARTUP = "startup"  # untyped startup packets (SSLRequest, StartupMessage...)
    SASL_INITIAL = "sasl_initial"  # AuthenticationSASL sent: a SASLInitialResponse comes
    SASL_CONTINUE = "sasl_continue"  # AuthenticationSASLContinue sent: a SASLResponse comes
    PASSWORD = "password"  # (cleartext password requested: unused, kept for completeness)
    STARTING = "starting"  # AuthenticationOk sent: parameters, key data, ReadyForQuery
    IDLE = "idle"  # ReadyForQuery sent: a Query (or Terminate) comes
    QUERY = "query"  # a command is being answered
    COPY_BOTH = "copy_both"  # streaming
    COPY_SERVER_DONE = "copy_server_done"  # we sent CopyDone; the client still may send
    COPY_CLIENT_DONE = "copy_client_done"  # client sent CopyDone; we still may send
    CLOSED = "closed"


# (state, server event type) -> next state; events allowed in any open state are below.
_SEND: dict[tuple[BState, type], BState] = {
    (BState.STARTUP, SSLResponse): BState.STARTUP,
    (BState.STARTUP, AuthenticationSASL): BState.SASL_INITIAL,
    (BState.STARTUP, AuthenticationOk): BState.STARTING,
    (BState.STARTUP, NegotiateProtocolVersion): BState.STARTUP,
    (BState.SASL_INITIAL, AuthenticationSASLContinue): BState.SASL_CONTINUE,
    (BState.SASL_CONTINUE, AuthenticationSASLFinal): BState.SASL_CONTINUE,
    (BState.SASL_CONTINUE, AuthenticationOk): BState.STARTING,
    (BState.STARTING, ParameterStatus): BState.STARTING,
    (BState.STARTING, BackendKeyData): BState.STARTING,
    (BState.STARTING, ReadyForQuery): BState.IDLE,
    (BState.QUERY, RowDescription): BState.QUERY,
    (BState.QUERY, DataRow): BState.QUERY,
    (BState.QUERY, CommandComplete): BState.QUERY,
    (BState.QUERY, EmptyQueryResponse): BState.QUERY,
    (BState.QUERY, ReadyForQuery): BState.IDLE,
    (BState.QUERY, CopyBothResponse): BState.COPY_BOTH,
    (BState.COPY_BOTH, XLogData): BState.COPY_BOTH,
    (BState.COPY_BOTH, PrimaryKeepalive): BState.COPY_BOTH,
    (BState.COPY_BOTH, CopyDone): BState.COPY_SERVER_DONE,
    (BState.COPY_CLIENT_DONE, XLogData): BState.COPY_CLIENT_DONE,
    (BState.COPY_CLIENT_DONE, PrimaryKeepalive): BState.COPY_CLIENT_DONE,
    (BState.COPY_CLIENT_DONE, CopyDone): BState.QUERY,
    (BState.COPY_SERVER_DONE, PrimaryKeepalive): BState.COPY_SERVER_DONE,
}
_RECV: dict[tuple[BState, type], BState] = {
    (BState.IDLE, Query): BState.QUERY,
    (BState.COPY_BOTH, StandbyStatusUpdate): BState.COPY_BOTH,
    (BState.COPY_BOTH, HotStandbyFeedback): BState.COPY_BOTH,
    (BState.COPY_BOTH, CopyData): BState.COPY_BOTH,
    (BState.COPY_BOTH, CopyDone): BState.COPY_CLIENT_DONE,
    (BState.COPY_SERVER_DONE, StandbyStatusUpdate): BState.COPY_SERVER_DONE,
    (BState.COPY_SERVER_DONE, HotStandbyFeedback): BState.COPY_SERVER_DONE,
    (BState.COPY_SERVER_DONE, CopyData): BState.COPY_SERVER_DONE,
    (BState.COPY_SERVER_DONE, CopyDone): BState.QUERY,
}


def error_response(sqlstate: str, message: str, *, severity: str = "ERROR",
                   detail: str | None = None, hint: str | None = None) -> ErrorResponse:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail:
        fields["D"] = detail
    if hint:
        fields["H"] = hint
    return ErrorResponse(fields)


def notice_response(message: str, *, severity: str = "WARNING", sqlstate: str = "01000",
                    detail: str | None = None) -> NoticeResponse:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail:
        fields["D"] = detail
    return NoticeResponse(fields)


class Backend:
    """The server end of one connection (see the module docstring)."""

    def __init__(self) -> None:
        self.state = BState.STARTUP
        self._buf = bytearray()
        self._eof = False
        self.startup_parameters: dict[str, str] = {}

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
            return
        self._buf += data
        if len(self._buf) > MAX_CLIENT_MESSAGE + 5 + (1 << 16):
            # A peer that floods us without our reading it is not a replication client.
            raise ClientProtocolError("too much data buffered from the client")

    def next_event(self) -> ClientMessage | Sentinel:
        if self.state is BState.CLOSED:
            return ConnectionClosed()
        ev = self._parse()
        if ev is NEED_DATA:
            if self._eof:
                if self._buf:
                    self.state = BState.CLOSED
                    raise ClientProtocolError("unexpected EOF within message")
                self.state = BState.CLOSED
                return ConnectionClosed()
            return NEED_DATA
        self._recv_transition(ev)
        return ev

    def _recv_transition(self, ev: ClientMessage) -> None:
        kind = type(ev)
        if kind is Terminate:
            self.state = BState.CLOSED
            return
        if self.state in (BState.STARTUP, BState.SASL_INITIAL, BState.SASL_CONTINUE,
                          BState.PASSWORD):
            return  # _parse already accepted only what these states allow
        if self.state is BState.QUERY and kind in (CopyData, CopyDone):
            return  # after an error ended a copy the client may still send some (postgres.c)
        if self.state is BState.IDLE and kind in (CopyData, CopyDone, StandbyStatusUpdate,
                                                  HotStandbyFeedback):
            return  # same: "accept but ignore these messages, per protocol spec"
        new = _RECV.get((self.state, kind))
        if new is None:
            raise ClientProtocolError(
                f"unexpected message {kind.__name__} from the client in state {self.state.value}")
        self.state = new

    def _parse(self) -> ClientMessage | Sentinel:
        buf = self._buf
        if self.state is BState.STARTUP:
            return self._parse_startup()
        if len(buf) < 5:
            return NEED_DATA
        typ, length = _HDR.unpack_from(buf, 0)
        if length < 4 or length > MAX_CLIENT_MESSAGE:
            raise ClientProtocolError(f"invalid message length {length} (type {typ!r})")
        if len(buf) < 1 + length:
            return NEED_DATA
        body = bytes(buf[5:1 + length])
        del buf[:1 + length]
        try:
            return self._message(typ[0], body)
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ClientProtocolError(f"invalid message format ({chr(typ[0])!r}): {exc}") from None

    def _parse_startup(self) -> ClientMessage | Sentinel:
        buf = self._buf
        if len(buf) < 4:
            return NEED_DATA
        length = _I32.unpack_from(buf, 0)[0]
        if length < 8 or length > MAX_STARTUP_PACKET:
            raise ClientProtocolError("invalid length of startup packet")
        if len(buf) < length:
            return NEED_DATA
        pkt = bytes(buf[4:length])
        del buf[:length]
        code = _I32.unpack_from(pkt, 0)[0]
        if code == SSL_REQUEST_CODE and length == 8:
            if buf:  # CVE-2021-23214: nothing may follow an SSLRequest before the answer
                raise ClientProtocolError("received unencrypted data after SSL request")
            return SSLRequest()
        if code == GSSENC_REQUEST_CODE and length == 8:
            if buf:
                raise ClientProtocolError("received unencrypted data after GSSAPI encryption "
                                          "request")
            return GSSENCRequest()
        if code == CANCEL_REQUEST_CODE and length >= 12:
            return CancelRequest(_I32.unpack_from(pkt, 4)[0], pkt[8:])
        major, minor = code >> 16 & 0xFFFF, code & 0xFFFF
        if major != PROTOCOL_VERSION >> 16:
            raise ClientProtocolError(f"unsupported frontend protocol {major}.{minor}: server "
                                      "supports 3.0 to 3.0", FEATURE_NOT_SUPPORTED)
        raw = pkt[4:]
        if not raw.endswith(b"\0"):
            raise ClientProtocolError("invalid startup packet layout: expected terminator as "
                                      "last byte")
        parts = raw[:-1].split(b"\0")
        if parts and parts[-1] == b"":
            parts.pop()
        if len(parts) % 2:
            raise ClientProtocolError("invalid startup packet layout: expected terminator as "
                                      "last byte")
        try:
            params = tuple((parts[i].decode(), parts[i + 1].decode())
                           for i in range(0, len(parts), 2))
        except UnicodeDecodeError:
            raise ClientProtocolError("invalid startup packet: not UTF-8") from None
        self.startup_parameters = dict(params)
        self.protocol_minor = minor
        return StartupMessage(params)

    def _message(self, t: int, body: bytes) -> ClientMessage:
        st = self.state
        if t == 0x58:  # 'X'
            return Terminate()
        if st in (BState.SASL_INITIAL, BState.SASL_CONTINUE, BState.PASSWORD):
            if t != 0x70:  # 'p'
                raise ClientProtocolError(f"expected SASL response, got message type {t}")
            if st is BState.SASL_INITIAL:
                z = body.index(0)
                mech = body[:z].decode()
                n = _I32.unpack_from(body, z + 1)[0]
                data = body[z + 5:]
                if n != len(data) and not (n == -1 and not data):
                    raise ClientProtocolError("malformed SASLInitialResponse message")
                return SASLInitialResponse(mech, data)
            if st is BState.SASL_CONTINUE:
                return SASLResponse(body)
            return PasswordMessage(body.rstrip(b"\0"))
        if t == 0x51:  # 'Q'
            if not body.endswith(b"\0") or b"\0" in body[:-1]:
                raise ClientProtocolError("invalid string in message")
            return Query(body[:-1].decode("utf-8"))
        if t == 0x64:  # 'd'
            if not body:
                return CopyData(body)
            sub = body[0]
            if sub == 0x72:  # 'r'
                if len(body) < 1 + _STATUS.size:
                    raise ClientProtocolError("invalid standby message: status update too short")
                w, f, a, ts, reply = _STATUS.unpack_from(body, 1)
                return StandbyStatusUpdate(w, f, a, ts, bool(reply))
            if sub == 0x68:  # 'h'
                if len(body) < 1 + _HSFEEDBACK.size:
                    raise ClientProtocolError("invalid standby message: feedback too short")
                return HotStandbyFeedback(*_HSFEEDBACK.unpack_from(body, 1))
            raise ClientProtocolError(f"unexpected message type \"{chr(sub)}\"")
        if t == 0x63:  # 'c'
            return CopyDone()
        if t == 0x66:  # 'f' CopyFail: the client gives up the copy
            raise ClientProtocolError("COPY failed: " + body.rstrip(b"\0").decode("utf-8",
                                                                               "replace"))
        if t in (0x50, 0x42, 0x44, 0x45, 0x53, 0x48, 0x43, 0x46):  # extended protocol
            raise ClientProtocolError("extended query protocol not supported in a replication "
                                      "connection", FEATURE_NOT_SUPPORTED)
        raise ClientProtocolError(f"invalid frontend message type {t}")

    # -- output -------------------------------------------------------------------------------
    def send(self, event: object) -> bytes:
        """Bytes for a server event; moves the state (ServerProtocolError when out of turn)."""
        kind = type(event)
        if kind in (ErrorResponse, NoticeResponse, ParameterStatus):
            data = encode_server(event)
            if kind is ErrorResponse:
                sev = event.severity  # type: ignore[attr-defined]
                if sev in ("FATAL", "PANIC") or self.state in (
                        BState.STARTUP, BState.SASL_INITIAL, BState.SASL_CONTINUE,
                        BState.PASSWORD, BState.STARTING):
                    self.state = BState.CLOSED
                elif self.state in (BState.COPY_BOTH, BState.COPY_SERVER_DONE,
                                    BState.COPY_CLIENT_DONE, BState.IDLE):
                    self.state = BState.QUERY  # an ERROR ends the copy; ReadyForQuery follows
            return data
        new = _SEND.get((self.state, kind))
        if new is None:
            raise ServerProtocolError(f"cannot send {kind.__name__} in state {self.state.value}")
        data = encode_server(event)
        self.state = new
        return data


# ---------------------------------------------------------------------------------------------
# encoding of server messages

# (message framing, `messages.msg`, is one definition for both sides)


def _z(s: str) -> bytes:
    return s.encode("utf-8").replace(b"\0", b"") + b"\0"


def encode_xlogdata(start: int, wal_end: int, send_time: int, data: bytes | memoryview) -> bytes:
    """'d' + 'w' header + WAL bytes in one buffer (the hot path)."""
    n = len(data)
    return b"".join((b"d", _I32.pack(4 + 25 + n),
                     _XLOGDATA_HDR.pack(b"w", start, wal_end, send_time), data))


def encode_server(ev: object) -> bytes:
    if isinstance(ev, XLogData):
        return encode_xlogdata(ev.start, ev.wal_end, ev.send_time, ev.data)
    if isinstance(ev, PrimaryKeepalive):
        return msg(b"d", _KEEPALIVE.pack(b"k", ev.wal_end, ev.send_time, ev.reply_requested))
    if isinstance(ev, SSLResponse):
        return b"S" if ev.accepted else b"N"
    if isinstance(ev, AuthenticationOk):
        return msg(b"R", _I32.pack(0))
    if isinstance(ev, AuthenticationSASL):
        return msg(b"R", _I32.pack(10) + b"".join(_z(m) for m in ev.mechanisms) + b"\0")
    if isinstance(ev, AuthenticationSASLContinue):
        return msg(b"R", _I32.pack(11) + ev.data)
    if isinstance(ev, AuthenticationSASLFinal):
        return msg(b"R", _I32.pack(12) + ev.data)
    if isinstance(ev, ParameterStatus):
        return msg(b"S", _z(ev.name) + _z(ev.value))
    if isinstance(ev, BackendKeyData):
        return msg(b"K", _I32.pack(ev.pid) + ev.key)
    if isinstance(ev, ReadyForQuery):
        return msg(b"Z", ev.status.encode())
    if isinstance(ev, (ErrorResponse, NoticeResponse)):
        body = b"".join(k.encode() + _z(v) for k, v in ev.fields.items()) + b"\0"
        return msg(b"E" if isinstance(ev, ErrorResponse) else b"N", body)
    if isinstance(ev, RowDescription):
        body = _I16.pack(len(ev.columns)) + b"".join(
            _z(c.name) + _FIELD.pack(0, 0, c.type_oid, _TYPLEN.get(c.type_oid, -1), -1, c.format)
            for c in ev.columns)
        return msg(b"T", body)
    if isinstance(ev, DataRow):
        parts = [_I16.pack(len(ev.values))]
        for v in ev.values:
            parts.append(_I32.pack(-1) if v is None else _I32.pack(len(v)) + v)
        return msg(b"D", b"".join(parts))
    if isinstance(ev, CommandComplete):
        return msg(b"C", _z(ev.tag))
    if isinstance(ev, EmptyQueryResponse):
        return msg(b"I", b"")
    if isinstance(ev, CopyBothResponse):
        return msg(b"W", bytes([ev.format]) + _I16.pack(0))
    if isinstance(ev, CopyDone):
        return b"c\0\0\0\4"
    if isinstance(ev, NegotiateProtocolVersion):
        return msg(b"v", _I32.pack(ev.newest_minor) + _I32.pack(len(ev.unrecognized))
                    + b"".join(_z(n) for n in ev.unrecognized))
    raise ServerProtocolError(f"not a server event: {ev!r}")


def result_set(columns: list[tuple[str, int]], rows: list[tuple[bytes | None, ...]],
               tag: str) -> list[object]:
    """RowDescription, DataRows and CommandComplete of one result (text format)."""
    out: list[object] = [RowDescription(tuple(Column(n, oid, 0) for n, oid in columns))]
    out += [DataRow(r) for r in rows]
    out.append(CommandComplete(tag))
    return out


def server_parameters(pg_major: int, user: str, application_name: str) -> list[ParameterStatus]:
    """What a walsender reports after AuthenticationOk (a subset of GUC_REPORT settings)."""
    values = [("application_name", application_name), ("client_encoding", "UTF8"),
              ("DateStyle", "ISO, MDY"), ("integer_datetimes", "on"),
              ("IntervalStyle", "postgres"), ("is_superuser", "on"),
              ("server_encoding", "UTF8"), ("server_version", f"{pg_major}.0"),
              ("session_authorization", user), ("standard_conforming_strings", "on"),
              ("TimeZone", "UTC")]
    if pg_major >= 14:
        values.append(("in_hot_standby", "off"))
    return [ParameterStatus(n, v) for n, v in values]
