"""A standalone WAL receiver on asyncio: pg_receivewal's StreamLog / ReceiveXlogStream /
HandleCopyStream (src/bin/pg_basebackup), with online verification.

    result = run_receiver(ReceiveOptions(conninfo="host=db user=rep", directory="/arch"))

Connect with replication=true, IDENTIFY_SYSTEM, find where to start (the newest segment in
DIR, else the slot's restart_lsn (15+), else the server's position, at a segment start),
fetch missing timeline history files, START_REPLICATION, and write what streams in. Status
updates report the written position and, with a slot or --synchronous, the flushed one,
which is only ever a position already fsynced. At the end of a timeline, follow the server
to the next. Disconnects are retried with backoff unless no_loop; SIGINT/SIGTERM flush,
fsync, report and return normally.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, Callable, TextIO

from ..errors import ClusterMismatch
from ..lsn import Lsn
from .archive import ArchiveError, WalArchive
from .conninfo import ConnParams, resolve
from .connection import Connection
from .connerrors import ConnectError, ConnectionLost, ServerError
from .copystream import CopyStream
from .messages import ProtocolError
from .protocol import NextTimeline, SystemIdentity, parse_size_setting, start_replication_command
from .recvopts import ReceiveError, ReceiveOptions, ReceiveResult, ReceiverProgress
from .retry import Backoff, Retry, connect_retry, is_permanent
from .slots import Slots
from .statusline import StatusLine

log = logging.getLogger("xlogtools.stream")

APPLICATION_NAME = "xlogtools"
MIN_SERVER_VERSION = 100000


class Receiver:
    """One receiver; `on_progress(ReceiverProgress)` is called in the event loop, from the
    receiver's own callbacks, so it must be quick and must not raise."""

    def __init__(self, options: ReceiveOptions, *, out: TextIO | None = None,
                 on_progress: Callable[[ReceiverProgress], None] | None = None) -> None:
        options.validate()
        self.opts = options
        self.on_progress = on_progress
        self._reported: tuple[str, int, int] = ("", 0, 0)  # (state, timeline, flushed)
        self.out = out if out is not None else sys.stderr
        overrides = {"host": options.host, "port": options.port, "user": options.user}
        self.params: ConnParams = resolve(options.conninfo, overrides, environ=options.environ,
                                          force={"dbname": "replication"},
                                          fallback_application_name=APPLICATION_NAME)
        if options.password_prompt and not self.params.password:
            import getpass

            self.params = self.params.with_(password=getpass.getpass("Password: "))
        self.report_flush = bool(options.slot) or options.synchronous \
            or options.fsync_interval is not None
        self.archive: WalArchive | None = None
        self.sysid: int | None = None
        self.result = ReceiveResult()
        self.stopping: str | None = None  # the stop reason once a stop was asked for
        self._conn: Connection | None = None
        self._task: asyncio.Task[Any] | None = None
        self._wakeup: asyncio.Event | None = None
        self.status_line = StatusLine(self.out, options.status_line
                                      if options.status_line is not None else
                                      bool(getattr(self.out, "isatty", lambda: False)()))
        self.state = "starting"  # connecting | connected | streaming | disconnected |
        #                          waiting-for-storage | stopped
        self.last_error = ""
        self.last_error_time: float | None = None  # time.time()
        self.storage_waiting = False  # the archive's storage refused a write; waiting
        self.verification_failures = 0
        self.slots = Slots(options)
        self.copy = CopyStream(self)

    @property
    def server_end(self) -> int:
        """The server's WAL end as it last reported it (0: not yet)."""
        return self.copy.server_end

    @property
    def reported_flushed(self) -> int:
        """The flushed position the progress hook was last given."""
        return self._reported[2]

    # -- the progress hook ------------------------------------------------------------------
    def report(self, state: str, detail: str = "") -> None:
        self.state = state
        if state == "streaming":
            self.storage_waiting = False
        if state in ("disconnected", "waiting-for-storage") or state == "stopped" and detail \
                and detail not in ("endpos", "signal", "slot-created", "slot-dropped",
                                   "nothing-to-do"):
            self.last_error, self.last_error_time = detail, time.time()
        if self.on_progress is None:
            return
        a = self.archive
        tli = a.timeline if a is not None else 0
        flushed = int(a.flushed) if a is not None else 0
        key = (state, tli, flushed)
        if key == self._reported and state == "streaming":
            return
        self._reported = key
        conn = self._conn
        server = ""
        if conn is not None:
            h = conn.host
            server = h.socket_path if h.is_unix else f"{h.host}:{h.port}"
        p = ReceiverProgress(state, tli, a.written if a is not None else Lsn(0),
                             a.flushed if a is not None else Lsn(0),
                             Lsn(self.copy.server_end), server, detail)
        try:
            self.on_progress(p)
        except Exception:  # a bug of the listener must not stop the receiver
            log.exception("progress hook failed")

    # -- stopping -------------------------------------------------------------------------
    def request_stop(self, reason: str = "signal") -> None:
        """Stop as soon as possible: flush, fsync, report, return (signal handlers call it)."""
        if self.stopping is None:
            self.stopping = reason
        if self._wakeup is not None:
            self._wakeup.set()
        if self._conn is not None and self.copy.streaming:
            self._conn.wake()
        elif self._task is not None and not self._task.done():
            self._task.cancel()  # connecting or waiting: nothing to flush

    # -- main loop ------------------------------------------------------------------------
    async def run(self) -> ReceiveResult:
        self._wakeup = asyncio.Event()
        backoff = Backoff()
        first = True
        log.addFilter(self.status_line.end_line)  # a message ends the status line first
        try:
            while True:
                self._task = asyncio.ensure_future(self._session(first))
                try:
                    reason = await self._task
                except asyncio.CancelledError:
                    if self.stopping is None:
                        raise
                    reason = self.stopping
                except Retry as r:
                    first = False
                    if r.streamed:
                        backoff.reset()
                    if self.archive is not None:
                        if r.storage:  # nothing more may be trusted of the open segment
                            self.archive.abandon_segment()
                        else:
                            self.archive.close_segment()
                    self.storage_waiting = r.storage
                    self.report("waiting-for-storage" if r.storage else "disconnected",
                                r.reason)
                    if self.opts.no_loop:
                        raise ReceiveError(f"disconnected: {r.reason}") from None
                    if self.stopping is not None:
                        reason = self.stopping
                    else:
                        self.status_line.clear()
                        if r.storage:
                            log.warning("%s; waiting %.1f seconds to try again", r.reason,
                                        backoff.delay)
                        else:
                            log.warning("disconnected: %s; waiting %.1f seconds to try again",
                                        r.reason, backoff.delay)
                        self.result.reconnects += 1
                        await backoff.wait(self._wakeup)
                        if self.stopping is None:
                            continue
                        reason = self.stopping
                finally:
                    self._task = None
                first = False
                self.result.stop_reason = reason
                return self.result
        finally:
            log.removeFilter(self.status_line.end_line)
            self.status_line.clear()
            if self.archive is not None:
                self.archive.close()
                res = self.result
                res.flushed = self.archive.flushed
                res.segments_completed = self.archive.segments_completed
                if self.archive.verifier is not None:
                    res.records_verified = self.archive.verifier.records
                log.info("flushed up to %s (timeline %d); %d segments completed, %d records "
                         "verified", res.flushed, res.timeline, res.segments_completed,
                         res.records_verified)
            exc = sys.exc_info()[1]
            self.report("stopped", str(exc) if exc is not None else self.result.stop_reason)


    async def _session(self, first: bool) -> str:
        self.report("connecting")
        try:
            conn = await Connection.connect(self.params)
        except ConnectError as exc:
            retry = connect_retry(exc, first, self.opts.retry_first)
            if retry is None:
                raise
            raise retry from None
        self._conn = conn
        self.report("connected")
        streamed_before = self.result.bytes_received
        try:
            return await self._replicate(conn, first)
        except (ConnectionLost, ProtocolError) as exc:
            raise Retry(str(exc), self.result.bytes_received > streamed_before) from None
        except asyncio.TimeoutError:
            raise Retry("timeout waiting for the server",
                         self.result.bytes_received > streamed_before) from None
        except ServerError as exc:
            if is_permanent(exc):
                raise ReceiveError(str(exc)) from None
            raise Retry(str(exc), self.result.bytes_received > streamed_before) from None
        except ArchiveError as exc:
            if not exc.storage_full:
                raise
            if self.copy.streaming and self.archive is not None:
                try:  # what is durable, so that the slot lets the server keep only the rest
                    self.copy.send_status(conn)
                except (ConnectionLost, OSError):
                    pass
            raise Retry(self._storage_message(exc), False, storage=True) from None
        finally:
            self.copy.streaming = False
            self._conn = None
            conn.close()

    def _storage_message(self, exc: ArchiveError) -> str:
        """What an operator needs to know when the archive's storage refuses WAL."""
        a = self.archive
        flushed = f"WAL up to {a.flushed} is durable in {a.dir}" if a is not None and a.flushed \
            else "no WAL was made durable yet"
        keep = (f"the server keeps the rest for slot \"{self.opts.slot}\"" if self.opts.slot
                else "without a replication slot (--slot) the server may remove WAL this "
                     "archive has not got")
        return f"the archive cannot be written: {exc}; {flushed}, {keep}"


    async def _replicate(self, conn: Connection, first: bool) -> str:
        if conn.server_version < MIN_SERVER_VERSION:
            raise ReceiveError(f"incompatible server version "
                               f"{conn.fe.parameters.get('server_version', '?')}; streaming "
                               "needs PostgreSQL 10 or later")
        ident = SystemIdentity.from_result(await conn.query("IDENTIFY_SYSTEM"))
        if self.sysid is not None and ident.system_identifier != self.sysid:
            raise ReceiveError(f"system identifier does not match: the server now has "
                               f"{ident.system_identifier}, before {self.sysid}")
        self.sysid = ident.system_identifier
        if self.opts.create_slot or self.opts.drop_slot:
            return await self.slots.command(conn)
        if self.opts.ensure_slot and not self.slots.ready:
            await self.slots.ensure(conn)
        if self.archive is None:
            seg = await conn.query("SHOW wal_segment_size")
            seg_size = parse_size_setting(seg.text(0, 0) or "")
            self.archive = WalArchive(self.opts.directory, seg_size=seg_size, sysid=self.sysid,
                                      sync=self.opts.sync, compression=self.opts.compression,
                                      compression_level=self.opts.compression_level,
                                      verify=self.opts.verify,
                                      zero_fill=self.opts.synchronous or self.opts.flush_batches)
            found = self.archive.open()
        else:
            found = self.archive.streaming_start(self.archive.scan())
        archive = self.archive
        start, tli = await self._start_position(conn, ident, found)
        if start is None:
            return "nothing-to-do"
        if self.result.start is None:
            self.result.start = start
        while True:
            if not archive.has_history(tli):
                hist = await conn.query(f"TIMELINE_HISTORY {tli}")
                if len(hist.rows) != 1 or len(hist.columns) != 2:
                    raise ProtocolError(f"unexpected response to TIMELINE_HISTORY command: got "
                                        f"{len(hist.rows)} rows and {len(hist.columns)} fields, "
                                        "expected 1 rows and 2 fields")
                archive.write_history(tli, hist.text(0, 0) or "", hist.rows[0][1] or b"")
                log.info("wrote history file for timeline %d", tli)
            if self.opts.endpos is not None and start >= self.opts.endpos:
                return "endpos"
            if self.stopping is not None:
                return self.stopping
            archive.set_timeline(tli)
            self.result.timeline = tli
            if tli not in self.result.timelines:
                self.result.timelines.append(tli)
            log.info("starting log streaming at %s (timeline %d)", start, tli)
            res = await conn.start_copy(start_replication_command(start, tli, self.opts.slot))
            if res is None:
                outcome = await self.copy.run(conn, start)
                if isinstance(outcome, str):
                    return outcome
                stoppos = archive.written
            else:
                outcome = NextTimeline.from_result(res)
                stoppos = start
            if outcome.timeline <= tli:
                raise ReceiveError(f"server reported unexpected next timeline {outcome.timeline}, "
                                   f"following timeline {tli}")
            if outcome.start > max(stoppos, start):
                raise ReceiveError(f"server stopped streaming timeline {tli} at {Lsn(stoppos)}, "
                                   f"but reported next timeline {outcome.timeline} to begin at "
                                   f"{outcome.start}")
            log.info("switched to timeline %d at %s", outcome.timeline, outcome.start)
            archive.close_segment()
            tli = outcome.timeline
            start = Lsn(outcome.start - outcome.start % archive.seg_size)

    async def _start_position(self, conn: Connection, ident: SystemIdentity,
                              found: tuple[Lsn, int] | None) -> tuple[Lsn | None, int]:
        seg_size = self.archive.seg_size  # type: ignore[union-attr]
        slot_info = await self.slots.read(conn)
        if found is not None:
            start, tli = found
            if tli > ident.timeline:
                raise ReceiveError(f"starting timeline {tli} is not present in the server "
                                   f"(it is on timeline {ident.timeline})")
        elif slot_info is not None and slot_info.restart_lsn is not None:
            start, tli = slot_info.restart_lsn, slot_info.restart_tli or ident.timeline
        else:
            start, tli = ident.xlogpos, ident.timeline
        return Lsn(start - start % seg_size), tli


__all__ = ["Receiver", "APPLICATION_NAME", "MIN_SERVER_VERSION", "ArchiveError",
           "ClusterMismatch", "ConnectError"]
