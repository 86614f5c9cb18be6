"""The messages of the PostgreSQL frontend/backend protocol 3.0 and of its streaming
replication sub-protocol, as both ends share them: the events (frozen dataclasses) of the
server (`ServerEvent`) and of the client (`ClientEvent`), the client's wire form of them
(`encode`), the protocol's constants and errors. The client's state machine is
`protocol.Frontend`, the server's `backend.Backend`.

Inside CopyBoth the replication sub-messages are decoded into `XLogData` ('w') and
`PrimaryKeepalive` ('k'); the client sends `StandbyStatusUpdate` ('r') and `CopyDone`.
"""
from __future__ import annotations

import enum
import struct
import time
from dataclasses import dataclass, field
from typing import Union

from ..errors import XlogError

PROTOCOL_VERSION = 3 << 16  # 3.0
SSL_REQUEST_CODE = 80877103  # (1234 << 16) | 5679
MAX_MESSAGE = (1 << 30) + 64  # a DataRow may carry a big history file; nothing legit is bigger
# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01), for sendTime fields.
PG_EPOCH_OFFSET_US = 946_684_800_000_000

_I32 = struct.Struct("!i")
# CopyData('r' write flush apply sendTime replyRequested): the whole message in one pack
STATUS_UPDATE_MSG = struct.Struct("!cicQQQq?")


class ProtocolError(XlogError):
    """The conversation with the server cannot go on."""


class LocalProtocolError(ProtocolError):
    """We (the client) tried to do something the protocol does not allow now."""


class RemoteProtocolError(ProtocolError):
    """The server sent something the protocol does not allow (or garbage)."""


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA


# ---------------------------------------------------------------------------------------------
# events from the server


@dataclass(frozen=True, slots=True)
class SSLResponse:
    accepted: bool


@dataclass(frozen=True, slots=True)
class AuthenticationOk:
    pass


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    pass


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    salt: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationUnsupported:
    """Kerberos, GSSAPI, SSPI...: methods we do not speak (the code says which)."""

    code: int

    @property
    def method(self) -> str:
        return {2: "Kerberos V5", 6: "SCM credentials", 7: "GSSAPI", 8: "GSSAPI",
                9: "SSPI"}.get(self.code, f"#{self.code}")


AuthenticationRequest = Union[AuthenticationOk, AuthenticationCleartextPassword,
                              AuthenticationMD5Password, AuthenticationSASL,
                              AuthenticationSASLContinue, AuthenticationSASLFinal,
                              AuthenticationUnsupported]


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    pid: int
    key: bytes


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    newest_minor: int
    unrecognized: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    status: str  # 'I' idle, 'T' in transaction, 'E' failed transaction


@dataclass(frozen=True, slots=True)
class _Notice:
    fields: dict[str, str] = field(hash=False)

    @property
    def severity(self) -> str:
        # 'V' is the untranslated severity (9.6+); 'S' may be localized.
        return self.fields.get("V") or self.fields.get("S") or "ERROR"

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")

    @property
    def detail(self) -> str | None:
        return self.fields.get("D")

    @property
    def hint(self) -> str | None:
        return self.fields.get("H")

    def text(self) -> str:
        """One line as libpq prints it: 'FATAL:  message' plus detail and hint."""
        out = f"{self.severity}:  {self.message}"
        if self.detail:
            out += f" DETAIL:  {self.detail}"
        if self.hint:
            out += f" HINT:  {self.hint}"
        return out


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Notice):
    @property
    def fatal(self) -> bool:
        return self.severity in ("FATAL", "PANIC")


@dataclass(frozen=True, slots=True)
class NoticeResponse(_Notice):
    pass


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    format: int


@dataclass(frozen=True, slots=True)
class RowDescription:
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class DataRow:
    values: tuple[bytes | None, ...]  # text format; history file contents are raw bytes


@dataclass(frozen=True, slots=True)
class CommandComplete:
    tag: str


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse:
    pass


@dataclass(frozen=True, slots=True)
class CopyBothResponse:
    format: int


