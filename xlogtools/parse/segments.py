"""Segments and pages under the reader: which segment file holds an LSN (on the timeline the
history says), loading it, and checking each page header as XLogReaderValidatePageHeader of
access/transam/xlogreader.c does (magic, info bits, system identifier, segment and page size,
page address, timeline order), PostgreSQL 13-18."""
from __future__ import annotations

from ..lsn import Lsn
from . import layout as L
from .endofwal import EndReason, WalStop
from .source import SegmentFile, WalSource

_PAGEHDR = L.PAGE_HEADER.unpack_from


class SegmentPages:
    """The segment and page state of a read of `source` on `timeline` (the newest one by
    default) and its ancestors: the segment loaded now, and the last validated page. The
    reader (reader.WalReader) is built on it."""

    def __init__(self, source: WalSource, timeline: int | None) -> None:
        self.source = source
        self.seg_size = source.seg_size
        self.blcksz = source.block_size
        assert source.cluster is not None
        self.sysid = source.cluster.sysid
        tlis = source.timelines()
        self.timeline = timeline if timeline is not None else max(tlis)
        self.expected = source.expected_timelines(self.timeline)
        # current segment
        self._segno = -1
        self._seg: SegmentFile | None = None
        self._buf: bytes = b""
        self._major = source.cluster.pg_major
        # validated page state
        self._page = -1  # LSN of the last validated page
        self._page_hdr = 0
        self._latest_page = -1
        self._latest_tli = 0
        self._page_info = 0
        self._page_rem = 0

    def _first_segment_start(self) -> int:
        tlis = {t for t, _b, _e in self.expected}
        segs = [s for (t, s) in self.source.files if t in tlis]
        if not segs:
            return 0
        return min(segs) * self.seg_size

    def _load_segment(self, segno: int, lsn: int) -> None:
        src = self.source
        tli = src.timeline_of_segment(segno, self.expected)
        c = src.segment(tli, segno)
        name = src.name_of(tli, segno)
        self._segno = segno
        self._seg = None
        self._buf = b""
        if c is None:
            raise WalStop(EndReason.MISSING_SEGMENT, lsn, f"could not find file \"{name}\"",
                        lsn % self.seg_size)
        self._buf = src.read(c)
        self._seg = c
        self._major = src.cluster.pg_major if src.cluster else self._major
        if len(self._buf) > self.seg_size:
            raise WalStop(EndReason.INVALID_HEADER, lsn,
                        f"WAL file \"{c.path}\" is {len(self._buf)} bytes, larger than the "
                        f"segment size {self.seg_size}", 0)
        # Whenever we switch to a new segment, validate its first page (long header) too.
        seg_start = segno * self.seg_size
        if lsn != seg_start:
            self._validate_page(seg_start)

    def _validate_page(self, pageptr: int) -> int:
        """Check the header of the page at pageptr (loading its segment); return its size."""
        blcksz = self.blcksz
        segno = pageptr // self.seg_size
        if segno != self._segno or self._seg is None:
            self._load_segment(segno, pageptr)
        buf = self._buf
        off = pageptr % self.seg_size
        seg = self._seg
        assert seg is not None
        if len(buf) < off + L.SIZE_OF_SHORT_PHD:
            raise WalStop(EndReason.TRUNCATED_SEGMENT, pageptr,
                        f"could not read file \"{seg.name}\", offset {off}: read "
                        f"{max(0, len(buf) - off)} of {blcksz}", off)
        magic, info, tli, pageaddr, rem_len = _PAGEHDR(buf, off)
        name = self.source.name_of(seg.tli, segno)
        where = f"in WAL segment {name}, LSN {Lsn(pageptr)}, offset {off}"
        if magic != L.MAJOR_TO_PAGE_MAGIC.get(self._major, -1):
            if not any(buf[off:off + L.SIZE_OF_SHORT_PHD]):
                raise WalStop(EndReason.ZERO_PAGE, pageptr, f"invalid magic number 0000 {where}", off)
            raise WalStop(EndReason.INVALID_HEADER, pageptr, f"invalid magic number {magic:04X} {where}", off)
        if info & ~L.XLP_ALL_FLAGS:
            raise WalStop(EndReason.INVALID_HEADER, pageptr, f"invalid info bits {info:04X} {where}", off)
        if info & L.XLP_LONG_HEADER:
            if len(buf) < off + L.SIZE_OF_LONG_PHD:
                raise WalStop(EndReason.TRUNCATED_SEGMENT, pageptr,
                            f"could not read file \"{name}\", offset {off}: read "
                            f"{len(buf) - off} of {blcksz}", off)
            _m, _i, _t, _a, _r, sysid, seg_size, xlog_blcksz = L.LONG_PAGE_HEADER.unpack_from(buf, off)
            if sysid != self.sysid:
                raise WalStop(EndReason.INVALID_HEADER, pageptr,
                            f"WAL file is from different database system: WAL file database system "
                            f"identifier is {sysid}, pg_control database system identifier is "
                            f"{self.sysid}", off)
            if seg_size != self.seg_size:
                raise WalStop(EndReason.INVALID_HEADER, pageptr,
                            "WAL file is from different database system: incorrect segment size in page header", off)
            if xlog_blcksz != blcksz:
                raise WalStop(EndReason.INVALID_HEADER, pageptr,
                            "WAL file is from different database system: incorrect XLOG_BLCKSZ in page header", off)
            hdr = L.SIZE_OF_LONG_PHD
        elif off == 0:
            raise WalStop(EndReason.INVALID_HEADER, pageptr, f"invalid info bits {info:04X} {where}", off)
        else:
            hdr = L.SIZE_OF_SHORT_PHD
        if pageaddr != pageptr:
            raise WalStop(EndReason.STALE_PAGE_ADDRESS, pageptr,
                        f"unexpected pageaddr {Lsn(pageaddr)} {where}", off)
        if pageptr > self._latest_page:
            if tli < self._latest_tli:
                raise WalStop(EndReason.INVALID_HEADER, pageptr,
                            f"out-of-sequence timeline ID {tli} (after {self._latest_tli}) {where}", off)
            self._latest_page = pageptr
            self._latest_tli = tli
        if len(buf) < off + blcksz:
            # A .partial or truncated file: the header is fine but the page is not all there.
            raise WalStop(EndReason.TRUNCATED_SEGMENT, pageptr,
                        f"could not read file \"{name}\", offset {off}: read {len(buf) - off} of {blcksz}", off)
        self._page = pageptr
        self._page_hdr = hdr
        self._page_info = info
        self._page_rem = rem_len
        return hdr
