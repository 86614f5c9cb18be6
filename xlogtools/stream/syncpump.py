"""The per-commit loop of a synchronous receiver in C (`_syncpump.c`), run from the event loop.

While a synchronous receiver streams inside one segment, most rounds are the same: WAL for a
commit arrives, is written, fdatasync'ed and acknowledged. `SyncPump` takes the socket from
the transport (Connection.detach_reading) and does those rounds in one C call each, ready-
callback driven by the same event loop; anything else (another message kind, a segment's
end, end of file) is handed back, unhandled bytes first, to the Python path.  Without the
extension (or with XLOGTOOLS_NO_C=1) `AVAILABLE` is False and the Python path does it all.
"""
from __future__ import annotations

import asyncio
import os
from typing import Callable

from .archive import ArchiveError, WalArchive
from .connection import Connection
from .connerrors import ConnectionLost

# the extension's one function (_syncpump.pyi), or None without it
_c_pump: Callable[..., tuple[int, int, int, int, bytes, int, str, int, int]] | None
try:
    from ._syncpump import pump as _c_pump
except ImportError:  # pragma: no cover - no C compiler at install time
    _c_pump = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _c_pump = None

AVAILABLE = _c_pump is not None

# The walsender sends at most 128 kB of WAL per message (MAX_SEND_SIZE); a larger message is
# left to the Python path.
BUFFER_SIZE = 1 << 18
DRAINED, FOR_PYTHON, END_OF_FILE, OS_ERROR, ENDPOS = range(5)


class SyncPump:
    """The socket read by us: `round()` on each ready event, `close()` to give it back."""

    def __init__(self, conn: Connection, archive: WalArchive, fd: int, endpos: int,
                 on_ready: Callable[[], None]) -> None:
        self.conn = conn
        self.archive = archive
        self.fd = fd
        self.endpos = endpos
        self.buf = bytearray(BUFFER_SIZE)
        self.have = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, on_ready)

    @classmethod
    def start(cls, conn: Connection, archive: WalArchive, endpos: int | None,
              on_ready: Callable[[], None]) -> "SyncPump | None":
        """A pump when one can take over now (a segment is open and being written, nothing
        is pending on the connection), else None."""
        if _c_pump is None or archive.open_segment_target() is None:
            return None
        if endpos is not None and archive.written >= endpos:
            return None
        fd = conn.detach_reading()
        if fd is None:
            return None
        return cls(conn, archive, fd, int(endpos or 0), on_ready)

    def round(self, deadline: float | None = None, max_bytes: int = 0) -> tuple[int, int, int, int]:
        """One C round, and with a `deadline` (time.monotonic()) more while the socket keeps
        becoming readable before it (and less than max_bytes of WAL were written): (stop, WAL
        bytes written, largest server WAL end seen, rounds done).  Raises ConnectionLost or
        ArchiveError for an OS error."""
        a = self.archive
        target = a.open_segment_target()
        assert target is not None and _c_pump is not None
        segfd, base = target
        old = int(a.written)
        stop, self.have, pos, wal_end, unsent, err, at, rounds, flushed = _c_pump(
            self.fd, self.buf, self.have, segfd, base, a.seg_size, old, int(a.flushed),
            self.endpos, int(deadline * 1e6) if deadline is not None else 0, max_bytes)
        if pos != old:
            a.written_by_caller(pos, flushed)
        if unsent:
            self.conn.send_raw(unsent)
        if stop == OS_ERROR:
            why = os.strerror(err)
            if at in ("recv", "send"):
                what = "receive data from" if at == "recv" else "send data to"
                raise ConnectionLost(f"could not {what} server: {why}")
            name = f"{a.open_file_name}.partial"
            verb = "write to" if at == "pwrite" else "fsync"
            raise ArchiveError(f"could not {verb} file \"{name}\": {why}",
                               file=str(a.dir / name), errno=err)
        return stop, pos - old, wal_end, rounds

    def close(self) -> None:
        """Give the socket back: unhandled bytes first into the protocol's buffer."""
        self._loop.remove_reader(self.fd)
        self.conn.attach_reading(self.fd, bytes(self.buf[:self.have]))
        self.have = 0
