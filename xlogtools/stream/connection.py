"""The one asyncio I/O layer of the streaming engine: sockets, TLS, timeouts.

It moves bytes between a socket and a `protocol.Frontend` and waits; every decision about
what the bytes mean is made in protocol.py (the state machine) and auth.py. Connecting
follows libpq (fe-connect.c): hosts in order, sslmode negotiation (SSLRequest, then TLS on
the same socket), authentication, parameter status until ReadyForQuery.
"""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any, Callable

from .auth import AuthError, Authenticator, check_require_auth, method_name
from .conninfo import ConnParams, Host
from .connerrors import ConnectError, ConnectionLost, ServerError
from .messages import (NEED_DATA, AuthenticationCleartextPassword, AuthenticationMD5Password,
                       AuthenticationOk, AuthenticationSASL, AuthenticationSASLContinue,
                       AuthenticationSASLFinal, AuthenticationUnsupported, BackendKeyData,
                       ClientEvent, CommandComplete, ConnectionClosed, CopyBothResponse, CopyDone,
                       DataRow, ErrorResponse, NegotiateProtocolVersion, NoticeResponse,
                       ParameterStatus, PrimaryKeepalive, ProtocolError, Query, ReadyForQuery,
                       RowDescription, SSLRequest, SSLResponse, Sentinel, ServerEvent,
                       StartupMessage, Terminate, XLogData)
from .protocol import Frontend, QueryResult, State
from .tls import is_ip_address, make_ssl_context

_READ_PAUSE = 64 << 20  # stop reading the socket when this much is buffered but unparsed


def parse_server_version(text: str) -> int:
    """PQserverVersion(): '16.2 (Debian 16.2-1)' -> 160002, '9.6.3' -> 90603."""
    nums = []
    for part in text.split()[0].split("."):
        digits = "".join(c for c in part if c.isdigit()) if part else ""
        if not digits:
            break
        nums.append(int(digits))
        if not part.isdigit():
            break
    if not nums:
        return 0
    if nums[0] >= 10:
        return nums[0] * 10000 + (nums[1] if len(nums) > 1 else 0)
    return nums[0] * 10000 + (nums[1] if len(nums) > 1 else 0) * 100 + \
        (nums[2] if len(nums) > 2 else 0)


class _Wire(asyncio.BufferedProtocol):
    """Lets the transport read straight into the Frontend's buffer (no copy) and wakes
    whoever waits for data."""

    def __init__(self, frontend: Frontend) -> None:
        self.fe = frontend
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.closed = False
        self.paused = False
        self.detached = False  # reading handed to the caller (Connection.detach_reading)
        self.on_data: Callable[[], None] | None = None  # called instead of waking, see below

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.fe.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.fe.buffer_updated(nbytes)
        if self.fe.buffered > _READ_PAUSE and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        if self.on_data is not None:
            self.on_data()  # must not raise; it wakes the waiter itself when needed
        else:
            self.wake()

    def eof_received(self) -> bool:
        self.closed = True
        self.fe.receive_data(b"")
        self.wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self.fe.receive_data(b"")
        self.wake()

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)



