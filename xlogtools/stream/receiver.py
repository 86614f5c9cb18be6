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
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ..errors import ClusterMismatch, UsageError, XlogError
from ..lsn import Lsn
from .archive import ArchiveError, VerifyError, WalArchive
from .conninfo import ConnParams, resolve
from .connection import Connection, ConnectError, ConnectionLost, ServerError
from .loop import run as run_loop
from . import syncpump
from .protocol import (NEED_DATA, CommandComplete, ConnectionClosed, CopyDone, ErrorResponse,
                       NextTimeline, PrimaryKeepalive, ProtocolError, SlotInfo,
                       SystemIdentity, XLogData, create_slot_command,
                       drop_slot_command, parse_size_setting, start_replication_command)

log = logging.getLogger("xlogtools.stream")

APPLICATION_NAME = "xlogtools"
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
MIN_SERVER_VERSION = 100000
# Verify at least every VERIFY_BATCH bytes or VERIFY_DELAY seconds after WAL arrived. Each
# run of the reader has a fixed cost, so not after every message; but a run holds up the
# messages behind it, so a synchronous receiver (commits wait for it) runs small ones.
VERIFY_BATCH = 1 << 20
VERIFY_DELAY = 0.1
VERIFY_BATCH_SYNC = 64 << 10
VERIFY_DELAY_SYNC = 0.02


class ReceiveError(XlogError):
    """The receiver stopped on an error it will not retry."""


@dataclass
class ReceiveOptions:
    """What `xlogtools receive` takes (see its --help for each option)."""

    directory: str | Path
    conninfo: str | None = None
    host: str | None = None
    port: str | None = None
    user: str | None = None
    password_prompt: bool = False  # -W: ask before connecting
    slot: str | None = None
    create_slot: bool = False
    drop_slot: bool = False
    if_not_exists: bool = False
    synchronous: bool = False
    status_interval: float = 10.0
    endpos: Lsn | None = None
    no_loop: bool = False
    compression: str | None = None
    compression_level: int | None = None
    verify: bool = True
    sync: bool = True  # False: --no-sync (tests only)
    verbose: bool = False
    status_line: bool | None = None  # None: when stderr is a terminal
    fsync_interval: float | None = None  # seconds: flush at most this often, report flushed
    metrics: str | None = None  # [HOST:]PORT: serve Prometheus text (loopback by default)
    status_file: str | Path | None = None  # write the same as JSON here, atomically
    environ: dict[str, str] | None = None
    # For a relay (serve --upstream), which sends standbys only what is durable in DIR:
    flush_batches: bool = False  # fsync after every batch of messages, as a walreceiver does
    retry_first: bool = False  # retry a first connection that found no server (not a refusal)
    ensure_slot: bool = False  # create the slot (if missing) on the first connection, then stream

    def validate(self) -> None:
        if (self.create_slot or self.drop_slot) and not self.slot:
            raise UsageError(f"--{'create' if self.create_slot else 'drop'}-slot needs a slot to "
                             "be specified using --slot")
        if self.create_slot and self.drop_slot:
            raise UsageError("cannot use --create-slot together with --drop-slot")
        if self.ensure_slot and not self.slot:
            raise UsageError("--create-slot needs a slot to be specified using --slot")
        if self.if_not_exists and not self.create_slot:
            raise UsageError("--if-not-exists needs --create-slot")
        if self.synchronous and not self.sync:
            raise UsageError("cannot use --synchronous together with --no-sync")
        if self.fsync_interval is not None:
            if self.synchronous:
                raise UsageError("cannot use --fsync-interval together with --synchronous "
                                 "(which flushes every write)")
            if not self.sync:
                raise UsageError("cannot use --fsync-interval together with --no-sync")
            if not self.fsync_interval > 0:
                raise UsageError(f"invalid fsync interval \"{self.fsync_interval}\"")
        if self.slot is not None and not _valid_slot_name(self.slot):
            raise UsageError(f"replication slot name \"{self.slot}\" is invalid: it may contain "
                             "only lower case letters, numbers and the underscore, at most 63 "
                             "characters")
        if self.status_interval < 0:
            raise UsageError(f"invalid status interval \"{self.status_interval}\"")


