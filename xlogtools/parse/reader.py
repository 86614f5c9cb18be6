"""Record assembly across pages and segments, page and record validation, CRC-32C
(XLogDecodeNextRecord, ReadPageInternal, XLogReaderValidatePageHeader, ValidXLogRecord and
XLogFindNextRecord of access/transam/xlogreader.c), PostgreSQL 13-18.

The reader yields `Record`s; when it cannot go on it stops and sets `end_of_wal` to an
`EndOfWal` that says why, where and in PostgreSQL's words. That is a result, not an error:
the end of valid WAL is where every live pg_wal stops.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, cast

from ..lsn import Lsn
from . import layout as L
from .batch import PyBuilder, Run, WalBatch
from .record import BlockRef, DecodeError, Record, decode_fragments
from .record import DATA_SHORT_ID, ONE_BLOCK, ONE_BLOCK_END, SIMPLE_BLOCK_MASK
from .endofwal import EndOfWal, EndReason, WalStop
from .segments import SegmentPages
from .source import ClusterInfo, MemorySource, WalSource

__all__ = ["EndOfWal", "EndReason", "WalReader", "complete_records_end", "crc32c"]

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from ._walscan import Builder


class _Crc32c(Protocol):
    """crc32c(data, value=0): the extension's, or the crc32c package's."""

    def __call__(self, data: ReadableBuffer, value: int = 0, /) -> int: ...


# the extension's names, or None without it (the stub _walscan.pyi has their signatures)
_cscan: Callable[..., tuple[int, int, int, int, int]] | None
_c_crc32c: _Crc32c | None
_CBuilder: type[Builder] | None
crc32c: _Crc32c
try:  # the C walk of ordinary records (setup.py builds it when a compiler is there)
    from ._walscan import Builder as _CBuilder, crc32c as _c_crc32c, scan as _cscan
except ImportError:  # pragma: no cover - exercised by XLOGTOOLS_NO_C=1 test runs
    _cscan = _c_crc32c = _CBuilder = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _cscan = _c_crc32c = _CBuilder = None
if _c_crc32c is not None:
    crc32c = _c_crc32c  # the same CRC-32C (hardware when the CPU has it), without importing
else:                   # the crc32c package (which reads package metadata at import)
    from crc32c import crc32c

MAX_RECORD_LEN = 1020 * 1024 * 1024  # XLogRecordMaxSize (16+); a garbage length beyond is "too long"


_RECHDR = L.RECORD_HEADER.unpack_from
_lsn = int.__new__  # _lsn(Lsn, value): an Lsn without Lsn.__new__'s parsing (hot path)
_SZREC = L.SIZE_OF_XLOG_RECORD
_RM_MAX_BUILTIN = L.RM_MAX_BUILTIN_ID
_U32 = L.U32.unpack_from
_CRC_OFF = L.XL_CRC_OFFSET
_XLOG_SWITCH = L.XLOG_SWITCH
_ONE_BLOCK_HDR = ONE_BLOCK.unpack_from


class WalReader(SegmentPages):
    """Iterate over the records of a WalSource on one timeline (and its ancestors).

    start: first record at or after this LSN (default: the first record of the earliest
    segment). end: stop before a record that does not end at or before this LSN (pg_waldump
    -e). until: stop before the first record starting at or after this LSN.
    timeline: the target timeline (default: the newest one found); its history file, when
    present, says which ancestor timeline each earlier segment is read from.
    exact_start: `start` is known to be a record boundary (the end of a record read before):
    read from there instead of searching its page for the first record (XLogFindNextRecord).
    prev_lsn: with exact_start, the LSN of the record before `start`: the first record's
    xl_prev must name it (as when reading on), else the end is a prev-link mismatch.
    """

    def __init__(self, source: WalSource, start: Lsn | int | None = None,
                 end: Lsn | int | None = None, timeline: int | None = None,
                 verify_crc: bool = True, until: Lsn | int | None = None,
                 exact_start: bool = False, prev_lsn: Lsn | int | None = None) -> None:
        super().__init__(source, timeline)
        self.end = Lsn(end) if end is not None else None
        # until: stop before the first record that starts at or after it (a range boundary
        # for parallel readers: each record belongs to the range it starts in)
        self.until = int(until) if until is not None else None
        self.verify_crc = verify_crc
        self.exact_start = exact_start or prev_lsn is not None
        self.prev_lsn = int(prev_lsn) if prev_lsn is not None else None
        self.resume_lsn: Lsn | None = None  # scan(): where the record after the last one starts
        if start is None:
            start = self._first_segment_start()
        self.start = Lsn(start)
        self.end_of_wal: EndOfWal | None = None
        self.last_record_lsn: Lsn | None = None
        self.records_read = 0
        self._tli = self.timeline
        self._tli_lo = 0
        self._tli_hi = 0

    # -- finding the first record ---------------------------------------------------------------
    def _find_first(self, target: int) -> int:
        """XLogFindNextRecord(): a record boundary at or before `target`'s first record."""
        if self.exact_start:
            return target
        blcksz = self.blcksz
        tmp = target
        while True:
            pageptr = tmp - tmp % blcksz
            hdr = self._validate_page(pageptr)
            if self._page_info & L.XLP_FIRST_IS_CONTRECORD:
                if L.maxalign(self._page_rem) >= blcksz - hdr:
                    tmp = pageptr + blcksz
                    continue
                return pageptr + hdr + L.maxalign(self._page_rem)
            return pageptr + hdr

    # -- records -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Record]:
        try:
            nxt = self._find_first(self.start)
        except WalStop as stop:
            self._finish(stop, Lsn(self.start))
            return
        rand = self.prev_lsn is None
        prev = self.prev_lsn or 0
        start = int(self.start)
        until = self.until
        # The fast path below reads a record that lies wholly on the page last validated, with
        # its header valid, its CRC correct and its fragments decodable; it makes the same
        # Record as _read() would, which handles everything else (new pages and segments,
        # records across pages, switches, damage and its messages).  Its state is refreshed
        # from the slow path after every record _read() returns.
        blcksz = self.blcksz
        seg_size = self.seg_size
        fast_max = blcksz - _SZREC  # a header that starts further on spans two pages
        until_lim = until if until is not None else 1 << 64
        end_lim = int(self.end) if self.end is not None else 1 << 64
        verify = self.verify_crc
        page = -1  # -1 until a record has been read (the first one takes the slow path)
        buf = b""
        seg_base = 0
        seg_name = ""
        tli = tli_lo = tli_hi = major = 0
        # None until the slow path read a record (page >= 0), which the fast path waits for
        cur = cast(Lsn, None)  # Lsn object of nxt (the last record's end)
        prev_obj = cast(Lsn, None)  # Lsn object of prev (the last record's lsn)
        rec: Record | int | None
        # Skip records before the requested start, as pg_waldump does.
        while True:
            if nxt >= until_lim:
                self._finish(WalStop(EndReason.END_LSN_REACHED, nxt,
                                   f"end of requested range {Lsn(until_lim)} reached"), Lsn(nxt))
                return
            off = nxt - page
            if 0 < off <= fast_max:
                pos = nxt - seg_base
                tot_len, xid, xprev, info, rmid, crc = _RECHDR(buf, pos)
                if (_SZREC <= tot_len <= blcksz - off and xprev == prev
                        and nxt + tot_len <= end_lim and tli_lo <= nxt < tli_hi
                        and (0 < rmid <= _RM_MAX_BUILTIN
                             or (rmid == 0 and info & 0xF0 != _XLOG_SWITCH))):
                    data = buf[pos:pos + tot_len]
                    # The CRC covers the record after the header, then the header up to
                    # xl_crc: for a small record one call over the two joined is cheapest.
                    if not verify or crc == (
                            crc32c(data[_SZREC:] + data[:_CRC_OFF]) if tot_len < 1024
                            else crc32c(data[:_CRC_OFF], crc32c(memoryview(data)[_SZREC:]))):
                        end = _lsn(Lsn, nxt + ((tot_len + 7) & ~7))
                        # simple_fragments(), inlined: most records have one of its layouts
                        blocks = None
                        if tot_len > _SZREC and data[_SZREC] == DATA_SHORT_ID:
                            if tot_len >= _SZREC + 2 and data[_SZREC + 1] == tot_len - _SZREC - 2:
                                blocks = []
                                main_len = tot_len - _SZREC - 2
                        elif tot_len >= ONE_BLOCK_END:
                            (bid, fork_flags, data_len, spc, db, rel, blk, data_id,
                             main_len) = _ONE_BLOCK_HDR(data, _SZREC)
                            if (bid == 0 and data_id == DATA_SHORT_ID
                                    and not fork_flags & SIMPLE_BLOCK_MASK
                                    and tot_len - ONE_BLOCK_END == data_len + main_len
                                    and (data_len != 0) == (fork_flags & L.BKPBLOCK_HAS_DATA != 0)):
                                blocks = [BlockRef(0, fork_flags, spc, db, rel, blk, data_len,
                                                   False, 0, 0, 0, 0, False, None, 0,
                                                   ONE_BLOCK_END if data_len else 0)]
                        if blocks is not None:
                            rec = Record(cur, end, prev_obj, xid, info, rmid, tot_len, crc, tli,
                                         seg_name, major, data, blocks, tot_len - main_len,
                                         main_len, 0, 0, blcksz, 0)
                        else:
                            rec = Record(cur, end, prev_obj, xid, info, rmid, tot_len, crc, tli,
                                         seg_name, major, data, [], 0, 0, 0, 0, blcksz, 0)
                            try:
                                decode_fragments(rec)
                            except DecodeError:
                                rec = None  # _read() raises it with its message
                        if rec is not None:
                            prev = nxt
                            nxt += (tot_len + 7) & ~7
                            cur, prev_obj = end, cur
                            self.last_record_lsn = prev_obj
                            if prev >= start:
                                self.records_read += 1
                                yield rec
                            continue
            rec = self._step(nxt, prev, rand)
            if isinstance(rec, int):
                nxt = rec
                continue
            if rec is None:
                return
            nxt = int(rec.end)
            prev = int(rec.lsn)
            rand = False
            cur, prev_obj = rec.end, rec.lsn
            page, buf, major = self._page, self._buf, self._major
            seg_base = self._segno * seg_size
            seg_name = self._seg.name if self._seg is not None else ""
            tli, tli_lo, tli_hi = self._tli, self._tli_lo, self._tli_hi
            self.last_record_lsn = rec.lsn
            if prev >= start:
                self.records_read += 1
                yield rec

    def scan(self) -> int:
        """Walk the records with every check of iteration (headers, prev-links, CRC, fragment
        headers) without making Record objects; the number of records at or after `start`.
        Sets last_record_lsn, records_read and end_of_wal as iterating would. Ordinary records
        are walked by the C extension when it is built; each record it stops before (anything
        unusual, and all damage) is read by _read(), so the result and the messages are the
        same either way."""
        rec: Record | int | None
        if _cscan is None or not self.verify_crc:
            n = 0
            for rec in self:
                n += 1
                self.resume_lsn = rec.end
            return n
        try:
            nxt = self._find_first(self.start)
        except WalStop as stop:
            self._finish(stop, Lsn(self.start))
            return 0
        start, until, end, magic, rand, prev = self._walk_bounds()
        n = 0
        seg_size = self.seg_size
        while True:
            if not rand and self._seg is not None and self._segno == nxt // seg_size:
                seg_base = self._segno * seg_size
                got, nxt, prev, self._latest_page, self._latest_tli = _cscan(
                    self._buf, seg_base, nxt, prev, start, min(until, self._tli_hi), end,
                    max(self._latest_page, 0), self._latest_tli, self.blcksz, self.seg_size,
                    magic, self.sysid, self._major, _RM_MAX_BUILTIN)
                if got:
                    n += got
                    self.last_record_lsn = Lsn(prev)
            rec = self._step_on(nxt, prev, rand, until)
            if isinstance(rec, int):
                nxt = rec
                continue
            if rec is None:
                break
            nxt, prev, rand = int(rec.end), int(rec.lsn), False
            if prev >= start:
                n += 1
        self.records_read += n
        self.resume_lsn = Lsn(nxt)
        return n

    def batches(self, max_records: int = 20000, max_arena: int = 8 << 20,
                rmgr: int | None = None) -> Iterator[WalBatch]:
        """The records as WalBatches (parse/batch.py) of at most max_records records (and
        about max_arena bytes of record data): the same records, in the same order, with the
        same checks and end as iterating, and records_read, last_record_lsn, end_of_wal and
        resume_lsn set as iterating and scan() set them. Like scan(), ordinary records are
        decoded by the C extension into the columns; each record it stops before is read by
        _read() and appended from its Record. rmgr: only the records of that resource manager
        are in the batches (all are read and checked the same way; e.g. the commit-time pass
        of the exports, which needs the Transaction records only).

        (max_arena is kept well under glibc's largest mmap threshold, 32 MB: the batches'
        buffers are then reused from the heap rather than mapped and zeroed afresh.)"""
        only = -1 if rmgr is None else rmgr
        if _CBuilder is None or not self.verify_crc or _cscan is None:
            yield from self._batches_py(max_records, max_arena, rmgr)
            return
        try:
            nxt = self._find_first(self.start)
        except WalStop as stop:
            self._finish(stop, Lsn(self.start))
            return
        builder = _CBuilder()
        runs: list[Run] = []
        start, until, end, magic, rand, prev = self._walk_bounds()
        seg_size = self.seg_size
        blcksz = self.blcksz

        def run(tli: int, segment: str) -> None:
            if not runs or runs[-1].timeline != tli or runs[-1].segment != segment:
                runs.append(Run(len(builder), tli, segment))

        def take() -> WalBatch:
            batch = WalBatch(len(builder), self._major, blcksz, builder.take(), list(runs))
            runs.clear()
            return batch

        while True:
            if not rand and self._seg is not None and self._segno == nxt // seg_size:
                seg_base = self._segno * seg_size
                run(self._tli, self._seg.name)
                before = prev
                _got, nxt, prev, self._latest_page, self._latest_tli, walked = builder.decode(
                    self._buf, seg_base, nxt, prev, start, min(until, self._tli_hi), end,
                    max(self._latest_page, 0), self._latest_tli, blcksz, seg_size,
                    magic, self.sysid, self._major, _RM_MAX_BUILTIN, max_records, max_arena,
                    only)
                if prev != before:
                    self.last_record_lsn = Lsn(prev)
                self.records_read += walked
                if runs and runs[-1].first == len(builder):
                    runs.pop()  # nothing appended in this run
                if len(builder) >= max_records or builder.arena_size >= max_arena:
                    yield take()
                    continue
            rec = self._step_on(nxt, prev, rand, until)
            if isinstance(rec, int):
                nxt = rec
                continue
            if rec is None:
                break
            nxt, prev, rand = int(rec.end), int(rec.lsn), False
            if prev >= start:
                self.records_read += 1
                if rmgr is not None and rec.rmid != rmgr:
                    continue
                run(rec.timeline, rec.segment)
                builder.add(rec.data, prev, nxt, rec.pg_major, rec.block_size)
                if len(builder) >= max_records or builder.arena_size >= max_arena:
                    yield take()
        self.resume_lsn = Lsn(nxt)
        if len(builder):
            yield take()

    def _batches_py(self, max_records: int, max_arena: int,
                    rmgr: int | None = None) -> Iterator[WalBatch]:
        """batches() from the records of iteration (no C extension): the same batches."""
        builder = PyBuilder()
        runs: list[Run] = []
        for rec in self:
            self.resume_lsn = rec.end
            if rmgr is not None and rec.rmid != rmgr:
                continue
            if not runs or runs[-1].timeline != rec.timeline or runs[-1].segment != rec.segment:
                runs.append(Run(len(builder), rec.timeline, rec.segment))
            builder.add_record(rec)
            if len(builder) >= max_records or builder.arena_size >= max_arena:
                yield WalBatch(len(builder), self._major, self.blcksz, builder.take(), runs)
                runs = []
        if len(builder):
            yield WalBatch(len(builder), self._major, self.blcksz, builder.take(), runs)

    def _walk_bounds(self) -> tuple[int, int, int, int, bool, int]:
        """What the C walk of scan() and batches() is given: the start, the range's `until`
        and `end` (no limit: 2**64 - 1), the major's page magic, whether the first record is
        found by searching (no prev-link to check) and the prev-link it must have."""
        until = self.until if self.until is not None else (1 << 64) - 1
        end = int(self.end) if self.end is not None else (1 << 64) - 1
        return (int(self.start), until, end, L.MAJOR_TO_PAGE_MAGIC.get(self._major, 0),
                self.prev_lsn is None, self.prev_lsn or 0)

    def _step_on(self, nxt: int, prev: int, rand: bool, until: int) -> Record | int | None:
        """Where the C walk of scan() and batches() stops: the end of the requested range
        (None, end_of_wal set) or, before it, _step() at nxt (a Record read is the last record
        read now)."""
        if nxt >= until:
            self._finish(WalStop(EndReason.END_LSN_REACHED, nxt,
                                 f"end of requested range {Lsn(until)} reached"), Lsn(nxt))
            return None
        rec = self._step(nxt, prev, rand)
        if isinstance(rec, Record):
            self.last_record_lsn = rec.lsn
        return rec

    def _step(self, nxt: int, prev: int, rand: bool) -> Record | int | None:
        """The record at nxt, read by _read(); or the LSN to read from instead (the page that
        overwrote a broken continuation: its record links back to the last complete one, so
        prev is unchanged); or None when reading ended (end_of_wal is set)."""
        try:
            return self._read(nxt, prev, rand)
        except WalStop as stop:
            self._finish(stop, Lsn(nxt))
            return None
        except _Overwritten as ow:
            return ow.pageptr

    def _finish(self, stop: WalStop, next_lsn: Lsn) -> None:
        seg_size = self.seg_size
        segno = int(stop.error_lsn) // seg_size
        tli = self.source.timeline_of_segment(segno, self.expected)
        c = self.source.segment(tli, segno)
        if int(next_lsn) % self.blcksz == 0 and stop.reason is not EndReason.END_LSN_REACHED:
            # At a page boundary the next record would start after the page header: that is
            # the LSN PostgreSQL names ("invalid record length at X") and writes next.
            next_lsn = Lsn(int(next_lsn) + (L.SIZE_OF_LONG_PHD if int(next_lsn) % seg_size == 0
                                            else L.SIZE_OF_SHORT_PHD))
        self.end_of_wal = EndOfWal(
            reason=stop.reason, lsn=next_lsn, last_record_lsn=self.last_record_lsn,
            error_lsn=stop.error_lsn, message=stop.message,
            segment=self.source.name_of(tli, segno), file=str(c.path) if c else None,
            offset=stop.offset if stop.offset is not None else int(stop.error_lsn) % seg_size,
            timeline=tli)

    def _read(self, rp: int, prev: int, rand: bool) -> Record | None:
        blcksz = self.blcksz
        seg_size = self.seg_size
        end = self.end
        pageptr = rp - rp % blcksz
        if pageptr != self._page:
            hdr = self._validate_page(pageptr)
            if rp == pageptr:
                rp += hdr
                if self._page_info & L.XLP_FIRST_IS_CONTRECORD:
                    raise WalStop(EndReason.MISSING_CONTRECORD, rp, f"contrecord is requested by {Lsn(rp)}")
            elif rp % blcksz < hdr:
                raise WalStop(EndReason.INVALID_RECORD, rp,
                            f"invalid record offset at {Lsn(rp)}: expected at least {hdr}, got {rp % blcksz}")
        elif rp == pageptr:  # cannot happen: a validated page has its header before any record
            rp += self._page_hdr
        buf = self._buf
        seg = self._seg  # the segment the record starts in (assembly may move on)
        pos = rp % seg_size
        page_off = rp % blcksz
        if end is not None and rp + L.SIZE_OF_XLOG_RECORD > end:
            raise WalStop(EndReason.END_LSN_REACHED, rp, f"end of requested range {end} reached")
        if page_off <= blcksz - L.SIZE_OF_XLOG_RECORD:
            tot_len, xid, xprev, info, rmid, crc = _RECHDR(buf, pos)
            if tot_len < _SZREC or rmid > _RM_MAX_BUILTIN or (xprev >= rp if rand else xprev != prev):
                self._check_header(rp, tot_len, xprev, rmid, prev, rand)  # raises, or custom rmgr
            gotheader = True
        else:
            tot_len = _U32(buf, pos)[0]
            if tot_len < L.SIZE_OF_XLOG_RECORD:
                raise WalStop(EndReason.INVALID_LENGTH, rp,
                            f"invalid record length at {Lsn(rp)}: expected at least "
                            f"{L.SIZE_OF_XLOG_RECORD}, got {tot_len}")
            gotheader = False
        if page_off + tot_len <= blcksz:
            if end is not None and rp + tot_len > end:
                raise WalStop(EndReason.END_LSN_REACHED, rp, f"end of requested range {end} reached")
            data = buf[pos:pos + tot_len]
            nxt = rp + ((tot_len + 7) & ~7)
        else:
            if tot_len > MAX_RECORD_LEN:
                raise WalStop(EndReason.INVALID_LENGTH, rp, f"record length {tot_len} at {Lsn(rp)} too long")
            data, nxt = self._assemble(rp, tot_len, prev, rand, gotheader)
            if not gotheader:
                tot_len, xid, xprev, info, rmid, crc = _RECHDR(data, 0)
        if self.verify_crc:
            c = crc32c(data[:L.XL_CRC_OFFSET], crc32c(memoryview(data)[L.SIZE_OF_XLOG_RECORD:]))
            if c != crc:
                raise WalStop(EndReason.CRC_MISMATCH, rp,
                            f"incorrect resource manager data checksum in record at {Lsn(rp)}")
        if rmid == L.RM_XLOG_ID and (info & L.XLR_RMGR_INFO_MASK) == L.XLOG_SWITCH:
            # The rest of the segment is unused: the next record starts in the next one.
            nxt = nxt + seg_size - 1
            nxt -= nxt % seg_size
        if not self._tli_lo <= rp < self._tli_hi:
            self._set_tli_range(rp)
        rec = Record(_lsn(Lsn, rp), _lsn(Lsn, nxt), _lsn(Lsn, xprev), xid, info, rmid, tot_len,
                     crc, self._tli, seg.name if seg is not None else "", self._major, data,
                     block_size=blcksz)
        try:
            decode_fragments(rec)
        except DecodeError as exc:
            raise WalStop(EndReason.INVALID_RECORD, rp, f"{exc} at {Lsn(rp)}") from None
        return rec

    def _set_tli_range(self, lsn: int) -> None:
        """The timeline a position belongs to, by the history: [begin, switchpoint) of each
        (a page header's xlp_tli is the timeline the page was first written on, which for the
        page holding a switch point is the old one)."""
        for tli, begin, end in self.expected:
            if begin <= lsn and (end is None or lsn < end):
                self._tli, self._tli_lo = tli, int(begin)
                self._tli_hi = int(end) if end is not None else 1 << 64
                return
        self._tli, self._tli_lo, self._tli_hi = self.expected[-1][0], lsn, lsn + 1

    def _check_header(self, rp: int, tot_len: int, xprev: int, rmid: int, prev: int, rand: bool) -> None:
        """ValidXLogRecordHeader()."""
        if tot_len < L.SIZE_OF_XLOG_RECORD:
            raise WalStop(EndReason.INVALID_LENGTH, rp,
                        f"invalid record length at {Lsn(rp)}: expected at least "
                        f"{L.SIZE_OF_XLOG_RECORD}, got {tot_len}")
        if not L.rmgr_id_valid(rmid, self._major):
            raise WalStop(EndReason.INVALID_RECORD, rp, f"invalid resource manager ID {rmid} at {Lsn(rp)}")
        if rand:
            if not xprev < rp:
                raise WalStop(EndReason.PREV_LINK_MISMATCH, rp,
                            f"record with incorrect prev-link {Lsn(xprev)} at {Lsn(rp)}")
        elif xprev != prev:
            raise WalStop(EndReason.PREV_LINK_MISMATCH, rp,
                        f"record with incorrect prev-link {Lsn(xprev)} at {Lsn(rp)}")

    def _assemble(self, rp: int, tot_len: int, prev: int, rand: bool, gotheader: bool) -> tuple[bytes, int]:
        """Gather a record that continues on following pages (and maybe segments)."""
        blcksz = self.blcksz
        seg_size = self.seg_size
        end = self.end
        pos = rp % seg_size
        first = blcksz - rp % blcksz
        parts = [self._buf[pos:pos + first]]
        gotlen = first
        pageptr = rp - rp % blcksz
        while gotlen < tot_len:
            pageptr += blcksz
            try:
                hdr = self._validate_page(pageptr)
            except WalStop as stop:
                # A lost continuation: the record at rp is the one that is not whole.
                raise WalStop(stop.reason, stop.error_lsn, stop.message, stop.offset) from None
            info = self._page_info
            if info & L.XLP_FIRST_IS_OVERWRITE_CONTRECORD:
                # The continuation was overwritten after a crash (14+): the record at rp was
                # never completed; what follows the page header replaces it.
                raise _Overwritten(pageptr)
            if not info & L.XLP_FIRST_IS_CONTRECORD:
                raise WalStop(EndReason.MISSING_CONTRECORD, rp, f"there is no contrecord flag at {Lsn(pageptr)}")
            rem = self._page_rem
            if rem == 0 or tot_len != rem + gotlen:
                raise WalStop(EndReason.MISSING_CONTRECORD, rp,
                            f"invalid contrecord length {rem} (expected {tot_len - gotlen}) at {Lsn(pageptr)}")
            n = min(rem, blcksz - hdr)
            if end is not None and pageptr + hdr + n > end:
                raise WalStop(EndReason.END_LSN_REACHED, rp, f"end of requested range {end} reached")
            off = pageptr % seg_size + hdr
            parts.append(self._buf[off:off + n])
            gotlen += n
            if not gotheader and gotlen >= L.SIZE_OF_XLOG_RECORD:
                head = b"".join(parts)[:L.SIZE_OF_XLOG_RECORD]
                t, _x, xprev, _i, rmid, _c = _RECHDR(head, 0)
                self._check_header(rp, t, xprev, rmid, prev, rand)
                gotheader = True
        nxt = pageptr + self._page_hdr + L.maxalign(self._page_rem)
        return b"".join(parts), nxt


def complete_records_end(cluster: ClusterInfo, tli: int, segno: int, data: bytes) -> int:
    """How much of a segment holds whole, valid records: the offset where the record after
    the last complete one in `data` (the segment's bytes from its start, maybe fewer than a
    segment) would start; 0 when no record starts and ends in it. For a segment still being
    written this is what is certainly WAL: a page can be on disk with a record half-copied
    into it, and zeros are not a proof of anything."""
    seg_size = cluster.seg_size
    reader = WalReader(MemorySource(cluster, {(tli, segno): data}), start=segno * seg_size,
                       timeline=tli)
    reader.scan()
    if reader.last_record_lsn is None or reader.resume_lsn is None:
        return 0
    return min(int(reader.resume_lsn) - segno * seg_size, seg_size)


class _Overwritten(Exception):
    def __init__(self, pageptr: int) -> None:
        self.pageptr = pageptr
