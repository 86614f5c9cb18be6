"""A receiver's copy stream (pg_receivewal's HandleCopyStream): WAL written as it arrives,
keepalives answered, verification, flushes and status updates at their time, the end of a
timeline or of the stream. The fast path of a synchronous stream is `fastpath.FastPath`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..lsn import Lsn
from .verifier import VerifyError
from .connection import Connection
from .connerrors import ConnectionLost, ServerError
from .fastpath import FastPath
from .messages import (NEED_DATA, CommandComplete, ConnectionClosed, CopyDone, ErrorResponse,
                       PrimaryKeepalive, ProtocolError, XLogData)
from .protocol import NextTimeline
from .recvopts import (VERIFY_BATCH, VERIFY_BATCH_SYNC, VERIFY_DELAY, VERIFY_DELAY_SYNC,
                       ReceiveError)

log = logging.getLogger("xlogtools.stream")


class CopyStream:
    """The streams of receiver `rec` (a receiver.Receiver), one at a time: `await run()`."""

    def __init__(self, rec: Any) -> None:
        self.rec = rec
        self.opts = rec.opts
        self.result = rec.result
        self.status_line = rec.status_line
        self.fast = FastPath(self)
        self.streaming = False
        self.server_end = 0  # the server's WAL end as it last reported it
        self.verified_upto = 0
        self.verify_due: float | None = None
        self.last_status = 0.0
        self.end_event: Any = None  # what ended the stream: an event, "endpos" or "stop"
        self.pump_error: BaseException | None = None
        self._last_flush = 0.0  # monotonic time of the last flush (--fsync-interval)
        self._due_timer: asyncio.TimerHandle | None = None  # see wake_at
        self._due_when = 0.0
        self._acked = (0, 0)  # (written, flushed) last sent in a status update

    @property
    def archive(self) -> Any:
        return self.rec.archive

    async def run(self, conn: Connection, start: Lsn) -> NextTimeline | str:
        """HandleCopyStream: returns the next timeline at the end of one, or the stop
        reason; raises ConnectionLost/ServerError when the server goes away.

        Messages are handled by `pump`, called by the I/O layer as soon as data arrives (no
        task switch per message: a synchronous standby answers every commit); this coroutine
        wakes for timers (status interval, verification, status line), a stop request, and
        the events that end the stream, which pump leaves to it."""
        archive = self.archive
        assert archive is not None
        archive.written = Lsn(start)
        archive.flushed = Lsn(start)
        self.verified_upto = int(start)
        self.verify_due = None
        self.last_status = time.monotonic()
        self.end_event = None
        self.pump_error = None
        self.fast.allow(self.opts.synchronous)
        self.streaming = True
        self.status_line.pos = start
        self.status_line.shown = time.monotonic()
        interval = self.opts.status_interval
        self.rec.report("streaming")
        conn.set_data_handler(lambda: self.on_data(conn))
        try:
            while True:
                if self.pump_error is not None:
                    raise self.pump_error
                if self.end_event is None:
                    self.pump(conn)
                ev = self.end_event
                if ev is not None:
                    self.fast.leave()
                    conn.set_data_handler(None)
                    return await self._end_of_stream(conn, ev)
                now = time.monotonic()
                timeout = interval - (now - self.last_status) if interval else None
                if self.status_line.on:
                    timeout = 1.0 if timeout is None else min(timeout, 1.0)
                await conn.wait(timeout)
        finally:
            self.fast.leave()
            conn.set_data_handler(None)
            if self._due_timer is not None:
                self._due_timer.cancel()
                self._due_timer = None
            if self.result.c_loop_rounds:
                log.info("%d synchronous rounds were done by the C loop so far",
                         self.result.c_loop_rounds)

    def on_data(self, conn: Connection) -> None:
        """The I/O layer's data callback: never raises; wakes run() when it must act."""
        if self.end_event is not None or self.pump_error is not None:
            return
        try:
            self.pump(conn)
        except BaseException as exc:  # handed to the coroutine, raised there
            self.pump_error = exc
        if self.end_event is not None or self.pump_error is not None:
            conn.wake()

    def wake_at(self, conn: Connection, when: float) -> None:
        """Do the work between batches (idle_work) again at `when` (time.monotonic()), also
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
        self.on_data(conn)

    def reached_endpos(self) -> None:
        a = self.archive
        assert a is not None
        log.info("stopped log streaming at %s (timeline %d)", a.written, a.timeline)
        self.end_event = "endpos"

    def pump(self, conn: Connection) -> None:
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
                if ev.wal_end > self.server_end:  # type: ignore[union-attr]
                    self.server_end = ev.wal_end  # type: ignore[union-attr]
                if endpos is not None and archive.written >= endpos:
                    self.reached_endpos()
                    return
            elif kind is PrimaryKeepalive:
                if ev.wal_end > self.server_end:  # type: ignore[union-attr]
                    self.server_end = ev.wal_end  # type: ignore[union-attr]
                if ev.reply_requested:  # type: ignore[union-attr]
                    if archive.verifier is not None:
                        self.verify()
                    if self.rec.report_flush:
                        self.flush()
                    self.send_status(conn)
                    self.last_status = time.monotonic()
            elif kind in (CopyDone, CommandComplete, ErrorResponse, ConnectionClosed):
                self.end_event = ev
                return
            # CopyData of other kinds, notices, parameter changes: nothing to do
        self.idle_work(conn)

    def idle_work(self, conn: Connection) -> None:
        """Everything that arrived is written. Synchronous: make it durable and say so at
        once (commits on the primary wait for this), then verify. Otherwise verify before a
        flush position is reported. A flush position means "durable"; a verification failure
        stops the receiver before anything later is acknowledged."""
        archive = self.archive
        assert archive is not None
        if self.opts.synchronous and archive.written > archive.flushed:
            self.flush()
            self.send_status(conn)
            self.last_status = time.monotonic()
        elif self.opts.flush_batches and archive.written > archive.flushed:
            self.flush()
        now = time.monotonic()
        if self.opts.fsync_interval is not None:
            # Flushed at most every interval (the loss window), and each batch acknowledged
            # as written at once, with the flush position only as far as it is durable.
            if archive.written > archive.flushed:
                if now - self._last_flush >= self.opts.fsync_interval:
                    if archive.verifier is not None:
                        self.verify()
                    self.flush()
                    self._last_flush = now
                else:
                    self.wake_at(conn, self._last_flush + self.opts.fsync_interval)
            if (int(archive.written), int(archive.flushed)) != self._acked:
                self.send_status(conn)
                self.last_status = now
        if archive.verifier is not None and archive.written > self.verified_upto:
            sync = self.opts.synchronous
            if self.verify_due is None:
                self.verify_due = now + (VERIFY_DELAY_SYNC if sync else VERIFY_DELAY)
            if archive.written - self.verified_upto >= (VERIFY_BATCH_SYNC if sync
                                                        else VERIFY_BATCH) \
                    or now >= self.verify_due:
                self.verify()
            elif self.fast.loop is None:  # (the C loop returns by then by itself)
                self.wake_at(conn, self.verify_due)
        interval = self.opts.status_interval
        if interval and now - self.last_status >= interval:
            if archive.verifier is not None:
                self.verify()
            if self.rec.report_flush:
                self.flush()
            self.send_status(conn)
            self.last_status = now
        if self.status_line.on and now - self.status_line.shown >= 1.0:
            self.status_line.show(now, archive, self.server_end)
        if self.rec.stopping is not None and self.end_event is None:
            self.end_event = "stop"
        if self.rec.on_progress is not None and archive.flushed != self.rec.reported_flushed:
            self.rec.report("streaming")
        if self.fast.loop is None and self.fast.ok and self.end_event is None:
            # Synchronous, inside a segment, nothing pending: the C loop takes the socket.
            self.fast.start(conn, archive, self.opts.endpos)

    async def _end_of_stream(self, conn: Connection, ev: Any) -> NextTimeline | str:
        archive = self.archive
        assert archive is not None
        if ev == "endpos":
            return await self._finish(conn, "endpos")
        if ev == "stop":
            return await self._finish(conn, self.rec.stopping or "signal")
        kind = type(ev)
        if kind is CopyDone:
            # End of timeline: finish what we have, then the handshake and the result set
            # naming the next timeline.
            if archive.verifier is not None:
                self.verify()
            self.flush()
            self.rec.report("streaming")
            self.streaming = False
            res = await conn.end_copy()
            if res is None:
                raise ConnectionLost("server closed the connection at the end of the timeline")
            return NextTimeline.from_result(res)
        if kind is CommandComplete:
            # WalSndDone: the server shuts down after we confirmed everything it sent.
            self.flush()
            raise ConnectionLost("replication stream ended: the server is shutting down")
        if kind is ErrorResponse:
            raise ServerError("unexpected termination of replication stream", ev)
        raise ConnectionLost("server closed the connection unexpectedly")

    def verify(self) -> None:
        assert self.archive is not None and self.archive.verifier is not None
        self.verified_upto = int(self.archive.written)
        self.verify_due = None
        try:
            self.archive.verifier.run()
        except VerifyError as exc:
            self.rec.verification_failures += 1
            # Do not make the bad bytes look flushed; what was valid is already in DIR.
            valid = f"; WAL up to {exc.valid_end} is valid and kept in the archive" \
                if exc.valid_end is not None else ""
            raise ReceiveError(f"{exc}{valid}") from None

    def flush(self) -> None:
        assert self.archive is not None
        self.archive.flush()

    def send_status(self, conn: Connection) -> None:
        a = self.archive
        assert a is not None
        conn.send_status(a.written, a.flushed if self.rec.report_flush else 0)
        self._acked = (int(a.written), int(a.flushed))

    async def _finish(self, conn: Connection, reason: str) -> str:
        """Stop streaming on our side: verify, flush, fsync, report, CopyDone."""
        archive = self.archive
        assert archive is not None
        if archive.verifier is not None:
            self.verify()
        archive.flush()
        try:
            self.send_status(conn)
            self.streaming = False
            await conn.end_copy(timeout=10.0)
        except (ConnectionLost, ServerError, ProtocolError, asyncio.TimeoutError) as exc:
            log.info("while ending the stream: %s", exc)
        archive.close_segment()
        return reason


__all__ = ["CopyStream"]