def _valid_slot_name(name: str) -> bool:
    return 0 < len(name) < 64 and all(c.islower() and c.isascii() or c.isdigit() or c == "_"
                                      for c in name)


@dataclass
class ReceiveResult:
    start: Lsn | None = None  # where streaming began
    flushed: Lsn = Lsn(0)  # end of what is durably in DIR
    timeline: int = 0
    segments_completed: int = 0
    records_verified: int = 0
    bytes_received: int = 0
    stop_reason: str = ""  # endpos | signal | slot-created | slot-dropped | nothing-to-do
    reconnects: int = 0
    c_loop_rounds: int = 0  # synchronous rounds done by the C loop (syncpump)
    timelines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ReceiverProgress:
    """What the receiver hands its `on_progress` hook: after a state change, and after every
    batch that made more WAL durable. A relay's walsender sends up to `flushed`."""

    state: str  # connecting | connected | streaming | disconnected | stopped
    timeline: int  # the timeline being written (0: none yet)
    received: Lsn  # written to DIR
    flushed: Lsn  # durable in DIR (fdatasync'ed, the directory entry too)
    server_end: Lsn  # the server's WAL end as it last reported it
    server: str = ""  # host:port (or socket) of the connection, once connected
    detail: str = ""  # why it is disconnected / stopped


