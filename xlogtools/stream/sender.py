"""walsender on asyncio: serve the WAL of an archive directory to physical standbys.

The protocol is `backend.Backend` (sans-I/O); this module does the waiting: one task per
client, one task that polls DIR for new files. What it sends mirrors walsender.c:
XLogData of at most 128 kB from the requested LSN, keepalives (with a reply request when the
client has been silent for half the timeout), CopyDone at the end of a historic timeline and
the (next_tli, next_tli_startpos) result set, "requested WAL segment %s has already been
removed" for what the archive lacks, and a wal_sender_timeout-like drop of silent clients.

How far a segment may be sent is `sendable.valid_length`: only what is certainly WAL, so
nothing sent has to be taken back.

Relay mode (`relay.py`): a receiver in the same event loop writes DIR and calls
`WalSender.wal_flushed(timeline, lsn)` after each batch it made durable; that wakes the
streaming sessions, which send up to that position, from the `.partial` being written too:
there the flushed position, not `valid_length`, says how much is WAL.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import XlogError
from ..lsn import Lsn
from ..parse.source import SegmentFile
from .backend import (ADMIN_SHUTDOWN, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR,
                      INVALID_AUTHORIZATION, INVALID_PASSWORD, INT8OID, MAX_SEND_SIZE,
                      OBJECT_NOT_IN_STATE, TEXTOID, BYTEAOID,
                      UNDEFINED_FILE, Backend, BState, CancelRequest, ClientProtocolError,
                      CommandError, EmptyCommand, GSSENCRequest, HotStandbyFeedback,
                      IdentifySystem, ReadReplicationSlot, ScramError, ScramExchange,
                      ScramVerifier, Show, StartReplication, TimelineHistory, encode_xlogdata,
                      error_response, notice_response, parse_command, result_set,
                      server_parameters)
from .protocol import (NEED_DATA, AuthenticationOk, AuthenticationSASL,
                       AuthenticationSASLContinue, AuthenticationSASLFinal, BackendKeyData,
                       CommandComplete, ConnectionClosed, CopyBothResponse, CopyDone,
                       EmptyQueryResponse, NegotiateProtocolVersion, PrimaryKeepalive, Query,
                       ReadyForQuery, SASLInitialResponse, SASLResponse, SSLRequest,
                       SSLResponse, StandbyStatusUpdate, StartupMessage, Terminate, pg_now)
from .sendable import Archive, TimelinePlan, valid_length

if TYPE_CHECKING:
    from .receiver import ReceiveOptions
    from .relay import UpstreamStatus

log = logging.getLogger("xlogtools.serve")

_SEND_BURST = 32 * MAX_SEND_SIZE  # bytes sent before looking at the client's messages again
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


class ServeError(XlogError):
    pass


@dataclass
class ServeOptions:
    directory: str | os.PathLike[str]
    host: str = "127.0.0.1"
    port: int = 5432
    users: dict[str, ScramVerifier] | None = None  # None with trust=True
    trust: bool = False
    timeout: float = 60.0  # wal_sender_timeout; 0 disables
    poll_interval: float = 0.5
    keepalive_interval: float = 10.0
    status_file: str | os.PathLike[str] | None = None
    status_interval: float = 10.0
    max_clients: int = 64
    pg_major: int | None = None  # default: from the archive's page magic
    ssl_cert: str | os.PathLike[str] | None = None  # PEM certificate (chain): TLS offered
    ssl_key: str | os.PathLike[str] | None = None  # its private key (default: in ssl_cert)

    def validate(self) -> None:
        if self.ssl_key and not self.ssl_cert:
            raise ServeError("--ssl-key needs --ssl-cert")
        if self.trust and not is_loopback(self.host):
            raise ServeError(f"--trust is accepted only with a loopback --host, not "
                             f"\"{self.host}\"")
        if not self.trust and self.users is None:
            raise ServeError("name a users file with --auth FILE (or --trust on loopback)")


def _server_ssl_context(options: ServeOptions) -> ssl.SSLContext | None:
    """The TLS context of --ssl-cert/--ssl-key (TLS 1.2 or later, as PostgreSQL's default
    ssl_min_protocol_version), or None."""
    if not options.ssl_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(options.ssl_cert, options.ssl_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"could not load server certificate \"{options.ssl_cert}\""
                         + (f" or key \"{options.ssl_key}\"" if options.ssl_key else "")
                         + f": {getattr(exc, 'strerror', None) or exc}") from None
    return ctx


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# per-client state, shown by the status view


@dataclass
class ClientStatus:
    id: int
    peer: str
    user: str = ""
    application_name: str = ""
    state: str = "startup"
    timeline: int = 0
    start: int = 0
    sent: int = 0
    write: int = 0
    flush: int = 0
    apply: int = 0
    connected_at: float = field(default_factory=time.time)
    last_reply: float | None = None
    hot_standby_xmin: int = 0
    note: str = ""
    ssl: bool = False

    def as_json(self, archive_end: int, upstream_end: int | None = None) -> dict[str, Any]:
        out = {"id": self.id, "peer": self.peer, "user": self.user,
               "application_name": self.application_name, "state": self.state,
               "timeline": self.timeline, "sent_lsn": str(Lsn(self.sent)),
               "write_lsn": str(Lsn(self.write)), "flush_lsn": str(Lsn(self.flush)),
               "replay_lsn": str(Lsn(self.apply)),
               "sent_lag_bytes": max(0, archive_end - self.sent) if archive_end else None,
               "flush_lag_bytes": max(0, self.sent - self.flush) if self.flush else None,
               "replay_lag_bytes": max(0, self.sent - self.apply) if self.apply else None,
               "connected_at": _iso(self.connected_at),
               "last_reply": _iso(self.last_reply) if self.last_reply else None,
               "ssl": self.ssl, "note": self.note}
        if upstream_end is not None:
            # relay mode: how far the client is behind the upstream server (what it holds for
            # sure: its flush position, else its write position, else what we sent)
            held = self.flush or self.write or self.sent
            out["upstream_lag_bytes"] = max(0, upstream_end - held) if held else None
        return out


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class _Drop(Exception):
    """End this client's connection (the reason was logged / sent)."""


