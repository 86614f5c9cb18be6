"""Relay mode of `xlogtools serve --upstream CONNSTR`: a receiver and a walsender in one
event loop, sharing the archive directory.

    await relay(ServeOptions("/srv/wal", users=load_users("users.txt"), port=5499),
                ReceiveOptions("/srv/wal", conninfo="host=db1 user=rep", slot="relay1"))

The receiver (`receiver.Receiver`, what `xlogtools receive` runs) writes DIR and fsyncs
after every batch of messages, as a standby's walreceiver does; its progress hook hands each
new flushed position (and the timeline it belongs to) to `WalSender.wal_flushed`, which wakes
the streaming sessions: a standby gets WAL as soon as it is durable on the relay, from the
`.partial` segment still being written too, never before. This is a cascading standby
without a database: IDENTIFY_SYSTEM answers the upstream's system identifier and timeline and
the relay's flushed position; a timeline switch upstream is followed by the receiver, then by
the standbys (the old timeline ends at its switch point, as for a cascading walsender).

When the upstream goes away the relay serves what DIR holds and reconnects with backoff
(0.5 s doubling to 10 s), also when the upstream is not there at start. Errors a new
connection would not fix (authentication or pg_hba refusals, a missing slot, another
cluster's WAL in DIR, failed verification, local I/O errors) end the relay: `relay()` raises
them (XlogError) after closing the clients' connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Callable

from .receiver import Receiver
from .recvopts import ReceiveOptions, ReceiveResult, ReceiverProgress
from .sender import ServeError, ServeOptions, WalSender
from .status import UpstreamStatus

log = logging.getLogger("xlogtools.serve")
STOP_TIMEOUT = 30.0  # seconds the receiver gets to flush and end its stream on a stop


class _UpstreamPrefix(logging.Filter):
    """The receiver's messages, in the serve log, say they are about the upstream."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith("upstream: "):
            record.msg = "upstream: " + record.msg
        return True


class Relay:
    """A WalSender over DIR fed by a Receiver writing DIR; `await run()`."""

    def __init__(self, serve_options: ServeOptions, receive_options: ReceiveOptions) -> None:
        if receive_options.create_slot or receive_options.drop_slot:
            raise ServeError("a relay does not run one-shot slot commands: use ensure_slot "
                             "(serve --create-slot) to create the slot before streaming")
        ropts = replace(receive_options, directory=serve_options.directory,
                        flush_batches=True, retry_first=True, status_line=False)
        self.sender = WalSender(serve_options)
        self.sender.archive.track_partial_mtime = False
        self.receiver = Receiver(ropts, on_progress=self._progress)
        p = self.receiver.params
        h = p.hosts[0]
        self.status = UpstreamStatus(h.socket_path if h.is_unix else f"{h.host}:{h.port}",
                                     p.user, p.application_name or "", ropts.slot)
        self.sender.upstream = self.status

    # -- the hook ---------------------------------------------------------------------------
    def _progress(self, p: ReceiverProgress) -> None:
        st = self.status
        prev_state, prev_tli = st.state, st.timeline
        if p.server:
            st.server = p.server
        if p.state != prev_state:
            st.state = p.state
            st.since = time.time()
        if p.timeline:
            st.timeline = p.timeline
        st.received, st.flushed = int(p.received), int(p.flushed)
        st.server_end = max(st.server_end, int(p.server_end))
        if p.state == "streaming":
            self.sender.wal_flushed(p.timeline, p.flushed)
            if prev_state != "streaming":
                log.info("upstream: streaming from %s at %s (timeline %d)", st.server,
                         p.flushed, p.timeline)
            elif prev_tli and p.timeline != prev_tli:
                log.info("upstream: now on timeline %d; clients follow at the switch point",
                         p.timeline)
            st.ever_streamed = True
            st.last_error = ""
            return
        self.sender.wal_writer_gone()
        if p.state == "disconnected":
            st.disconnects += 1
            st.last_error = p.detail
            if prev_state == "streaming":
                log.warning("upstream: lost (%s); serving the WAL in DIR, up to %s, while "
                            "reconnecting", p.detail, p.flushed)
            elif not st.ever_streamed and st.disconnects == 1:
                log.warning("upstream: %s; serving the WAL already in %s meanwhile, trying "
                            "again with backoff", p.detail, self.sender.options.directory)

    # -- running ----------------------------------------------------------------------------
    async def run(self, *, ready: Callable[[WalSender], None] | None = None) -> ReceiveResult:
        """Listen, start the receiver, serve until cancelled (then the receiver flushes,
        reports and ends its stream) or until the receiver stops on an error (raised)."""
        await self.sender.start()
        if ready is not None:
            ready(self.sender)
        prefix = _UpstreamPrefix()
        rlog = logging.getLogger("xlogtools.stream")
        rlog.addFilter(prefix)
        recv = asyncio.ensure_future(self.receiver.run())
        srv = asyncio.ensure_future(self.sender.serve_forever())
        try:
            done, _ = await asyncio.wait({recv, srv}, return_when=asyncio.FIRST_COMPLETED)
            if recv in done:
                try:
                    result = recv.result()  # an XlogError is raised to the caller as it is
                except OSError as exc:  # a local I/O error the layers below did not word
                    raise ServeError(f"I/O error in {self.sender.options.directory}: "
                                     f"{exc}") from None
                log.info("upstream: receiver stopped (%s)", result.stop_reason)
                return result
            srv.result()
            raise ServeError("the server stopped listening")
        finally:
            if not recv.done():
                self.receiver.request_stop("signal")
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(recv), STOP_TIMEOUT)
            srv.cancel()
            with contextlib.suppress(BaseException):
                await srv
            await self.sender.close()
            rlog.removeFilter(prefix)


async def relay(serve_options: ServeOptions, receive_options: ReceiveOptions, *,
                ready: Callable[[WalSender], None] | None = None) -> ReceiveResult:
    """Serve DIR to standbys while receiving it from the upstream (`receive_options.conninfo`
    etc.; its directory is the served one). Runs until cancelled; see the module docstring."""
    return await Relay(serve_options, receive_options).run(ready=ready)


__all__ = ["Relay", "relay"]