class _Retry(Exception):
    """The session ended in a way a new connection may fix; `storage`: because the archive's
    storage refused a write or fsync (full, read-only, I/O error), not the connection."""

    def __init__(self, reason: str, streamed: bool, storage: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.streamed = streamed
        self.storage = storage


_PERMANENT_SQLSTATES = {"42704", "58P01", "42501", "28000", "28P01", "55000"}


class Receiver:
    """One receiver; `on_progress(ReceiverProgress)` is called in the event loop, from the
    receiver's own callbacks, so it must be quick and must not raise."""

    def __init__(self, options: ReceiveOptions, *, out: TextIO | None = None,
                 on_progress: Callable[[ReceiverProgress], None] | None = None) -> None:
        options.validate()
        self.opts = options
        self.on_progress = on_progress
        self._reported: tuple[str, int, int] = ("", 0, 0)  # (state, timeline, flushed)
        self._slot_ready = False
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
        self._stop: str | None = None
        self._conn: Connection | None = None
        self._streaming = False
        self._task: asyncio.Task[Any] | None = None
        self._wakeup: asyncio.Event | None = None
        self._server_end = 0
        self._verified_upto = 0
        self._verify_due: float | None = None
        self._last_status = 0.0
        self._end_event: Any = None  # what ended the stream: an event, "endpos" or "stop"
        self._pump_error: BaseException | None = None
        self._fast: syncpump.SyncPump | None = None  # the C loop, while it reads the socket
        self._fast_ok = False
        self._status_shown = 0.0
        self._status_pos = 0
        self._status_on = options.status_line if options.status_line is not None else \
            bool(getattr(self.out, "isatty", lambda: False)())
        self._status_len = 0
        self._last_flush = 0.0  # monotonic time of the last flush (--fsync-interval)
        self._due_timer: asyncio.TimerHandle | None = None  # see _wake_at
        self._due_when = 0.0
        self._acked = (0, 0)  # (written, flushed) last sent in a status update
        self.state = "starting"  # connecting | connected | streaming | disconnected |
        #                          waiting-for-storage | stopped
        self.last_error = ""
        self.last_error_time: float | None = None  # time.time()
        self.storage_waiting = False  # the archive's storage refused a write; waiting
        self.verification_failures = 0

    @property
    def server_end(self) -> int:
        """The server's WAL end as it last reported it (0: not yet)."""
        return self._server_end

    # -- the progress hook ------------------------------------------------------------------
    def _report(self, state: str, detail: str = "") -> None:
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
                             Lsn(self._server_end), server, detail)
        try:
            self.on_progress(p)
        except Exception:  # a bug of the listener must not stop the receiver
            log.exception("progress hook failed")

    # -- stopping -------------------------------------------------------------------------
    def request_stop(self, reason: str = "signal") -> None:
        """Stop as soon as possible: flush, fsync, report, return (signal handlers call it)."""
        if self._stop is None:
            self._stop = reason
        if self._wakeup is not None:
            self._wakeup.set()
        if self._conn is not None and self._streaming:
            self._conn.wake()
        elif self._task is not None and not self._task.done():
            self._task.cancel()  # connecting or waiting: nothing to flush

    # -- main loop ------------------------------------------------------------------------
    async def run(self) -> ReceiveResult:
        self._wakeup = asyncio.Event()
        backoff = BACKOFF_FIRST
        first = True
        log.addFilter(self._end_status_line)  # a message ends the status line first
        try:
            while True:
                self._task = asyncio.ensure_future(self._session(first))
                try:
                    reason = await self._task
                except asyncio.CancelledError:
                    if self._stop is None:
                        raise
                    reason = self._stop
                except _Retry as r:
                    first = False
                    if r.streamed:
                        backoff = BACKOFF_FIRST
                    if self.archive is not None:
                        if r.storage:  # nothing more may be trusted of the open segment
                            self.archive.abandon_segment()
                        else:
                            self.archive.close_segment()
                    self.storage_waiting = r.storage
                    self._report("waiting-for-storage" if r.storage else "disconnected",
                                 r.reason)
                    if self.opts.no_loop:
                        raise ReceiveError(f"disconnected: {r.reason}") from None
                    if self._stop is not None:
                        reason = self._stop
                    else:
                        self._clear_status()
                        if r.storage:
                            log.warning("%s; waiting %.1f seconds to try again", r.reason,
                                        backoff)
                        else:
                            log.warning("disconnected: %s; waiting %.1f seconds to try again",
                                        r.reason, backoff)
                        self.result.reconnects += 1
                        self._wakeup.clear()
                        try:
                            await asyncio.wait_for(self._wakeup.wait(), backoff)
                        except asyncio.TimeoutError:
                            pass
                        backoff = min(backoff * 2, BACKOFF_MAX)
                        if self._stop is None:
                            continue
                        reason = self._stop
                finally:
                    self._task = None
                first = False
                self.result.stop_reason = reason
                return self.result
        finally:
            log.removeFilter(self._end_status_line)
            self._clear_status()
            if self.archive is not None:
                self.archive.close()
                r = self.result
                r.flushed = self.archive.flushed
                r.segments_completed = self.archive.segments_completed
                if self.archive.verifier is not None:
                    r.records_verified = self.archive.verifier.records
                log.info("flushed up to %s (timeline %d); %d segments completed, %d records "
                         "verified", r.flushed, r.timeline, r.segments_completed,
                         r.records_verified)
            exc = sys.exc_info()[1]
            self._report("stopped", str(exc) if exc is not None else self.result.stop_reason)

    async def _session(self, first: bool) -> str:
        self._report("connecting")
        try:
            conn = await Connection.connect(self.params)
        except ConnectError as exc:
            if exc.auth_failed or first and not self.opts.retry_first:
                raise
            if first and exc.server_error is not None and exc.server_error.sqlstate[:2] == "28":
                raise  # refused (pg_hba, role, privilege): a later attempt will not do better
            raise _Retry(str(exc), False) from None
        self._conn = conn
        self._report("connected")
        streamed_before = self.result.bytes_received
        try:
            return await self._replicate(conn, first)
        except (ConnectionLost, ProtocolError) as exc:
            raise _Retry(str(exc), self.result.bytes_received > streamed_before) from None
        except asyncio.TimeoutError:
            raise _Retry("timeout waiting for the server",
                         self.result.bytes_received > streamed_before) from None
        except ServerError as exc:
            if exc.sqlstate in _PERMANENT_SQLSTATES or "not in this server's history" in str(exc):
                raise ReceiveError(str(exc)) from None
            raise _Retry(str(exc), self.result.bytes_received > streamed_before) from None
        except ArchiveError as exc:
            if not exc.storage_full:
                raise
            if self._streaming and self.archive is not None:
                try:  # what is durable, so that the slot lets the server keep only the rest
                    self._send_status(conn)
                except (ConnectionLost, OSError):
                    pass
            raise _Retry(self._storage_message(exc), False, storage=True) from None
        finally:
            self._streaming = False
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
            return await self._slot_command(conn)
        if self.opts.ensure_slot and not self._slot_ready:
            await self._ensure_slot(conn)
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
            if self._stop is not None:
                return self._stop
            archive.set_timeline(tli)
            self.result.timeline = tli
            if tli not in self.result.timelines:
                self.result.timelines.append(tli)
            log.info("starting log streaming at %s (timeline %d)", start, tli)
            res = await conn.start_copy(start_replication_command(start, tli, self.opts.slot))
            if res is None:
                outcome = await self._stream(conn, start)
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
        slot_info: SlotInfo | None = None
        if self.opts.slot and conn.server_version >= 150000:
            slot_info = SlotInfo.from_result(
                await conn.query(f"READ_REPLICATION_SLOT {self.opts.slot}"))
            if slot_info.slot_type is None:
                raise ReceiveError(f"replication slot \"{self.opts.slot}\" does not exist")
            if slot_info.slot_type != "physical":
                raise ReceiveError(f"cannot use replication slot \"{self.opts.slot}\": it is "
                                   f"{slot_info.slot_type}, a physical slot is needed")
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

    async def _slot_command(self, conn: Connection) -> str:
        slot = self.opts.slot
        assert slot is not None
        if self.opts.drop_slot:
            await conn.query(drop_slot_command(slot))
            log.info("dropped replication slot \"%s\"", slot)
            return "slot-dropped"
        try:
            await conn.query(create_slot_command(slot, conn.server_version))
            log.info("created replication slot \"%s\"", slot)
        except ServerError as exc:
            if exc.sqlstate == "42710" and self.opts.if_not_exists:
                log.info("replication slot \"%s\" exists already", slot)
            else:
                raise ReceiveError(str(exc)) from None
        return "slot-created"

    async def _ensure_slot(self, conn: Connection) -> None:
        """Create the slot unless it exists (serve --create-slot), then stream through it."""
        slot = self.opts.slot
        assert slot is not None
        try:
            await conn.query(create_slot_command(slot, conn.server_version))
            log.info("created replication slot \"%s\"", slot)
        except ServerError as exc:
            if exc.sqlstate != "42710":
                raise ReceiveError(str(exc)) from None
        self._slot_ready = True

    # -- the copy stream ------------------------------------------------------------------
    async def _stream(self, conn: Connection, start: Lsn) -> NextTimeline | str:
        """HandleCopyStream: returns the next timeline at the end of one, or the stop
        reason; raises ConnectionLost/ServerError when the server goes away.

        Messages are handled by `_pump`, called by the I/O layer as soon as data arrives (no
        task switch per message: a synchronous standby answers every commit); this coroutine
        wakes for timers (status interval, verification, status line), a stop request, and
        the events that end the stream, which _pump leaves to it."""
        archive = self.archive
        assert archive is not None
        archive.written = Lsn(start)
        archive.flushed = Lsn(start)
        self._verified_upto = int(start)
        self._verify_due = None
        self._last_status = time.monotonic()
        self._end_event = None
        self._pump_error = None
        self._fast_ok = self.opts.synchronous and syncpump.AVAILABLE
        self._streaming = True
        self._status_pos = start
        self._status_shown = time.monotonic()
        interval = self.opts.status_interval
        self._report("streaming")
        conn.set_data_handler(lambda: self._on_data(conn))
        try:
            while True:
                if self._pump_error is not None:
                    raise self._pump_error
                if self._end_event is None:
                    self._pump(conn)
                ev = self._end_event
                if ev is not None:
                    self._leave_fast()
                    conn.set_data_handler(None)
                    return await self._end_of_stream(conn, ev)
                now = time.monotonic()
                timeout = interval - (now - self._last_status) if interval else None
                if self._status_on:
                    timeout = 1.0 if timeout is None else min(timeout, 1.0)
                await conn.wait(timeout)
        finally:
            self._leave_fast()
            conn.set_data_handler(None)
            if self._due_timer is not None:
                self._due_timer.cancel()
                self._due_timer = None
            if self.result.c_loop_rounds:
                log.info("%d synchronous rounds were done by the C loop so far",
                         self.result.c_loop_rounds)

    def _on_data(self, conn: Connection) -> None:
        """The I/O layer's data callback: never raises; wakes _stream when it must act."""
        if self._end_event is not None or self._pump_error is not None:
            return
        try:
            self._pump(conn)
        except BaseException as exc:  # handed to the coroutine, raised there
            self._pump_error = exc
        if self._end_event is not None or self._pump_error is not None:
            conn.wake()

    def _fast_ready(self, conn: Connection) -> None:
        """The socket is readable while the C loop has it (SyncPump): one round, then what
        _pump does after its messages; never raises (like _on_data)."""
        fast = self._fast
        if fast is None or self._end_event is not None or self._pump_error is not None:
            return
        try:
            stop, moved, wal_end, rounds = fast.round(*self._fast_budget())
            self.result.c_loop_rounds += rounds
            if moved:
                self.result.bytes_received += moved
                self._last_status = time.monotonic()
            if wal_end > self._server_end:
                self._server_end = wal_end
            if stop == syncpump.DRAINED:
                self._idle_work(conn)
            elif stop == syncpump.ENDPOS:
                self._reached_endpos()
            else:  # a message for the Python path, or end of file: give the socket back
                if stop == syncpump.END_OF_FILE:
                    self._fast_ok = False
                self._leave_fast()
                self._pump(conn)
        except BaseException as exc:  # handed to the coroutine, raised there
            self._pump_error = exc
        if self._end_event is not None or self._pump_error is not None:
            self._leave_fast()
            conn.wake()

    def _wake_at(self, conn: Connection, when: float) -> None:
        """Do the work between batches (_idle_work) again at `when` (time.monotonic()), also
        if no more WAL arrives: work that became due while the read callback handled data
        (an interval flush, a delayed verification) is not known to the coroutine's wait."""
        if self._due_timer is not None:
            if self._due_when <= when:
                return
            self._due_timer.cancel()
        self._due_when = when
        self._due_timer = asyncio.get_running_loop().call_later(
            max(0.0, when - time.monotonic()), self._work_due, conn)

    def _work_due(self, conn: Connection) -> None:
        self._due_timer = None
        self._on_data(conn)

    def _fast_budget(self) -> tuple[float | None, int]:
        """How long (a time.monotonic() deadline) and how much WAL (bytes) the C loop may go
        on with rounds before the Python work between rounds is due: verification (within
        VERIFY_DELAY_SYNC and VERIFY_BATCH_SYNC of the WAL's arrival), the status interval,
        the status line; (None, 0): one round only (a stop was asked for, a progress hook
        waits for each durable piece)."""
        if self._stop is not None or self.on_progress is not None:
            return None, 0
        now = time.monotonic()
        deadline = now + VERIFY_DELAY_SYNC
        a = self.archive
        max_bytes = 0
        if a is not None and a.verifier is not None:
            if self._verify_due is not None:
                deadline = min(deadline, self._verify_due)
            max_bytes = max(1, VERIFY_BATCH_SYNC - (int(a.written) - self._verified_upto))
        interval = self.opts.status_interval
        if interval:
            deadline = min(deadline, self._last_status + interval)
        if self._status_on:
            deadline = min(deadline, self._status_shown + 1.0)
        return (deadline, max_bytes) if deadline > now else (None, 0)

    def _reached_endpos(self) -> None:
        a = self.archive
        assert a is not None
        log.info("stopped log streaming at %s (timeline %d)", a.written, a.timeline)
        self._end_event = "endpos"

    def _leave_fast(self) -> None:
        fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()

    def _pump(self, conn: Connection) -> None:
        """Handle every message received so far, then the work due before waiting again."""
        archive = self.archive
        assert archive is not None
        endpos = self.opts.endpos
        result = self.result
        while True:
            ev = conn.poll()
            if ev is NEED_DATA:
                break
            kind = type(ev)
            if kind is XLogData:
                archive.write(ev.start, ev.data)  # type: ignore[union-attr]
                result.bytes_received += len(ev.data)  # type: ignore[union-attr]
                if ev.wal_end > self._server_end:  # type: ignore[union-attr]
                    self._server_end = ev.wal_end  # type: ignore[union-attr]
                if endpos is not None and archive.written >= endpos:
                    self._reached_endpos()
                    return
            elif kind is PrimaryKeepalive:
                if ev.wal_end > self._server_end:  # type: ignore[union-attr]
                    self._server_end = ev.wal_end  # type: ignore[union-attr]
                if ev.reply_requested:  # type: ignore[union-attr]
                    if archive.verifier is not None:
                        self._verify()
                    if self.report_flush:
                        self._flush()
                    self._send_status(conn)
                    self._last_status = time.monotonic()
            elif kind in (CopyDone, CommandComplete, ErrorResponse, ConnectionClosed):
                self._end_event = ev
                return
            # CopyData of other kinds, notices, parameter changes: nothing to do
        self._idle_work(conn)

    def _idle_work(self, conn: Connection) -> None:
        """Everything that arrived is written. Synchronous: make it durable and say so at
        once (commits on the primary wait for this), then verify. Otherwise verify before a
        flush position is reported. A flush position means "durable"; a verification failure
        stops the receiver before anything later is acknowledged."""
        archive = self.archive
        assert archive is not None
        if self.opts.synchronous and archive.written > archive.flushed:
            self._flush()
            self._send_status(conn)
            self._last_status = time.monotonic()
        elif self.opts.flush_batches and archive.written > archive.flushed:
            self._flush()
        now = time.monotonic()
        if self.opts.fsync_interval is not None:
            # Flushed at most every interval (the loss window), and each batch acknowledged
            # as written at once, with the flush position only as far as it is durable.
            if archive.written > archive.flushed:
                if now - self._last_flush >= self.opts.fsync_interval:
                    if archive.verifier is not None:
                        self._verify()
                    self._flush()
                    self._last_flush = now
                else:
                    self._wake_at(conn, self._last_flush + self.opts.fsync_interval)
            if (int(archive.written), int(archive.flushed)) != self._acked:
                self._send_status(conn)
                self._last_status = now
        if archive.verifier is not None and archive.written > self._verified_upto:
            sync = self.opts.synchronous
            if self._verify_due is None:
                self._verify_due = now + (VERIFY_DELAY_SYNC if sync else VERIFY_DELAY)
            if archive.written - self._verified_upto >= (VERIFY_BATCH_SYNC if sync
                                                         else VERIFY_BATCH) \
                    or now >= self._verify_due:
                self._verify()
            elif self._fast is None:  # (the C loop returns by then by itself)
                self._wake_at(conn, self._verify_due)
        interval = self.opts.status_interval
        if interval and now - self._last_status >= interval:
            if archive.verifier is not None:
                self._verify()
            if self.report_flush:
                self._flush()
            self._send_status(conn)
            self._last_status = now
        if self._status_on and now - self._status_shown >= 1.0:
            self._show_status(now)
        if self._stop is not None and self._end_event is None:
            self._end_event = "stop"
        if self.on_progress is not None and archive.flushed != self._reported[2]:
            self._report("streaming")
        if self._fast is None and self._fast_ok and self._end_event is None:
            # Synchronous, inside a segment, nothing pending: the C loop takes the socket.
            self._fast = syncpump.SyncPump.start(conn, archive, self.opts.endpos,
                                                 lambda: self._fast_ready(conn))

    async def _end_of_stream(self, conn: Connection, ev: Any) -> NextTimeline | str:
        archive = self.archive
        assert archive is not None
        if ev == "endpos":
            return await self._finish(conn, "endpos")
        if ev == "stop":
            return await self._finish(conn, self._stop or "signal")
        kind = type(ev)
        if kind is CopyDone:
            # End of timeline: finish what we have, then the handshake and the result set
            # naming the next timeline.
            if archive.verifier is not None:
                self._verify()
            self._flush()
            self._report("streaming")
            self._streaming = False
            res = await conn.end_copy()
            if res is None:
                raise ConnectionLost("server closed the connection at the end of the timeline")
            return NextTimeline.from_result(res)
        if kind is CommandComplete:
            # WalSndDone: the server shuts down after we confirmed everything it sent.
            self._flush()
            raise ConnectionLost("replication stream ended: the server is shutting down")
        if kind is ErrorResponse:
            raise ServerError("unexpected termination of replication stream", ev)
        raise ConnectionLost("server closed the connection unexpectedly")

    def _verify(self) -> None:
        assert self.archive is not None and self.archive.verifier is not None
        self._verified_upto = int(self.archive.written)
        self._verify_due = None
        try:
            self.archive.verifier.run()
        except VerifyError as exc:
            self.verification_failures += 1
            # Do not make the bad bytes look flushed; what was valid is already in DIR.
            valid = f"; WAL up to {exc.valid_end} is valid and kept in the archive" \
                if exc.valid_end is not None else ""
            raise ReceiveError(f"{exc}{valid}") from None

    def _flush(self) -> None:
        assert self.archive is not None
        self.archive.flush()

    def _send_status(self, conn: Connection) -> None:
        a = self.archive
        assert a is not None
        conn.send_status(a.written, a.flushed if self.report_flush else 0)
        self._acked = (int(a.written), int(a.flushed))

    async def _finish(self, conn: Connection, reason: str) -> str:
        """Stop streaming on our side: verify, flush, fsync, report, CopyDone."""
        archive = self.archive
        assert archive is not None
        if archive.verifier is not None:
            self._verify()
        archive.flush()
        try:
            self._send_status(conn)
            self._streaming = False
            await conn.end_copy(timeout=10.0)
        except (ConnectionLost, ServerError, ProtocolError, asyncio.TimeoutError) as exc:
            log.info("while ending the stream: %s", exc)
        archive.close_segment()
        return reason

    # -- the status line --------------------------------------------------------------------
    def _show_status(self, now: float) -> None:
        a = self.archive
        if a is None:
            return
        pos = int(a.written)
        rate = (pos - self._status_pos) / max(now - self._status_shown, 1e-6) / (1 << 20)
        lag = max(0, self._server_end - int(a.flushed))
        line = (f"{Lsn(pos)} (timeline {a.timeline}) flushed {a.flushed} lag "
                f"{_size(lag)} {rate:6.1f} MB/s")
        pad = max(0, self._status_len - len(line))
        self.out.write("\r" + line + " " * pad)
        self.out.flush()
        self._status_len = len(line)
        self._status_shown = now
        self._status_pos = pos

    def _end_status_line(self, record: logging.LogRecord) -> bool:
        self._clear_status()
        return True

    def _clear_status(self) -> None:
        if self._status_len:
            self.out.write("\n")
            self.out.flush()
            self._status_len = 0


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 10240 or unit == "GB":
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GB"


