"""Online verification of a receiver's stream (`receive --verify`): `StreamVerifier` decodes
every record as it arrives with the shared reader (CRC, xl_prev chain, page headers,
fragment headers) and stops at the first bad one (VerifyError).
"""
from __future__ import annotations

import ctypes
import mmap
import os

from ..errors import XlogError
from ..lsn import Lsn, segment_name
from ..parse import layout as L
from ..parse.reader import EndReason, WalReader
from ..parse.source import ClusterInfo, MemorySource, parse_long_header


class VerifyError(XlogError):
    """Streamed WAL failed verification; `valid_end` is where the valid WAL ends."""

    def __init__(self, message: str, *, lsn: Lsn, valid_end: Lsn | None) -> None:
        super().__init__(message, lsn=lsn)
        self.valid_end = valid_end


def _zero(buf: mmap.mmap) -> None:
    """memset(buf, 0, len(buf))."""
    view = ctypes.c_char.from_buffer(buf)
    try:
        ctypes.memset(ctypes.addressof(view), 0, len(buf))
    finally:
        del view


class StreamVerifier:
    """Decodes the records of a replication stream as the bytes arrive.

    The segment being received is kept in memory; after each batch, `run()` reads from the
    end of the last verified record to the end of what arrived. A record that is not all
    there yet is left for the next run; anything else that stops the reader is damage.
    """

    def __init__(self, seg_size: int, sysid: int) -> None:
        self.seg_size = seg_size
        self.sysid = sysid
        self.timeline = 0
        self.cluster: ClusterInfo | None = None
        self.buffers: dict[int, mmap.mmap] = {}
        self._spare: list[mmap.mmap] = []
        self._mapped: set[int] = set()  # segments read from their files
        self._received: dict[int, int] = {}
        self._first: int | None = None  # where streaming began (a segment start)
        self.next_lsn: Lsn | None = None  # end of the last verified record
        self.last_lsn: Lsn | None = None  # start of the last verified record
        self.records = 0
        self._verified_to = 0

    def start_segment(self, segno: int, path: str | os.PathLike[str] | None = None) -> None:
        """A segment file is (re)opened: its bytes arrive from its start again. With `path`
        (the file they are written to, already the segment's full size), the verifier reads
        them from the file through a read-only shared mapping, which sees each write at once:
        no copy. Without, feed() copies them into memory of its own."""
        self._drop(segno)
        keep = segno - 1 if self.next_lsn is None else min(segno - 1,
                                                            self.next_lsn // self.seg_size)
        for old in [s for s in self.buffers if s < keep]:
            self._drop(old)
            self._received.pop(old, None)
        if path is not None:
            fd = os.open(path, os.O_RDONLY)
            try:
                buf = mmap.mmap(fd, self.seg_size, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            self._mapped.add(segno)
        elif self._spare:
            # A fresh anonymous mapping costs a page fault per 4 kB written, more than the
            # copy itself; a reused one is cleared to zeros instead.
            buf = self._spare.pop()
            _zero(buf)
        else:
            buf = mmap.mmap(-1, self.seg_size)
        self.buffers[segno] = buf
        self._received[segno] = 0
        if self._first is None:
            self._first = segno * self.seg_size

    def _drop(self, segno: int) -> None:
        buf = self.buffers.pop(segno, None)
        if buf is None:
            return
        if segno in self._mapped or len(self._spare) >= 1:
            self._mapped.discard(segno)
            buf.close()
        else:
            self._spare.append(buf)

    def close(self) -> None:
        for segno in list(self.buffers):
            self._drop(segno)
        for buf in self._spare:
            buf.close()
        self._spare.clear()

    def reads_file(self, segno: int) -> bool:
        """Whether segment `segno` is read from its file (then writes need not be fed)."""
        return segno in self._mapped

    def received_up_to(self, segno: int, end: int) -> None:
        """Bytes up to offset `end` of file-backed segment `segno` were written (not at its
        start: the first write of a segment goes through feed(), which checks the header)."""
        self._received[segno] = end

    def feed(self, segno: int, offset: int, data: memoryview) -> None:
        """`data` arrived at `offset` of segment `segno` (and, for a segment read from its
        file, was written there)."""
        buf = self.buffers[segno]
        if segno not in self._mapped:
            buf[offset:offset + len(data)] = data
        self._received[segno] = offset + len(data)
        if self.cluster is None and offset == 0:
            info = parse_long_header(bytes(buf[:L.SIZE_OF_LONG_PHD]),
                                     segment_name(self.timeline or 1, segno, self.seg_size))
            if info is not None:
                if info.sysid != self.sysid:
                    raise VerifyError(f"streamed WAL is from a different database system: its "
                                      f"system identifier is {info.sysid}, the server said "
                                      f"{self.sysid}", lsn=Lsn(segno * self.seg_size),
                                      valid_end=None)
                self.cluster = info

    @property
    def received_end(self) -> int:
        if not self._received:
            return 0
        segno = max(self._received)
        return segno * self.seg_size + self._received[segno]

    def run(self) -> int:
        """Verify what has arrived; the number of records checked (VerifyError on damage)."""
        end = self.received_end
        start = self.next_lsn if self.next_lsn is not None else self._first
        if self.cluster is None or start is None or end - start < L.SIZE_OF_XLOG_RECORD \
                or end <= self._verified_to:
            return 0
        tli = self.timeline or 1
        # The in-memory segments are zero-padded to the segment size, so the reader's page
        # checks see zeros, not a short file, past what has arrived.
        source = MemorySource(self.cluster, {(tli, s): b for s, b in self.buffers.items()})
        reader = WalReader(source, start=start, end=end,
                           timeline=tli, exact_start=self.next_lsn is not None,
                           prev_lsn=self.last_lsn)
        n = reader.scan()
        if reader.last_record_lsn is not None and n:
            self.last_lsn = reader.last_record_lsn
            self.next_lsn = reader.resume_lsn
        self.records += n
        self._verified_to = end
        eow = reader.end_of_wal
        if eow is None or eow.reason is EndReason.END_LSN_REACHED:
            return n
        # Stopped at a page or segment that has not (all) arrived yet: not damage.
        if int(eow.error_lsn) + L.SIZE_OF_LONG_PHD > end or \
                eow.reason is EndReason.MISSING_SEGMENT:
            return n
        raise VerifyError(f"WAL verification failed: {eow.message}", lsn=eow.error_lsn,
                          valid_end=self.next_lsn)


__all__ = ["StreamVerifier", "VerifyError"]
