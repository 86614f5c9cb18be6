"""The search back through a segment's bytes for checkpoint records, without decoding the
records between (locate's checkpoint search; the reader confirms each candidate).

A checkpoint record (XLOG_CHECKPOINT_SHUTDOWN or _ONLINE of access/xlog.c, CreateCheckPoint)
always has the same length: XLogRecord, XLR_BLOCK_ID_DATA_SHORT, a length byte and CheckPoint
(catalog/pg_control.h), and no xid (it is written outside any transaction). Records start at
MAXALIGNed (8-byte) offsets; the first 26 bytes of a candidate name its resource manager, its
info and the length of its main data (xlogrecord.h).
"""
from __future__ import annotations

import mmap
import os
from typing import Any, Callable, Iterator

from ..parse import layout as L
from ..parse.rmgr.ids import RM_XLOG_ID
from ..parse.rmgr.xlog import CHECKPOINT_ONLINE, CHECKPOINT_SHUTDOWN, SIZEOF_CHECKPOINT

# XLogRecord + XLR_BLOCK_ID_DATA_SHORT + length byte + CheckPoint: every checkpoint record.
CHECKPOINT_TOT_LEN = L.SIZE_OF_XLOG_RECORD + 2 + SIZEOF_CHECKPOINT
# xl_tot_len and xl_xid (a checkpoint is written outside any transaction): 8 bytes to search
# for, rarer in other data (and found faster) than the length alone
_CKPT_NEEDLE = L.U32.pack(CHECKPOINT_TOT_LEN) + bytes(4)
_c_rfind_aligned: Callable[[Any, Any, int, int], int] | None
try:  # the C extension of the reader's walk also searches back for it, 8-byte word by word
    from ..parse._walscan import rfind_aligned as _c_rfind_aligned
except ImportError:  # pragma: no cover - exercised by XLOGTOOLS_NO_C=1 test runs
    _c_rfind_aligned = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _c_rfind_aligned = None


def _drop_pages(buf: Any) -> None:
    """Let go of a mapped segment's pages (they stay in the page cache; touching them again
    maps them again): a search back through many segments without a checkpoint would
    otherwise hold every page it looked at, in the process's resident memory."""
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            buf.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


def _rfind_needle(buf: Any, hi: int) -> int:
    """The last 8-byte-aligned offset p with p + 8 <= hi where _CKPT_NEEDLE stands (records
    are MAXALIGNed), or -1."""
    if _c_rfind_aligned is not None:
        return int(_c_rfind_aligned(buf, _CKPT_NEEDLE, 0, hi))
    pos = hi
    while True:
        pos = buf.rfind(_CKPT_NEEDLE, 0, pos)
        if pos < 0 or pos % 8 == 0:
            return int(pos)
        pos += len(_CKPT_NEEDLE) - 1  # a hit starting before this one


def peek(buf: bytes, pos: int, n: int, blcksz: int) -> bytes | None:
    """n bytes of a record starting at segment offset pos, across a page header; None when
    they run into the next segment (the reader decides those)."""
    room = blcksz - pos % blcksz
    if room >= n:
        return buf[pos:pos + n]
    nxt = pos + room
    if nxt >= len(buf):
        return None
    return buf[pos:nxt] + buf[nxt + L.SIZE_OF_SHORT_PHD:nxt + L.SIZE_OF_SHORT_PHD + n - room]


def checkpoint_candidates(buf: Any, below: int, blcksz: int) -> Iterator[int]:
    """The segment offsets, newest first, where a checkpoint record starting before offset
    `below` of segment `buf` may stand: its xl_tot_len and xl_xid, outside a page header, and
    (when its first 26 bytes lie in this segment) info without XLR flags, rmid XLOG, main
    data of CheckPoint's size. Searched through, the segment's mapped pages are let go."""
    pos = min(len(buf), below + len(_CKPT_NEEDLE) - 1)  # hits starting before `below`
    while True:
        pos = _rfind_needle(buf, pos)
        if pos < 0:
            _drop_pages(buf)  # searched through, most likely not read again
            return
        if pos % blcksz >= L.SIZE_OF_SHORT_PHD:
            head = peek(buf, pos, 26, blcksz)
            if head is None or (head[17] == RM_XLOG_ID and head[16] in (
                    CHECKPOINT_SHUTDOWN, CHECKPOINT_ONLINE)
                    and head[24] == L.XLR_BLOCK_ID_DATA_SHORT
                    and head[25] == SIZEOF_CHECKPOINT):
                yield pos
        pos += len(_CKPT_NEEDLE) - 1  # look for hits starting before this one next
