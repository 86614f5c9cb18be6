"""walsender on asyncio: serve the WAL of an archive directory to physical standbys.

The protocol is `backend.Backend` (sans-I/O); this module does the waiting: one task per
client (`session.Session`, streaming in `walstream.WalStreamer`), one task that polls DIR
for new files. What it sends mirrors walsender.c:
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
import logging
import os
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import Any

from ..errors import XlogError
from ..lsn import Lsn
from ..parse.source import SegmentFile
from .backend import ADMIN_SHUTDOWN, INTERNAL_ERROR, ClientProtocolError, error_response
from .scram import ScramVerifier
from .sendable import Archive, TimelinePlan, valid_length
from .session import Session
from .sessionio import Drop, is_loopback
from .status import (ClientStatus, UpstreamStatus, server_status, status_text,
                     write_json_atomic)

log = logging.getLogger("xlogtools.serve")


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
        self.mock_secret = secrets.token_bytes(16)  # SCRAM mock verifiers of unknown users
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

    def wait_changed(self) -> Any:
        """An awaitable that ends at the next wake of the streaming sessions."""
        return self._changed.wait()

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
        return server_status(self.options.directory,
                             self.archive.current_timeline() if self.archive.ready else None,
                             end, self.upstream, list(self.clients.values()))

    def status_text(self) -> str:
        return status_text(self.status(), self.upstream)

    def write_status_file(self) -> None:
        path = self.options.status_file
        if not path:
            return
        write_json_atomic(path, self.status())

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
        session = Session(self, reader, writer, st)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # close() ends the sessions too
        try:
            await session.run()
        except Drop:
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


__all__ = ["ServeError", "ServeOptions", "WalSender", "ClientStatus", "is_loopback",
           "Archive", "TimelinePlan", "valid_length"]
