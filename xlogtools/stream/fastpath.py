"""The receiver's fast path: in a synchronous stream the C loop (`syncpump.SyncPump`) takes
the socket between the Python work (verification, the status interval, the status line) and
answers each batch of WAL itself (write, fsync, status update).
"""
from __future__ import annotations

import time
from typing import Any

from . import syncpump
from .connection import Connection
from .recvopts import VERIFY_BATCH_SYNC, VERIFY_DELAY_SYNC


class FastPath:
    """The C loop of `stream` (a copystream.CopyStream), which does the rest."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.loop: syncpump.SyncPump | None = None  # the C loop, while it reads the socket
        self.ok = False  # the stream may hand it the socket

    def allow(self, synchronous: bool) -> None:
        """At the start of a stream: the C loop is for synchronous streams, when built."""
        self.ok = synchronous and syncpump.AVAILABLE

    def start(self, conn: Connection, archive: Any, endpos: Any) -> None:
        """Synchronous, inside a segment, nothing pending: the C loop takes the socket."""
        self.loop = syncpump.SyncPump.start(conn, archive, endpos, lambda: self.ready(conn))

    def ready(self, conn: Connection) -> None:
        """The socket is readable while the C loop has it (SyncPump): one round, then what
        CopyStream.pump does after its messages; never raises (like on_data)."""
        fast, s = self.loop, self.stream
        if fast is None or s.end_event is not None or s.pump_error is not None:
            return
        try:
            stop, moved, wal_end, rounds = fast.round(*self.budget())
            s.result.c_loop_rounds += rounds
            if moved:
                s.result.bytes_received += moved
                s.last_status = time.monotonic()
            if wal_end > s.server_end:
                s.server_end = wal_end
            if stop == syncpump.DRAINED:
                s.idle_work(conn)
            elif stop == syncpump.ENDPOS:
                s.reached_endpos()
            else:  # a message for the Python path, or end of file: give the socket back
                if stop == syncpump.END_OF_FILE:
                    self.ok = False
                self.leave()
                s.pump(conn)
        except BaseException as exc:  # handed to the coroutine, raised there
            s.pump_error = exc
        if s.end_event is not None or s.pump_error is not None:
            self.leave()
            conn.wake()

    def budget(self) -> tuple[float | None, int]:
        """How long (a time.monotonic() deadline) and how much WAL (bytes) the C loop may go
        on with rounds before the Python work between rounds is due: verification (within
        VERIFY_DELAY_SYNC and VERIFY_BATCH_SYNC of the WAL's arrival), the status interval,
        the status line; (None, 0): one round only (a stop was asked for, a progress hook
        waits for each durable piece)."""
        s = self.stream
        if s.rec.stopping is not None or s.rec.on_progress is not None:
            return None, 0
        now = time.monotonic()
        deadline = now + VERIFY_DELAY_SYNC
        a = s.archive
        max_bytes = 0
        if a is not None and a.verifier is not None:
            if s.verify_due is not None:
                deadline = min(deadline, s.verify_due)
            max_bytes = max(1, VERIFY_BATCH_SYNC - (int(a.written) - s.verified_upto))
        interval = s.opts.status_interval
        if interval:
            deadline = min(deadline, s.last_status + interval)
        if s.status_line.on:
            deadline = min(deadline, s.status_line.shown + 1.0)
        return (deadline, max_bytes) if deadline > now else (None, 0)

    def leave(self) -> None:
        fast, self.loop = self.loop, None
        if fast is not None:
            fast.close()


__all__ = ["FastPath"]