# ---------------------------------------------------------------------------------------------
# the server


class WalSender:
    """`await start()`, then `await serve_forever()`; `wake()` after new WAL lands in DIR."""

    def __init__(self, options: ServeOptions) -> None:
        options.validate()
        self.options = options
        self.archive = Archive(options.directory)
        self.clients: dict[int, ClientStatus] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._mock_secret = secrets.token_bytes(16)
        self.port = options.port
        # Relay mode: (timeline, flushed LSN) of the receiver writing DIR while it streams;
        # None when nothing writes DIR (archive mode, or the upstream is away).
        self.live: tuple[int, int] | None = None
        self.upstream: UpstreamStatus | None = None  # shown by the status view
        self.ssl_context = _server_ssl_context(options)

    async def start(self) -> None:
        self.archive.refresh()
        if not self.archive.ready:
            log.warning("no WAL in %s yet: clients will be refused until some arrives",
                        self.options.directory)
        try:
            self._server = await asyncio.start_server(self._client, self.options.host,
                                                      self.options.port, limit=1 << 20)
        except OSError as exc:
            raise ServeError(f"could not listen on {self.options.host}:{self.options.port}: "
                             f"{exc.strerror or exc}") from None
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("serving %s on %s:%d", self.options.directory, self.options.host, self.port)
        self._spawn(self._poll())
        if self.options.status_file or self.options.status_interval:
            self._spawn(self._status_loop())

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        """New WAL may be in DIR: rescan and let waiting clients send it."""
        self._check_archive()

    def _check_archive(self) -> None:
        try:
            changed = self.archive.refresh()
        except XlogError as exc:
            log.warning("archive scan failed: %s", exc)
            return
        if changed:
            self._wake_sessions()

    def _wake_sessions(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    # -- the relay hook -----------------------------------------------------------------------
    def wal_flushed(self, timeline: int, flushed: Lsn) -> None:
        """A writer of DIR (the relay's receiver) made the WAL of `timeline` durable up to
        `flushed`: streaming sessions may send up to there (from the segment still being
        written too) and are woken now. DIR is rescanned only when this names a file or a
        timeline the last scan did not see (a new segment, a rename, a history file)."""
        prev = self.live
        self.live = (timeline, int(flushed))
        src = self.archive.source
        if prev is None or prev[0] != timeline or src is None or src.cluster is None:
            self.archive.forget_cached()
            self._check_archive()
        elif int(flushed) > 0:
            seg_size = src.seg_size
            last = (int(flushed) - 1) // seg_size  # the segment holding the last byte
            f = src.segment(timeline, last)
            if f is None or (f.partial and int(flushed) % seg_size == 0) or \
                    prev[1] // seg_size != int(flushed) // seg_size:
                self.archive.forget_cached()
                self._check_archive()
        self._wake_sessions()

    def wal_writer_gone(self) -> None:
        """Nothing writes DIR any more (the upstream is away): serve what DIR holds, as in
        archive mode (the receiver flushed everything it wrote before saying so)."""
        if self.live is not None:
            self.live = None
            self.archive.forget_cached()
            self._check_archive()
            self._wake_sessions()

    def live_limit(self, f: SegmentFile, segno: int) -> int | None:
        """In relay mode, the end (LSN) of what may be sent from segment file `f` when the
        receiver's flushed position decides it; None when valid_length does."""
        live = self.live
        if live is None or f.tli != live[0] or f.compression is not None:
            return None
        src = self.archive.source
        assert src is not None
        seg_start = segno * src.seg_size
        seg_end = seg_start + src.seg_size
        flushed = live[1]
        if flushed >= seg_end:
            # finished by the receiver: its complete file is whole; an older .partial of the
            # same timeline (not written by this receiver) is judged by its pages
            return None if f.partial else seg_end
        return max(seg_start, flushed)

    def end_lsn(self, tli: int) -> Lsn:
        """The xlogpos of IDENTIFY_SYSTEM: the relay's flushed position while its receiver
        streams that timeline, else the end of the WAL in DIR."""
        live = self.live
        if live is not None and live[0] == tli:
            return Lsn(live[1])
        return self.archive.end_of_wal(tli)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            self._check_archive()

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        end = 0
        if self.archive.ready:
            with contextlib.suppress(Exception):
                end = int(self.end_lsn(self.archive.current_timeline()))
        up = self.upstream
        upstream_end = up.end if up is not None else None
        out = {"time": _iso(time.time()), "directory": str(self.options.directory),
               "timeline": self.archive.current_timeline() if self.archive.ready else None,
               "archive_end_lsn": str(Lsn(end))}
        if up is not None:
            out["upstream"] = up.as_json()
        out["clients"] = [c.as_json(end, upstream_end) for c in self.clients.values()]
        return out

    def status_text(self) -> str:
        st = self.status()
        lines = [f"archive end {st['archive_end_lsn']} (timeline {st['timeline']}), "
                 f"{len(st['clients'])} client(s)"]
        if self.upstream is not None:
            lines.append("  " + self.upstream.text())
        for c in st["clients"]:
            up = f", {c['upstream_lag_bytes']} B behind upstream" \
                if c.get("upstream_lag_bytes") is not None else ""
            lines.append(f"  #{c['id']} {c['application_name'] or '-'} {c['peer']} {c['state']} "
                         f"tli {c['timeline']} sent {c['sent_lsn']} write {c['write_lsn']} "
                         f"flush {c['flush_lsn']} replay {c['replay_lsn']} "
                         f"lag {c['sent_lag_bytes']} B{up}"
                         + (f" ({c['note']})" if c['note'] else ""))
        return "\n".join(lines)

    def write_status_file(self) -> None:
        path = self.options.status_file
        if not path:
            return
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1) + "\n")
        os.replace(tmp, p)

    async def _status_loop(self) -> None:
        interval = self.options.status_interval or 10.0
        file_every = min(interval, 1.0)
        last_text = time.monotonic()
        while True:
            await asyncio.sleep(file_every)
            with contextlib.suppress(Exception):
                self.write_status_file()
            if self.options.status_interval and time.monotonic() - last_text >= interval \
                    and (self.clients or self.upstream is not None):
                last_text = time.monotonic()
                log.info("%s", self.status_text())

    # -- one client ---------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        cid = next(self._ids)
        st = ClientStatus(cid, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.clients[cid] = st
        session = _Session(self, reader, writer, st)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # close() ends the sessions too
        try:
            await session.run()
        except _Drop:
            pass
        except ClientProtocolError as exc:
            log.info("client #%d: %s", cid, exc)
            session.try_send(error_response(exc.sqlstate, str(exc), severity="FATAL"))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            log.info("client #%d: connection lost", cid)
        except asyncio.CancelledError:
            # the server shuts down; the task ends normally (asyncio's stream callback would
            # log a cancelled client task as an unhandled exception)
            session.try_send(error_response(ADMIN_SHUTDOWN, "terminating connection due to "
                                            "administrator command", severity="FATAL"))
        except Exception as exc:  # a bug of ours must not take the server down
            log.exception("client #%d: internal error", cid)
            session.try_send(error_response(INTERNAL_ERROR, f"internal error: {exc}",
                                            severity="FATAL"))
        finally:
            if task is not None:
                self._tasks.discard(task)
            self.clients.pop(cid, None)
            with contextlib.suppress(Exception):
                writer.close()
            log.info("client #%d (%s) disconnected", cid, st.application_name or st.peer)


class _Session:
    def __init__(self, server: WalSender, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, st: ClientStatus) -> None:
        self.server = server
        self.opts = server.options
        self.archive = server.archive
        self.reader = reader
        self.writer = writer
        self.st = st
        self.be = Backend()
        self.last_recv = time.monotonic()
        self.got_message = asyncio.Event()

    # -- I/O helpers --------------------------------------------------------------------------
    def send(self, *events: object) -> None:
        self.writer.write(b"".join(self.be.send(e) for e in events))

    def try_send(self, ev: object) -> None:
        with contextlib.suppress(Exception):
            self.send(ev)

    async def drain(self) -> None:
        t = self.opts.timeout or None
        try:
            await asyncio.wait_for(self.writer.drain(), t)
        except asyncio.TimeoutError:
            self._timed_out()

    def _timed_out(self) -> None:
        log.warning("client #%d (%s): terminating walsender process due to replication "
                    "timeout", self.st.id, self.st.application_name or self.st.peer)
        self.writer.transport.abort()
        raise _Drop()

    async def next_event(self, timeout: float | None) -> Any:
        while True:
            ev = self.be.next_event()
            if ev is not NEED_DATA:
                self.last_recv = time.monotonic()
                return ev
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            self.be.receive_data(data)

    # -- phases -------------------------------------------------------------------------------
    async def run(self) -> None:
        await asyncio.wait_for(self.startup(), 60.0)
        self.st.state = "idle"
        await self.command_loop()

    async def startup(self) -> None:
        while True:
            ev = await self.next_event(None)
            if isinstance(ev, SSLRequest) and self.server.ssl_context is not None \
                    and not self.st.ssl:
                # Stop reading before answering: the client's ClientHello follows the 'S' at
                # once and must reach the TLS layer, not the plain stream's buffer.
                self.writer.transport.pause_reading()
                self.send(SSLResponse(True))  # 'S', then the TLS handshake on this socket
                await self.drain()
                try:
                    await asyncio.wait_for(self.writer.start_tls(self.server.ssl_context),
                                           max(self.opts.timeout, 10.0) or None)
                except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
                    log.info("client #%d: TLS handshake failed: %s", self.st.id, exc)
                    raise _Drop() from None
                self.st.ssl = True
                continue
            if isinstance(ev, (SSLRequest, GSSENCRequest)):
                self.send(SSLResponse(False))  # 'N': no TLS (no --ssl-cert), no GSSAPI
                await self.drain()
                continue
            if isinstance(ev, CancelRequest):
                raise _Drop()  # walsenders have nothing to cancel
            if isinstance(ev, ConnectionClosed):
                raise _Drop()
            break
        assert isinstance(ev, StartupMessage)
        params = dict(ev.parameters)
        unknown = [k for k in params if k.startswith("_pq_.")]
        if getattr(self.be, "protocol_minor", 0) > 0 or unknown:
            self.send(NegotiateProtocolVersion(0, tuple(unknown)))
        user = params.get("user", "")
        self.st.user = user
        self.st.application_name = params.get("application_name", "")
        if not user:
            self.fatal(INVALID_AUTHORIZATION, "no PostgreSQL user name specified in startup "
                       "packet")
        repl = params.get("replication", "").lower()
        if repl == "database":
            self.fatal(FEATURE_NOT_SUPPORTED, "xlogtools serve does not support logical "
                       "replication (replication=database)")
        if repl not in _TRUE:
            self.fatal(INVALID_AUTHORIZATION,
                       f"xlogtools serve accepts only physical replication connections: user "
                       f"\"{user}\", database \"{params.get('database', user)}\" asked for a "
                       f"normal session", hint="Connect with replication=true (as a standby's "
                       "primary_conninfo or pg_receivewal do).")
        if not self.archive.ready:
            self.fatal("57P03", "the database system is starting up",
                       detail=f"No WAL in {self.opts.directory} yet.")
        await self.authenticate(user)
        major = self.opts.pg_major or self.archive.source.cluster.pg_major  # type: ignore[union-attr]
        self.send(AuthenticationOk(), *server_parameters(major, user, self.st.application_name),
                  BackendKeyData(os.getpid() & 0x7FFFFFFF, secrets.token_bytes(4)),
                  ReadyForQuery("I"))
        await self.drain()
        log.info("client #%d: %s connected as \"%s\" (%s)", self.st.id, self.st.peer, user,
                 self.st.application_name or "-")

    def fatal(self, sqlstate: str, message: str, *, detail: str | None = None,
              hint: str | None = None) -> None:
        log.info("client #%d refused: %s", self.st.id, message)
        self.try_send(error_response(sqlstate, message, severity="FATAL", detail=detail,
                                     hint=hint))
        raise _Drop()

    async def authenticate(self, user: str) -> None:
        if self.opts.trust:
            peer = self.writer.get_extra_info("peername")
            if not peer or not _peer_is_loopback(peer[0]):
                self.fatal(INVALID_AUTHORIZATION, f"no trust for host \"{peer and peer[0]}\"")
            return
        users = self.opts.users or {}
        verifier = users.get(user)
        exchange = ScramExchange(user, verifier or ScramVerifier.mock(user,
                                                                     self.server._mock_secret),
                                 known=verifier is not None)
        self.send(AuthenticationSASL((ScramExchange.MECHANISM,)))
        await self.drain()
        try:
            ev = await self.next_event(None)
            if not isinstance(ev, SASLInitialResponse):
                raise _Drop()
            self.send(AuthenticationSASLContinue(exchange.first(ev.mechanism, ev.data)))
            await self.drain()
            ev = await self.next_event(None)
            if not isinstance(ev, SASLResponse):
                raise _Drop()
            self.send(AuthenticationSASLFinal(exchange.final(ev.data)))
        except ScramError as exc:
            if exc.sqlstate == INVALID_PASSWORD:
                log.warning("client #%d: password authentication failed for user \"%s\"%s",
                            self.st.id, user, "" if verifier else " (no such user)")
            self.fatal(exc.sqlstate, str(exc), detail=exc.detail)

    async def command_loop(self) -> None:
        while True:
            ev = await self.next_event(None)
            if isinstance(ev, (Terminate, ConnectionClosed)):
                raise _Drop()
            if not isinstance(ev, Query):
                continue  # stray copy messages after an error (ignored, as postgres.c does)
            try:
                cmd = parse_command(ev.sql)
                await self.execute(cmd)
            except CommandError as exc:
                log.info("client #%d: %s: %s", self.st.id, ev.sql[:80], exc)
                self.send(error_response(exc.sqlstate, str(exc), detail=exc.detail))
            self.send(ReadyForQuery("I"))
            await self.drain()
            self.st.state = "idle"

    async def execute(self, cmd: Any) -> None:
        arch = self.archive
        src = arch.source
        assert src is not None
        if isinstance(cmd, EmptyCommand):
            self.send(EmptyQueryResponse())
        elif isinstance(cmd, IdentifySystem):
            tli = arch.current_timeline()
            end = self.server.end_lsn(tli)
            self.send(*result_set([("systemid", TEXTOID), ("timeline", INT8OID),
                                   ("xlogpos", TEXTOID), ("dbname", TEXTOID)],
                                  [(str(src.cluster.sysid).encode(), str(tli).encode(),  # type: ignore[union-attr]
                                    str(end).encode(), None)], "IDENTIFY_SYSTEM"))
        elif isinstance(cmd, Show):
            self.send(*result_set([(cmd.name, TEXTOID)], [(self.show(cmd.name).encode(),)],
                                  "SHOW"))
        elif isinstance(cmd, TimelineHistory):
            p = src.history_files.get(cmd.timeline)
            name = f"{cmd.timeline:08X}.history"
            if p is None:
                raise CommandError(UNDEFINED_FILE, f"could not open file \"pg_wal/{name}\": No "
                                   "such file or directory")
            from ..parse.source import _HISTORY_RE, read_file_bytes
            m = _HISTORY_RE.match(p.name)
            content = read_file_bytes(p, m.group("comp") if m else None)
            self.send(*result_set([("filename", TEXTOID), ("content", BYTEAOID)],
                                  [(name.encode(), content)], "TIMELINE_HISTORY"))
        elif isinstance(cmd, ReadReplicationSlot):
            # No slots here: NULLs, as walsender answers for a slot that does not exist.
            self.send(*result_set([("slot_type", TEXTOID), ("restart_lsn", TEXTOID),
                                   ("restart_tli", INT8OID)], [(None, None, None)],
                                  "READ_REPLICATION_SLOT"))
        elif isinstance(cmd, StartReplication):
            await self.start_replication(cmd)
        else:  # pragma: no cover
            raise CommandError(FEATURE_NOT_SUPPORTED, "unsupported command")

    def show(self, name: str) -> str:
        src = self.archive.source
        assert src is not None
        seg = src.seg_size
        values = {
            "wal_segment_size": f"{seg >> 30}GB" if seg >= 1 << 30 else f"{seg >> 20}MB",
            "wal_block_size": str(src.block_size), "block_size": "8192",
            "data_directory_mode": "0700", "server_version": f"{src.cluster.pg_major}.0",  # type: ignore[union-attr]
            "server_version_num": str(src.cluster.pg_major * 10000),  # type: ignore[union-attr]
            "server_encoding": "UTF8", "client_encoding": "UTF8", "integer_datetimes": "on",
            "max_wal_senders": str(self.opts.max_clients),
            "wal_sender_timeout": f"{int(self.opts.timeout * 1000)}ms",
            "timezone": "UTC", "in_hot_standby": "off", "transaction_read_only": "off",
        }
        v = values.get(name.lower())
        if v is None:
            raise CommandError("42704", f"unrecognized configuration parameter \"{name}\"")
        return v

    # -- streaming ----------------------------------------------------------------------------
    async def start_replication(self, cmd: StartReplication) -> None:
        arch = self.archive
        plan = arch.plan(cmd.timeline, cmd.start)
        src = arch.source
        assert src is not None
        if plan.valid_upto is not None and cmd.start > plan.valid_upto:
            raise CommandError(OBJECT_NOT_IN_STATE,
                               f"requested starting point {cmd.start} on timeline {plan.timeline}"
                               " is not in this server's history",
                               f"This server's history forked from timeline {plan.timeline} at "
                               f"{plan.valid_upto}.")
        if cmd.slot:
            log.info("client #%d: slot \"%s\" ignored (the archive keeps no slots)", self.st.id,
                     cmd.slot)
        st = self.st
        st.timeline, st.start, st.sent = plan.timeline, int(cmd.start), int(cmd.start)
        st.state = "streaming"
        log.info("client #%d: START_REPLICATION %s TIMELINE %d", st.id, cmd.start, plan.timeline)
        if plan.valid_upto is None or cmd.start < plan.valid_upto:
            self.send(CopyBothResponse(0))
            await self.drain()
            plan = await self.stream(plan, int(cmd.start))
            if self.be.state is BState.QUERY and st.note.startswith("error"):
                return  # an ErrorResponse ended the copy
        if plan.valid_upto is not None:
            self.send(*result_set([("next_tli", INT8OID), ("next_tli_startpos", TEXTOID)],
                                  [(str(plan.next_tli).encode(), str(plan.valid_upto).encode())],
                                  "START_STREAMING")[:-1])
        self.send(CommandComplete("START_STREAMING"))

    async def stream(self, plan: TimelinePlan, pos: int) -> TimelinePlan:
        """The WalSndLoop: send, keepalive, wait; returns after both CopyDones, with the
        plan it ended on (a timeline streamed as the newest may have become historic)."""
        st = self.st
        src = self.archive.source
        assert src is not None
        seg_size = src.seg_size
        reader = asyncio.ensure_future(self.read_replies())
        timeout = self.opts.timeout
        last_reply_request = 0.0
        last_send = time.monotonic()
        scanned = -1
        try:
            while True:
                if reader.done():
                    reader.result()  # raises the client's protocol error, or _Drop
                if self.be.state in (BState.QUERY,):
                    return plan  # both CopyDones exchanged
                now = time.monotonic()
                silent = now - self.last_recv
                if timeout and silent > timeout:
                    self._timed_out()
                if timeout and silent > timeout / 2 and now - last_reply_request > timeout / 2:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), True))
                    last_reply_request = last_send = now
                    await self.drain()
                elif now - last_send > self.opts.keepalive_interval:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), False))
                    last_send = now
                    await self.drain()
                if self.be.state is BState.COPY_SERVER_DONE:
                    await self.wait(reader, 1.0)  # for the client's CopyDone
                    continue
                if self.be.state is BState.COPY_CLIENT_DONE:
                    self.send(CopyDone())  # the client ends streaming: we end too
                    await self.drain()
                    return plan
                src = self.archive.source
                assert src is not None
                if plan.valid_upto is None and self.archive.generation != scanned:
                    scanned = self.archive.generation  # DIR was rescanned: a new timeline?
                    if self.archive.current_timeline() != plan.timeline:
                        plan = self._became_historic(plan)
                if plan.valid_upto is not None and st.sent >= plan.valid_upto:
                    log.info("client #%d: end of timeline %d at %s; next timeline %d",
                             st.id, plan.timeline, plan.valid_upto, plan.next_tli)
                    self.send(CopyDone())
                    await self.drain()
                    continue
                segno = st.sent // seg_size
                f = self.archive.file_for(plan, segno)
                if f is None:
                    if await self.missing(plan, segno):
                        return plan
                    await self.wait(reader, 1.0)
                    continue
                seg_start = segno * seg_size
                end = self.server.live_limit(f, segno)
                data: bytes | None = None
                if end is None:
                    data, n, complete = self.archive.segment_data(f, segno)
                    if n < seg_size and len(data) >= seg_size and \
                            self._later_exists(plan, segno):
                        # WAL went on after this segment: the rest of this one is final
                        # (zeros after a WAL switch, or a tail of zeros), send it as walsender
                        # would. Not for a file shorter than a segment (being copied in, or
                        # gone since the last scan): only bytes that are there are sent.
                        n = seg_size
                    end = seg_start + n
                if plan.valid_upto is not None:
                    end = min(end, int(plan.valid_upto))
                if st.sent < end:
                    wal_end = end
                    end = min(end, st.sent + _SEND_BURST)
                    if data is None:  # relay mode: read what the receiver flushed
                        data = self._read_flushed(f, st.sent - seg_start, end - st.sent)
                        if not data:
                            await self.wait(reader, 1.0)
                            continue
                        base, end = st.sent, st.sent + len(data)
                    else:
                        base = seg_start
                    st.note = ""
                    while st.sent < end:
                        k = min(MAX_SEND_SIZE, end - st.sent)
                        off = st.sent - base
                        self.writer.write(encode_xlogdata(st.sent, wal_end, pg_now(),
                                                          memoryview(data)[off:off + k]))
                        st.sent += k
                    last_send = time.monotonic()
                    await self.drain()
                    continue
                await self.wait(reader, 1.0)
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _became_historic(self, plan: TimelinePlan) -> TimelinePlan:
        """A newer timeline appeared in DIR (the relay's upstream was promoted, or its files
        were copied in): the one streamed is historic now and ends at its switch point, after
        which the client is sent to the next (as a cascading walsender does)."""
        try:
            new = self.archive.plan(plan.timeline, Lsn(self.st.sent))
        except CommandError as exc:
            log.warning("client #%d: timeline %d is no longer the newest, but %s", self.st.id,
                        plan.timeline, exc)
            return plan
        if new.valid_upto is not None:
            log.info("client #%d: timeline %d became historic at %s (next timeline %d)",
                     self.st.id, plan.timeline, new.valid_upto, new.next_tli)
        return new

    def _read_flushed(self, f: SegmentFile, offset: int, length: int) -> bytes:
        """Bytes of the segment file `f` the receiver has made durable (no cache: it is
        being written)."""
        try:
            fd = os.open(f.path, os.O_RDONLY)
        except FileNotFoundError:  # renamed since the last scan: look again
            self.server._check_archive()
            return b""
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def _later_exists(self, plan: TimelinePlan, segno: int) -> bool:
        """Whether WAL went on after `segno`: the first later segment in DIR holds WAL (a
        missing one in between is a hole, reported when the client gets there)."""
        last = self.archive.last_segno(plan)
        if last is None or last <= segno:
            return False
        for s in range(segno + 1, last + 1):
            f = self.archive.file_for(plan, s)
            if f is not None:
                _, n, _ = self.archive.segment_data(f, s)
                return n > 0
        return False

    async def missing(self, plan: TimelinePlan, segno: int) -> bool:
        """A segment is not in the archive: removed (error, True), a hole, or not yet there."""
        src = self.archive.source
        assert src is not None
        first = self.archive.first_segno(plan)
        last = self.archive.last_segno(plan)
        tli = plan.chain[-1][0]
        for t, b in reversed(plan.chain):
            if int(b) // src.seg_size <= segno:
                tli = t
                break
        name = src.name_of(tli, segno)
        if first is not None and segno < first:
            msg = f"requested WAL segment {name} has already been removed"
            log.warning("client #%d: %s", self.st.id, msg)
            self.st.note = "error: " + msg
            self.send(error_response(UNDEFINED_FILE, msg))
            return True
        if last is not None and segno < last:
            note = (f"WAL segment {name} is missing from the archive while later segments "
                    f"exist: serving stopped at {Lsn(self.st.sent)} until it appears")
            if self.st.note != note:
                log.warning("client #%d: %s", self.st.id, note)
                self.st.note = note
                self.send(notice_response(note))
                await self.drain()
        return False

    async def wait(self, reader: asyncio.Future[Any], timeout: float) -> None:
        changed = asyncio.ensure_future(self.server._changed.wait())
        msg = asyncio.ensure_future(self.got_message.wait())
        try:
            await asyncio.wait({changed, msg, reader}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            msg.cancel()
        self.got_message.clear()

    async def read_replies(self) -> None:
        """Standby messages during COPY BOTH, until the client's CopyDone."""
        st = self.st
        while True:
            ev = self.be.next_event()
            if ev is NEED_DATA:
                data = await self.reader.read(65536)
                self.be.receive_data(data)
                continue
            self.last_recv = time.monotonic()
            st.last_reply = time.time()
            if isinstance(ev, StandbyStatusUpdate):
                st.write, st.flush, st.apply = ev.write, ev.flush, ev.apply
                if ev.reply_requested:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), False))
            elif isinstance(ev, HotStandbyFeedback):
                st.hot_standby_xmin = ev.xmin
            elif isinstance(ev, CopyDone):
                self.got_message.set()
                return
            elif isinstance(ev, (Terminate, ConnectionClosed)):
                raise _Drop()
            self.got_message.set()


def _peer_is_loopback(host: str) -> bool:
    return is_loopback(host.split("%")[0]) or host.startswith("::ffff:127.")


async def serve(options: ServeOptions, *, ready: Callable[[WalSender], None] | None = None,
                upstream: ReceiveOptions | None = None) -> None:
    """Serve DIR until cancelled. With `upstream` (relay mode), a receiver in this event loop
    writes DIR from that server and clients get its WAL as soon as it is durable: see
    `relay.relay()`, which this then runs."""
    if upstream is not None:
        from .relay import relay

        await relay(options, upstream, ready=ready)
        return
    sender = WalSender(options)
    await sender.start()
    if ready:
        ready(sender)
    try:
        await sender.serve_forever()
    finally:
        await sender.close()


__all__ = ["ServeError", "ServeOptions", "WalSender", "ClientStatus", "serve", "is_loopback",
           "Archive", "TimelinePlan", "valid_length"]