class Connection:
    """One open connection: simple queries and the CopyBoth replication stream."""

    def __init__(self, params: ConnParams, host: Host, wire: _Wire, tls: bool) -> None:
        self.params = params
        self.host = host
        self._wire = wire
        self.fe = wire.fe
        self.tls = tls
        self.server_version = parse_server_version(self.fe.parameters.get("server_version", ""))
        self.notices: list[NoticeResponse] = []

    # -- opening --------------------------------------------------------------------------
    @classmethod
    async def connect(cls, params: ConnParams, *, replication: str | None = "true"
                      ) -> "Connection":
        """Try each host in turn, as libpq does; ConnectError names why each failed."""
        errors: list[str] = []
        last: ConnectError | None = None
        for host in params.hosts:
            attempts = {"disable": [False], "allow": [False, True], "prefer": [True, False],
                        "require": [True], "verify-ca": [True], "verify-full": [True]
                        }[params.sslmode]
            if host.is_unix:
                attempts = [False]  # sslmode does not apply to Unix sockets
            for i, use_ssl in enumerate(attempts):
                try:
                    coro = cls._connect_one(params, host, use_ssl, replication)
                    if params.connect_timeout:
                        return await asyncio.wait_for(coro, params.connect_timeout)
                    return await coro
                except asyncio.TimeoutError:
                    last = ConnectError(f"connection to {host} failed: timeout expired")
                except ConnectError as exc:
                    last = exc
                    # retry the other way only when the server refused this one at startup
                    if exc.server_error is not None and not exc.auth_failed \
                            and i + 1 < len(attempts):
                        continue
                break
            assert last is not None
            errors.append(str(last))
            if last.auth_failed and len(params.hosts) == 1:
                raise last
        if len(errors) == 1 and last is not None:
            raise last
        raise ConnectError("; ".join(errors), auth_failed=bool(last and last.auth_failed))

    @classmethod
    async def _connect_one(cls, params: ConnParams, host: Host, use_ssl: bool,
                           replication: str | None) -> "Connection":
        loop = asyncio.get_running_loop()
        fe = Frontend(zero_copy=True)  # each XLogData is written out before the next read
        wire = _Wire(fe)
        where = f"connection to {host} failed"
        try:
            if host.is_unix:
                await loop.create_unix_connection(lambda: wire, host.socket_path)
            else:
                await loop.create_connection(lambda: wire, host.hostaddr or host.host, host.port)
        except OSError as exc:
            hint = ""
            if isinstance(exc, ConnectionRefusedError):
                hint = (" (is the server running on that host and accepting TCP/IP "
                        "connections?)" if not host.is_unix else
                        " (is the server running locally and accepting connections on that "
                        "socket?)")
            msg = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
            if isinstance(exc, socket.gaierror):
                msg = f"could not translate host name \"{host.host}\" to address: {exc.strerror}"
            raise ConnectError(f"{where}: {msg}{hint}") from None
        try:
            tr = wire.transport
            assert tr is not None
            sock = tr.get_extra_info("socket")
            if sock is not None and not host.is_unix:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if params.keepalives:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            tls = False
            if use_ssl:
                tls = await cls._negotiate_ssl(params, host, wire, where)
            await cls._startup(params, host, wire, tls, replication, where)
            conn = cls(params, host, wire, tls)
            cls._check_session_attrs(params, conn, where)
            return conn
        except BaseException:
            if wire.transport is not None:
                wire.transport.abort()
            raise

    @staticmethod
    async def _negotiate_ssl(params: ConnParams, host: Host, wire: _Wire, where: str) -> bool:
        ctx = make_ssl_context(params)
        wire.transport.write(wire.fe.send(SSLRequest()))  # type: ignore[union-attr]
        ev = await _next(wire, where)
        if isinstance(ev, ErrorResponse):
            raise ConnectError(f"{where}: {ev.text()}", server_error=ev)
        assert isinstance(ev, SSLResponse)
        if not ev.accepted:
            if params.sslmode in ("require", "verify-ca", "verify-full"):
                raise ConnectError(f"{where}: server does not support SSL, but SSL was required")
            return False
        loop = asyncio.get_running_loop()
        name = host.host if not host.is_unix else None
        sni = name if name and (params.sslmode == "verify-full"
                                or (params.sslsni and not is_ip_address(name))) else None
        try:
            new = await loop.start_tls(wire.transport, wire, ctx,  # type: ignore[arg-type]
                                       server_hostname=sni)
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
            raise ConnectError(f"{where}: SSL error: {reason}") from None
        if new is None:
            raise ConnectError(f"{where}: SSL connection closed during the handshake")
        wire.transport = new
        return True

    @staticmethod
    async def _startup(params: ConnParams, host: Host, wire: _Wire, tls: bool,
                       replication: str | None, where: str) -> None:
        fe = wire.fe
        tr = wire.transport
        assert tr is not None
        ssl_obj = tr.get_extra_info("ssl_object") if tls else None
        auth = Authenticator(params.user, lambda: params.password_for(host), tls=ssl_obj,
                             channel_binding=params.channel_binding)
        tr.write(fe.send(StartupMessage(params.startup_parameters(replication))))
        methods: list[str] = []
        while True:
            ev = await _next(wire, where)
            if isinstance(ev, ErrorResponse):
                # 28P01 wrong password, 28000 no pg_hba entry / no replication privilege...
                failed = ev.sqlstate in ("28P01", "28000") and auth.password_was_used
                raise ConnectError(f"{where}: {ev.text()}", server_error=ev,
                                   auth_failed=ev.sqlstate == "28P01" or failed)
            if isinstance(ev, (AuthenticationCleartextPassword, AuthenticationMD5Password,
                               AuthenticationSASL, AuthenticationSASLContinue,
                               AuthenticationSASLFinal, AuthenticationUnsupported,
                               AuthenticationOk)):
                if not isinstance(ev, (AuthenticationSASLContinue, AuthenticationSASLFinal)):
                    methods.append(method_name(ev))
                check_require_auth(params.require_auth, methods, where)
                try:
                    reply = auth.respond(ev)
                except AuthError as exc:
                    raise ConnectError(f"{where}: {exc}", auth_failed=True) from None
                if reply is not None:
                    tr.write(fe.send(reply))
                continue
            if isinstance(ev, (ParameterStatus, BackendKeyData, NoticeResponse,
                               NegotiateProtocolVersion)):
                continue
            if isinstance(ev, ReadyForQuery):
                return
            raise ConnectError(f"{where}: unexpected {type(ev).__name__} during startup")

    @staticmethod
    def _check_session_attrs(params: ConnParams, conn: "Connection", where: str) -> None:
        tsa = params.target_session_attrs
        if tsa == "any":
            return
        hot = conn.fe.parameters.get("in_hot_standby")
        if hot is None:
            raise ConnectError(f"{where}: target_session_attrs={tsa} needs a server that reports "
                               "in_hot_standby (14+)")
        standby = hot == "on"
        if (tsa in ("read-write", "primary") and standby) or \
                (tsa in ("read-only", "standby") and not standby):
            conn.close()
            raise ConnectError(f"{where}: server is {'in hot standby mode' if standby else 'not in hot standby mode'}")

    # -- talking --------------------------------------------------------------------------
    def send(self, event: ClientEvent) -> None:
        tr = self._wire.transport
        if tr is None or self._wire.closed:
            raise ConnectionLost("server closed the connection unexpectedly")
        tr.write(self.fe.send(event))

    def send_status(self, write: int, flush: int, apply: int = 0) -> None:
        """A standby status update (the per-commit path of a synchronous receiver)."""
        tr = self._wire.transport
        if tr is None or self._wire.closed:
            raise ConnectionLost("server closed the connection unexpectedly")
        tr.write(self.fe.standby_status(write, flush, apply))

    def detach_reading(self) -> int | None:
        """Stop the event loop's transport from reading and hand the caller a duplicate of the
        socket to read (and send status updates on) itself, e.g. with loop.add_reader.  Only
        when nothing is pending: no TLS, no unparsed bytes, nothing queued for sending.
        Returns the new descriptor, or None when that is not possible now.  The caller must
        call attach_reading() with the bytes it read but did not handle."""
        wire = self._wire
        tr = wire.transport
        if (self.tls or wire.paused or wire.closed or wire.detached or tr is None
                or self.fe.buffered or tr.get_write_buffer_size()):
            return None
        sock = tr.get_extra_info("socket")
        if sock is None:
            return None
        fd = os.dup(sock.fileno())
        tr.pause_reading()
        wire.detached = True
        return fd

    def attach_reading(self, fd: int, unhandled: bytes) -> None:
        """Undo detach_reading(): `unhandled` (bytes read from the socket and not handled)
        go first into the protocol's buffer, then the transport reads again."""
        wire = self._wire
        os.close(fd)
        wire.detached = False
        if unhandled:
            self.fe.receive_data(unhandled)
        if wire.transport is not None and not wire.closed:
            wire.transport.resume_reading()

    def send_raw(self, data: bytes) -> None:
        """Bytes already encoded (the rest of a status update the socket did not take)."""
        tr = self._wire.transport
        if tr is None or self._wire.closed:
            raise ConnectionLost("server closed the connection unexpectedly")
        tr.write(data)

    def poll(self) -> ServerEvent | Sentinel:
        """The next event already received, or NEED_DATA (never waits)."""
        ev = self.fe.next_event()
        if ev is NEED_DATA and self._wire.paused and self._wire.transport is not None:
            self._wire.paused = False
            self._wire.transport.resume_reading()
        return ev

    async def wait(self, timeout: float | None) -> None:
        """Wait until data arrives, the connection closes, `wake()` is called or timeout."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._wire.waiter = fut
        handle = loop.call_later(timeout, _settle, fut) if timeout is not None else None
        try:
            await fut
        finally:
            self._wire.waiter = None
            if handle is not None:
                handle.cancel()

    def wake(self) -> None:
        self._wire.wake()

    def set_data_handler(self, fn: Callable[[], None] | None) -> None:
        """While streaming, let `fn` consume events right when data arrives (from the event
        loop's read callback, without a task switch per message); it must not raise and must
        call wake() when the coroutine waiting in wait() has to act. None: back to waking."""
        self._wire.on_data = fn

    async def next_event(self, timeout: float | None = None) -> ServerEvent:
        """Wait for the next event (ConnectionLost on EOF, TimeoutError on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        while True:
            ev = self.poll()
            if ev is not NEED_DATA:
                if isinstance(ev, ConnectionClosed):
                    raise ConnectionLost(self._lost_message())
                if isinstance(ev, NoticeResponse):
                    self.notices.append(ev)
                    continue
                return ev
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise asyncio.TimeoutError()
            await self.wait(left)

    def _lost_message(self) -> str:
        exc = self._wire.lost
        detail = f": {exc}" if exc else ""
        return f"server closed the connection unexpectedly{detail}"

    async def query(self, sql: str, timeout: float | None = 60.0) -> QueryResult:
        """Run one simple-query command; its last result set (ServerError on an error)."""
        self.send(Query(sql))
        ev = await self.next_event(timeout)
        return await self._results_from(ev, sql.split()[0], timeout)

    async def start_copy(self, sql: str, timeout: float | None = 60.0) -> QueryResult | None:
        """Send START_REPLICATION: None once CopyBoth began, or the result set the server
        sends instead when there is nothing to stream (a timeline that ended before)."""
        self.send(Query(sql))
        while True:
            ev = await self.next_event(timeout)
            if isinstance(ev, CopyBothResponse):
                return None
            if isinstance(ev, (RowDescription, DataRow, CommandComplete)):
                # the same events _results would take: put the logic in one place
                return await self._results_from(ev, "START_REPLICATION", timeout)
            if isinstance(ev, ErrorResponse):
                if not ev.fatal:
                    await self._drain_until_ready(timeout)
                raise ServerError("could not send replication command \"START_REPLICATION\"", ev)
            if isinstance(ev, ParameterStatus):
                continue
            raise ProtocolError(f"unexpected {type(ev).__name__} after START_REPLICATION")

    async def _results_from(self, first: ServerEvent, what: str, timeout: float | None
                            ) -> QueryResult:
        cols: tuple[Any, ...] = ()
        rows: list[tuple[bytes | None, ...]] = []
        tag = ""
        ev: ServerEvent = first
        while True:
            if isinstance(ev, RowDescription):
                cols, rows = ev.columns, []
            elif isinstance(ev, DataRow):
                rows.append(ev.values)
            elif isinstance(ev, CommandComplete):
                tag = ev.tag
            elif isinstance(ev, ReadyForQuery):
                return QueryResult(cols, tuple(rows), tag)
            elif isinstance(ev, ErrorResponse):
                if not ev.fatal:
                    await self._drain_until_ready(timeout)
                raise ServerError(f"could not send replication command \"{what}\"", ev)
            ev = await self.next_event(timeout)

    async def _drain_until_ready(self, timeout: float | None) -> None:
        while not isinstance(await self.next_event(timeout), ReadyForQuery):
            pass

    async def end_copy(self, timeout: float | None = 30.0) -> QueryResult | None:
        """Finish a CopyBoth that is still open on our side: after the server's CopyDone
        (end of timeline) send ours and return the result set that follows (next timeline);
        or, when we stop first, send CopyDone and skip what the server still sends until its
        CopyDone. None when the server closes the connection instead."""
        if self.fe.state is State.COPY_SERVER_DONE:
            self.send(CopyDone())
            try:
                ev = await self.next_event(timeout)
                return await self._results_from(ev, "START_REPLICATION", timeout)
            except ConnectionLost:
                return None
        if self.fe.state is State.COPY_BOTH:
            self.send(CopyDone())
        while self.fe.state is State.COPY_CLIENT_DONE:
            try:
                ev = await self.next_event(timeout)
            except ConnectionLost:
                return None
            if isinstance(ev, (XLogData, PrimaryKeepalive)):
                continue
            if isinstance(ev, ErrorResponse):
                if ev.fatal:
                    return None
                raise ServerError("error at the end of streaming", ev)
        if self.fe.state is State.QUERY:
            try:
                ev = await self.next_event(timeout)
                return await self._results_from(ev, "START_REPLICATION", timeout)
            except ConnectionLost:
                return None
        return None

    def close(self) -> None:
        tr = self._wire.transport
        if tr is None or self._wire.closed:
            return
        try:
            if self.fe.state is not State.CLOSED:
                tr.write(self.fe.send(Terminate()))
        except ProtocolError:
            pass
        tr.close()

    def abort(self) -> None:
        if self._wire.transport is not None:
            self._wire.transport.abort()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _next(wire: _Wire, where: str) -> ServerEvent:
    loop = asyncio.get_running_loop()
    while True:
        try:
            ev = wire.fe.next_event()
        except ProtocolError as exc:
            raise ConnectError(f"{where}: {exc}") from None
        if ev is NEED_DATA:
            fut: asyncio.Future[None] = loop.create_future()
            wire.waiter = fut
            try:
                await fut
            finally:
                wire.waiter = None
            continue
        if isinstance(ev, ConnectionClosed):
            detail = f": {wire.lost}" if wire.lost else ""
            raise ConnectError(f"{where}: server closed the connection unexpectedly{detail}")
        return ev