@dataclass(frozen=True, slots=True)
class XLogData:
    """'w': WAL bytes `data` starting at `start`; `wal_end` is the server's end of WAL."""

    start: int
    wal_end: int
    send_time: int  # microseconds since 2000-01-01
    data: bytes  # a memoryview with Frontend(zero_copy=True)

    @property
    def end(self) -> int:
        return self.start + len(self.data)


@dataclass(frozen=True, slots=True)
class PrimaryKeepalive:
    """'k': the server's end of WAL; reply_requested asks for a status update at once."""

    wal_end: int
    send_time: int
    reply_requested: bool


@dataclass(frozen=True, slots=True)
class CopyData:
    """A CopyData that is not one of the replication messages we know (ignored)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CopyDone:
    """Both directions: the server's end of a timeline, or our end of streaming."""


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    pid: int
    channel: str
    payload: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection (EOF)."""


# ---------------------------------------------------------------------------------------------
# events from the client (encoded by Frontend.send)


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class StartupMessage:
    parameters: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """Cleartext or md5 password; repr never shows it."""

    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SASLInitialResponse:
    mechanism: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SASLResponse:
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Query:
    sql: str


@dataclass(frozen=True, slots=True)
class StandbyStatusUpdate:
    """'r': positions written, flushed (0 = not reported) and applied (0)."""

    write: int
    flush: int
    apply: int = 0
    send_time: int | None = None  # default: now
    reply_requested: bool = False


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


ServerEvent = Union[SSLResponse, AuthenticationRequest, ParameterStatus, BackendKeyData,
                    NegotiateProtocolVersion, ReadyForQuery, ErrorResponse, NoticeResponse,
                    RowDescription, DataRow, CommandComplete, EmptyQueryResponse,
                    CopyBothResponse, XLogData, PrimaryKeepalive, CopyData, CopyDone,
                    NotificationResponse, ConnectionClosed]
ClientEvent = Union[SSLRequest, StartupMessage, PasswordMessage, SASLInitialResponse,
                    SASLResponse, Query, StandbyStatusUpdate, CopyDone, Terminate]


def pg_now() -> int:
    """Now as PostgreSQL's TimestampTz: microseconds since 2000-01-01 UTC."""
    return time.time_ns() // 1000 - PG_EPOCH_OFFSET_US


def msg(t: bytes, body: bytes) -> bytes:
    return t + _I32.pack(len(body) + 4) + body


def _z(s: str) -> bytes:
    b = s.encode("utf-8")
    if b"\0" in b:
        raise LocalProtocolError("strings sent to the server cannot contain NUL bytes")
    return b + b"\0"


def encode(event: ClientEvent) -> bytes:
    """The wire form of a client event (no state checks; see Frontend.send)."""
    if isinstance(event, StandbyStatusUpdate):
        t = event.send_time if event.send_time is not None else pg_now()
        return STATUS_UPDATE_MSG.pack(b"d", STATUS_UPDATE_MSG.size - 1, b"r", event.write,
                                      event.flush, event.apply, t, event.reply_requested)
    if isinstance(event, CopyDone):
        return b"c\0\0\0\4"
    if isinstance(event, Query):
        return msg(b"Q", _z(event.sql))
    if isinstance(event, PasswordMessage):
        return msg(b"p", event.password + b"\0")
    if isinstance(event, SASLInitialResponse):
        return msg(b"p", _z(event.mechanism) + _I32.pack(len(event.data)) + event.data)
    if isinstance(event, SASLResponse):
        return msg(b"p", event.data)
    if isinstance(event, StartupMessage):
        body = _I32.pack(PROTOCOL_VERSION) + b"".join(
            _z(k) + _z(v) for k, v in event.parameters) + b"\0"
        return _I32.pack(len(body) + 4) + body
    if isinstance(event, SSLRequest):
        return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)
    if isinstance(event, Terminate):
        return b"X\0\0\0\4"
    raise LocalProtocolError(f"not a client event: {event!r}")
