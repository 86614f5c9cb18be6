"""START_REPLICATION on the walsender side: the WalSndLoop of one client (XLogData up to what
may be sent, keepalives, the end of a historic timeline) and the standby's replies.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from ..lsn import Lsn
from ..parse.source import SegmentFile
from .backend import (INT8OID, MAX_SEND_SIZE, OBJECT_NOT_IN_STATE, TEXTOID, UNDEFINED_FILE, BState,
                      HotStandbyFeedback, encode_xlogdata, error_response, notice_response,
                      result_set)
from .replcommands import CommandError, StartReplication
from .messages import (NEED_DATA, CommandComplete, ConnectionClosed, CopyBothResponse, CopyDone,
                       PrimaryKeepalive, StandbyStatusUpdate, Terminate, pg_now)
from .sendable import TimelinePlan
from .sessionio import Drop, SessionIO

log = logging.getLogger("xlogtools.serve")

SEND_BURST = 32 * MAX_SEND_SIZE  # bytes sent before looking at the client's messages again


class WalStreamer:
    """The replication stream of one session (`SessionIO`): `await start_replication(cmd)`."""

    def __init__(self, session: SessionIO) -> None:
        self.session = session
        self.server = session.server
        self.opts = session.opts
        self.archive = session.archive
        self.reader = session.reader
        self.writer = session.writer
        self.st = session.st
        self.be = session.be
        self.send = session.send
        self.drain = session.drain
        self.timed_out = session.timed_out

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
                    reader.result()  # raises the client's protocol error, or Drop
                if self.be.state in (BState.QUERY,):
                    return plan  # both CopyDones exchanged
                now = time.monotonic()
                silent = now - self.session.last_recv
                if timeout and silent > timeout:
                    self.timed_out()
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
                    end = min(end, st.sent + SEND_BURST)
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
            elif not reader.cancelled():
                # the reader failed too (the client went away) while the loop ended on its
                # own error: its exception is collected, not left to the event loop's
                # "Task exception was never retrieved"
                reader.exception()

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
            self.server.wake()
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
        changed = asyncio.ensure_future(self.server.wait_changed())
        msg = asyncio.ensure_future(self.session.got_message.wait())
        try:
            await asyncio.wait({changed, msg, reader}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            msg.cancel()
        self.session.got_message.clear()

    async def read_replies(self) -> None:
        """Standby messages during COPY BOTH, until the client's CopyDone."""
        st = self.st
        while True:
            ev = self.be.next_event()
            if ev is NEED_DATA:
                data = await self.reader.read(65536)
                self.be.receive_data(data)
                continue
            self.session.last_recv = time.monotonic()
            st.last_reply = time.time()
            if isinstance(ev, StandbyStatusUpdate):
                st.write, st.flush, st.apply = ev.write, ev.flush, ev.apply
                if ev.reply_requested:
                    self.send(PrimaryKeepalive(st.sent, pg_now(), False))
            elif isinstance(ev, HotStandbyFeedback):
                st.hot_standby_xmin = ev.xmin
            elif isinstance(ev, CopyDone):
                self.session.got_message.set()
                return
            elif isinstance(ev, (Terminate, ConnectionClosed)):
                raise Drop()
            self.session.got_message.set()



__all__ = ["WalStreamer", "SEND_BURST"]