async def receive(options: ReceiveOptions, *, install_signals: bool = False,
                  on_start: Callable[[Receiver], None] | None = None,
                  on_progress: Callable[[ReceiverProgress], None] | None = None
                  ) -> ReceiveResult:
    """Run a receiver until endpos, a signal (install_signals) or an error it does not
    retry (ReceiveError, ConnectError, ArchiveError, ClusterMismatch: all XlogError).
    `on_progress` is the Receiver's hook (see ReceiverProgress)."""
    from .metrics import Publisher

    rec = Receiver(options, on_progress=on_progress)
    pub = Publisher(rec, options.metrics, options.status_file) \
        if options.metrics or options.status_file else None
    if pub is not None:
        await pub.start()
    if on_start is not None:
        on_start(rec)
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM) if install_signals else ()
    for s in sigs:
        loop.add_signal_handler(s, rec.request_stop, "signal")
    try:
        return await rec.run()
    finally:
        for s in sigs:
            loop.remove_signal_handler(s)
        if pub is not None:
            await pub.stop()


def run_receiver(options: ReceiveOptions) -> ReceiveResult:
    """receive() on a fresh event loop, with SIGINT/SIGTERM meaning "stop cleanly"."""
    _setup_logging(options.verbose)
    try:
        return run_loop(receive(options, install_signals=True))
    except OSError as exc:  # a local I/O error the layers below did not word themselves
        raise ReceiveError(f"I/O error: {exc}") from None


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("xlogtools.stream")
    if not any(getattr(h, "_xlogtools", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("xlogtools: %(message)s"))
        h._xlogtools = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


__all__ = ["ReceiveOptions", "ReceiveResult", "ReceiveError", "Receiver", "ReceiverProgress",
           "receive",
           "run_receiver", "ArchiveError", "ClusterMismatch", "ConnectError"]
