"""Heap and Heap2 redo on the page cache -> raw row changes with old and new tuples
(heap_xlog_* of access/heap/heapam_xlog.c, heapam.c before 17; record layouts of
access/heapam_xlog.h), PostgreSQL 13-18.

As the startup process does, a block's full-page image (when applied) replaces the page and the
record's change is not replayed on it; a WILL_INIT block starts from an empty page; otherwise
the change is applied to the cached page. Images are taken *after* the change, so the new tuple
is read from the image and the old one (its data untouched, only xmax set) from it as well.

Version differences handled here: heap2 codes 0x10-0x30 are CLEAN/FREEZE_PAGE/CLEANUP_INFO in
13, PRUNE/VACUUM/FREEZE_PAGE in 14-16 and PRUNE_ON_ACCESS/PRUNE_VACUUM_SCAN/PRUNE_VACUUM_CLEANUP
(xl_heap_prune with sub-records) from 17. Blocks are found by block id and fork, never by
count: 17.11/18.6 may add a visibility-map block reference.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from ..errors import RecordDataError
from ..lsn import Lsn
from ..parse.record import BlockRef, Record
from ..parse.rmgr import record_type
from .pages import DEAD, Key, Page, PageCache

# The record codes and flags are access/heapam_xlog.h's and catalog/storage_xlog.h's, declared
# once in the rmgr modules.
from ..parse.rmgr.ids import RM_HEAP2_ID, RM_HEAP_ID, RM_SMGR_ID
from ..parse.rmgr.heap import (DELETE, HOT_UPDATE, INIT_PAGE, INPLACE, INSERT, OPMASK, TRUNCATE,
                               UPDATE,
                               XLH_DELETE_CONTAINS_OLD_KEY, XLH_DELETE_CONTAINS_OLD_TUPLE,
                               XLH_DELETE_IS_SUPER, XLH_INSERT_IS_SPECULATIVE,
                               XLH_UPDATE_CONTAINS_OLD_KEY, XLH_UPDATE_CONTAINS_OLD_TUPLE,
                               XLH_UPDATE_PREFIX_FROM_OLD, XLH_UPDATE_SUFFIX_FROM_OLD)
from ..parse.rmgr import heap2 as _heap2
from ..parse.rmgr.heap2 import (MULTI_INSERT, XLHP_HAS_DEAD_ITEMS, XLHP_HAS_FREEZE_PLANS,
                                XLHP_HAS_NOW_UNUSED_ITEMS, XLHP_HAS_REDIRECTIONS)
from ..parse.rmgr.smgr import SMGR_TRUNCATE_HEAP, TRUNCATE as XLOG_SMGR_TRUNCATE

# heap2 0x10-0x30, the pruning records of every era: 13 CLEAN / FREEZE_PAGE / CLEANUP_INFO,
# 14-16 PRUNE / VACUUM / FREEZE_PAGE, 17+ PRUNE_ON_ACCESS / _VACUUM_SCAN / _VACUUM_CLEANUP
PRUNE_A, PRUNE_B, PRUNE_C = _heap2.PRUNE, _heap2.VACUUM, _heap2.FREEZE_PAGE

MAIN_FORK = 0
_HEADER = struct.Struct("<IIIHHHHHB")  # xmin xmax cid ctid(blk hi, blk lo, off) im2 im hoff
_XLHDR = struct.Struct("<HHB").unpack_from  # xl_heap_header
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from


@dataclass(slots=True)
class RawChange:
    """A row change before decoding: tuples as page items (header included)."""

    lsn: Lsn
    xid: int  # the record's xid: the writing (sub)transaction
    toplevel_xid: int  # from the record (14+ logical), else 0
    op: str  # insert | update | delete | truncate
    rel: tuple[int, int, int]  # spc, db, relfilenode
    blk: int = 0
    offnum: int = 0
    old: bytes | None = None
    old_key_only: bool = False  # old is the replica identity key (other columns null)
    old_from_wal: bool = False
    new: bytes | None = None
    new_missing: str = ""  # why the new tuple is unknown
    new_unknown: list[tuple[int, int]] = field(default_factory=list)  # unknown byte ranges
    speculative: bool = False
    hot: bool = False
    relids: list[int] = field(default_factory=list)  # truncate: relation OIDs
    old_tid: tuple[int, int] | None = None  # update: where the old version is (blk, offnum)


def _need(rec: Record, data: bytes, n: int, what: str) -> None:
    """Every length and count read from a record is checked against the bytes it has."""
    if len(data) < n:
        raise RecordDataError(f"{rec.rmgr_name} {record_type(rec)} record at {rec.lsn}: {what} "
                              f"has {len(data)} bytes, expected at least {n}", lsn=rec.lsn)


def build_tuple(xlhdr: tuple[int, int, int], body: bytes, xmin: int, xmax: int, blk: int,
                offnum: int) -> bytes:
    """The tuple heap redo puts on the page: a zeroed header with the logged fields."""
    im2, im, hoff = xlhdr
    hdr = _HEADER.pack(xmin, xmax, 0, (blk >> 16) & 0xFFFF, blk & 0xFFFF, offnum, im2, im, hoff)
    return hdr + body


class HeapRedo:
    """Replays heap records of the relations `follow(rel)` accepts; calls `on_toast(tuple)` for
    every tuple inserted into a relation `is_toast(rel)` says is a TOAST table."""

    def __init__(self, cache: PageCache, follow: Callable[[tuple[int, int, int]], bool],
                 is_toast: Callable[[tuple[int, int, int]], bool],
                 on_toast: Callable[[bytes], None]) -> None:
        self.cache = cache
        self.follow = follow
        self.is_toast = is_toast
        self.on_toast = on_toast
        self.toast_generation = 0

    # -- images -----------------------------------------------------------------------------------
    def apply_images(self, rec: Record) -> set[int]:
        """Restore every applicable main-fork image of a followed relation; returns the ids of
        the blocks restored (BLK_RESTORED)."""
        restored: set[int] = set()
        for b in rec.blocks:
            if b.has_image and b.apply_image and b.fork == MAIN_FORK and self.follow(b.relation):
                try:
                    page = rec.restore_page(b)
                except Exception:  # a damaged image: the page becomes unknown
                    self.cache.pages.pop((b.spc, b.db, b.rel, b.blk), None)
                    continue
                self.cache.set_image((b.spc, b.db, b.rel, b.blk), page)
                if self.is_toast(b.relation):
                    self.toast_generation += 1
                restored.add(b.block_id)
        return restored

    # -- dispatch ---------------------------------------------------------------------------------
    def redo(self, rec: Record) -> list[RawChange]:
        """The row changes of one record. A record whose data does not add up (its CRC is
        right, its counts or lengths are not) raises RecordDataError naming its LSN; the
        pages it touches are then no longer trusted to be complete, and the caller goes on
        with the next record."""
        try:
            return self._redo(rec)
        except RecordDataError:
            self._distrust(rec)
            raise
        except (struct.error, IndexError) as exc:
            self._distrust(rec)
            raise RecordDataError(f"{rec.rmgr_name} {record_type(rec)} record at {rec.lsn}: its "
                                  f"data does not add up ({exc})", lsn=rec.lsn) from None

    def _distrust(self, rec: Record) -> None:
        for b in rec.blocks:
            page = self.cache.get(_key(b)) if b.fork == MAIN_FORK else None
            if page is not None:
                page.complete = False

    def _redo(self, rec: Record) -> list[RawChange]:
        rmid = rec.rmid
        if rmid == RM_SMGR_ID:
            self._smgr(rec)
            return []
        restored = self.apply_images(rec)
        if rmid == RM_HEAP_ID:
            b0 = _block(rec, 0)
            if b0 is None or not self.follow(b0.relation):
                if rec.info & OPMASK == TRUNCATE:
                    return self._truncate(rec)
                return []
            return self._heap(rec, rec.info & OPMASK, b0, restored)
        if rmid == RM_HEAP2_ID:
            b0 = _block(rec, 0)
            if b0 is None or not self.follow(b0.relation):
                return []
            op = rec.info & OPMASK
            if op == MULTI_INSERT:
                return self._multi_insert(rec, b0, 0 in restored)
            if op in (PRUNE_A, PRUNE_B, PRUNE_C) and 0 not in restored:
                self._prune(rec, op, b0)
        return []

    def _smgr(self, rec: Record) -> None:
        if rec.info & 0xF0 != XLOG_SMGR_TRUNCATE:
            return
        d = rec.main_data
        _need(rec, d, 20, "xl_smgr_truncate")
        blkno, spc, db, rel, flags = struct.unpack_from("<IIIIi", d, 0)
        if flags & SMGR_TRUNCATE_HEAP and self.follow((spc, db, rel)):
            self.cache.truncate((spc, db, rel), blkno)

    def _heap(self, rec: Record, op: int, b0: BlockRef, restored: set[int]) -> list[RawChange]:
        if op == INSERT:
            return self._insert(rec, b0, 0 in restored)
        if op == DELETE:
            return self._delete(rec, b0)
        if op in (UPDATE, HOT_UPDATE):
            return self._update(rec, b0, restored, op == HOT_UPDATE)
        if op == TRUNCATE:
            return self._truncate(rec)
        if op == INPLACE and 0 not in restored:
            page = self.cache.get(_key(b0))
            _need(rec, rec.main_data, 2, "xl_heap_inplace")
            offnum = _u16(rec.main_data, 0)[0]
            tup = page.tuple(offnum) if page is not None else None
            data = rec.block_data(b0)
            if tup is not None and data and page is not None:
                hoff = tup[22]
                page.items[offnum] = tup[:hoff] + data
        return []

    def _page_for(self, rec: Record, b: BlockRef, restored: bool) -> Page:
        key = _key(b)
        if restored:
            page = self.cache.get(key)
            if page is not None:
                return page
        if rec.info & INIT_PAGE and b.will_init:
            return self.cache.init(key)
        return self.cache.get_or_partial(key)

    def _insert(self, rec: Record, b0: BlockRef, restored: bool) -> list[RawChange]:
        d = rec.main_data
        _need(rec, d, 3, "xl_heap_insert")
        offnum, flags = _u16(d, 0)[0], d[2]
        rel = b0.relation
        ch = RawChange(rec.lsn, rec.xid, rec.toplevel_xid, "insert", rel, b0.blk, offnum,
                       speculative=bool(flags & XLH_INSERT_IS_SPECULATIVE))
        if restored:
            page = self._page_for(rec, b0, True)
            ch.new = page.tuple(offnum)
        else:
            page = self._page_for(rec, b0, False)
            data = rec.block_data(b0)
            if data:
                _need(rec, data, 5, "the inserted tuple (xl_heap_header)")
                ch.new = build_tuple(_XLHDR(data, 0), data[5:], rec.xid, 0, b0.blk, offnum)
                page.items[offnum] = ch.new
            else:
                page.items.pop(offnum, None)
        if ch.new is None:
            ch.new_missing = "the inserted tuple is neither in the record nor in a page image"
        if self.is_toast(rel):
            if ch.new is not None:
                self.on_toast(ch.new)
            return []
        return [ch]

    def _multi_insert(self, rec: Record, b0: BlockRef, restored: bool) -> list[RawChange]:
        d = rec.main_data
        _need(rec, d, 4, "xl_heap_multi_insert")
        ntuples = _u16(d, 2)[0]  # xl_heap_multi_insert: flags, ntuples, offsets[]
        isinit = bool(rec.info & INIT_PAGE)
        if isinit:
            offsets = list(range(1, ntuples + 1))
        else:
            _need(rec, d, 4 + 2 * ntuples, f"xl_heap_multi_insert of {ntuples} tuples")
            offsets = list(struct.unpack_from(f"<{ntuples}H", d, 4))
        rel = b0.relation
        toast = self.is_toast(rel)
        page = self._page_for(rec, b0, restored)
        tuples: list[bytes | None] = []
        if restored:
            tuples = [page.tuple(o) for o in offsets]
        else:
            data = rec.block_data(b0)
            pos = 0
            for o in offsets:
                pos = (pos + 1) & ~1  # SHORTALIGN
                if not data:  # no tuple data (an image that could not be restored)
                    tuples.append(None)
                    page.items.pop(o, None)
                    continue
                _need(rec, data, pos + 7, f"the block data of {ntuples} tuples")
                datalen, im2, im, hoff = struct.unpack_from("<HHHB", data, pos)
                pos += 7
                _need(rec, data, pos + datalen, f"the block data of {ntuples} tuples")
                tup = build_tuple((im2, im, hoff), data[pos:pos + datalen], rec.xid, 0,
                                  b0.blk, o)
                pos += datalen
                page.items[o] = tup
                tuples.append(tup)
        out = []
        for o, got in zip(offsets, tuples):
            if toast:
                if got is not None:
                    self.on_toast(got)
                continue
            ch = RawChange(rec.lsn, rec.xid, rec.toplevel_xid, "insert", rel, b0.blk, o, new=got)
            if got is None:
                ch.new_missing = "the inserted tuple is neither in the record nor in a page image"
            out.append(ch)
        return out

    def _delete(self, rec: Record, b0: BlockRef) -> list[RawChange]:
        d = rec.main_data
        _need(rec, d, 8, "xl_heap_delete")
        offnum, flags = _u16(d, 4)[0], d[7]
        rel = b0.relation
        page = self.cache.get(_key(b0))
        ch = RawChange(rec.lsn, rec.xid, rec.toplevel_xid, "delete", rel, b0.blk, offnum)
        if flags & XLH_DELETE_IS_SUPER:
            ch.op = "super_delete"  # a speculative insertion given up (ON CONFLICT)
            return [] if self.is_toast(rel) else [ch]
        if self.is_toast(rel):
            return []
        if flags & (XLH_DELETE_CONTAINS_OLD_TUPLE | XLH_DELETE_CONTAINS_OLD_KEY):
            _need(rec, d, 13, "xl_heap_delete with the old tuple")
            ch.old = build_tuple(_XLHDR(d, 8), d[13:], 0, rec.xid, b0.blk, offnum)
            ch.old_from_wal = True
            ch.old_key_only = not flags & XLH_DELETE_CONTAINS_OLD_TUPLE
        if page is not None and (ch.old is None or ch.old_key_only):
            tup = page.tuple(offnum)
            if tup is not None:
                ch.old, ch.old_key_only, ch.old_from_wal = tup, False, False
        return [ch]

    def _update(self, rec: Record, b0: BlockRef, restored: set[int], hot: bool
                ) -> list[RawChange]:
        d = rec.main_data
        _need(rec, d, 14, "xl_heap_update")
        old_off, flags = _u16(d, 4)[0], d[7]
        new_off = _u16(d, 12)[0]
        b1 = _block(rec, 1)
        old_b = b1 if b1 is not None else b0
        rel = b0.relation
        ch = RawChange(rec.lsn, rec.xid, rec.toplevel_xid, "update", rel, b0.blk, new_off,
                       hot=hot, old_tid=(old_b.blk, old_off))
        old_page = self.cache.get(_key(old_b))
        old_tup = old_page.tuple(old_off) if old_page is not None else None
        ch.old = old_tup
        if flags & (XLH_UPDATE_CONTAINS_OLD_TUPLE | XLH_UPDATE_CONTAINS_OLD_KEY):
            _need(rec, d, 19, "xl_heap_update with the old tuple")
            full = bool(flags & XLH_UPDATE_CONTAINS_OLD_TUPLE)
            if old_tup is None or full:
                ch.old = build_tuple(_XLHDR(d, 14), d[19:], 0, rec.xid, old_b.blk, old_off)
                ch.old_from_wal = True
                ch.old_key_only = not full
        # the new tuple
        if 0 in restored:
            ch.new = self.cache.get(_key(b0)).tuple(new_off)  # type: ignore[union-attr]
        else:
            page = self._page_for(rec, b0, False)
            data = rec.block_data(b0)
            pos = 0
            prefix = suffix = 0
            if data:
                _need(rec, data, 5 + 2 * bool(flags & XLH_UPDATE_PREFIX_FROM_OLD)
                      + 2 * bool(flags & XLH_UPDATE_SUFFIX_FROM_OLD), "the new tuple")
            if flags & XLH_UPDATE_PREFIX_FROM_OLD:
                prefix = _u16(data, pos)[0]
                pos += 2
            if flags & XLH_UPDATE_SUFFIX_FROM_OLD:
                suffix = _u16(data, pos)[0]
                pos += 2
            if len(data) >= pos + 5:
                xlhdr = _XLHDR(data, pos)
                pos += 5
                body = data[pos:]
                if prefix or suffix:
                    hoff = xlhdr[2]
                    nbits = hoff - 23
                    if old_tup is None:
                        ch.new_missing = (f"the update logged only the changed middle of the "
                                          f"new row ({prefix} bytes of prefix and {suffix} of "
                                          f"suffix come from an old row not in the WAL read)")
                        body = bytes(body[:nbits]) + bytes(prefix) + bytes(body[nbits:]) \
                            + bytes(suffix)
                        n = 23 + len(body)
                        ch.new_unknown = [(hoff, hoff + prefix), (n - suffix, n)]
                    else:
                        ohoff = old_tup[22]
                        body = (body[:nbits] + old_tup[ohoff:ohoff + prefix] + body[nbits:]
                                + (old_tup[len(old_tup) - suffix:] if suffix else b""))
                ch.new = build_tuple(xlhdr, body, rec.xid, _u32(d, 8)[0], b0.blk, new_off)
            else:
                ch.new_missing = "the new tuple is neither in the record nor in a page image"
            if ch.new is not None and not ch.new_unknown:
                page.items[new_off] = ch.new
            else:
                page.items.pop(new_off, None)
                page.complete = False
        if ch.new is None and not ch.new_missing:
            ch.new_missing = "the new tuple is not in the page image"
        if self.is_toast(rel):
            return []
        return [ch]

    def _truncate(self, rec: Record) -> list[RawChange]:
        d = rec.main_data
        _need(rec, d, 12, "xl_heap_truncate")
        db, n = _u32(d, 0)[0], _u32(d, 4)[0]
        _need(rec, d, 12 + 4 * n, f"xl_heap_truncate of {n} relations")
        relids = list(struct.unpack_from(f"<{n}I", d, 12))
        return [RawChange(rec.lsn, rec.xid, rec.toplevel_xid, "truncate", (0, db, 0),
                          relids=relids)]

    def _prune(self, rec: Record, op: int, b0: BlockRef) -> None:
        """Line pointer changes of pruning and vacuuming (heap_page_prune_execute);
        freezing changes only tuple headers and is not replayed."""
        page = self.cache.get(_key(b0))
        if page is None:
            return
        major = rec.pg_major
        data = rec.block_data(b0)
        d = rec.main_data
        redirected: list[int] = []
        dead: list[int] = []
        unused: list[int] = []
        try:
            if major >= 17:
                flags = d[1]
                pos = 0
                if flags & XLHP_HAS_FREEZE_PLANS:
                    nplans = _u16(data, 0)[0]
                    pos = 4 + 12 * nplans
                if flags & XLHP_HAS_REDIRECTIONS:
                    n = _u16(data, pos)[0]
                    redirected = list(struct.unpack_from(f"<{2 * n}H", data, pos + 2))
                    pos += 2 + 4 * n
                if flags & XLHP_HAS_DEAD_ITEMS:
                    n = _u16(data, pos)[0]
                    dead = list(struct.unpack_from(f"<{n}H", data, pos + 2))
                    pos += 2 + 2 * n
                if flags & XLHP_HAS_NOW_UNUSED_ITEMS:
                    n = _u16(data, pos)[0]
                    unused = list(struct.unpack_from(f"<{n}H", data, pos + 2))
            elif (major == 13 and op == PRUNE_A) or (major >= 14 and op == PRUNE_A):
                nred, ndead = _u16(d, 4)[0], _u16(d, 6)[0]
                offs = list(struct.unpack_from(f"<{len(data) // 2}H", data, 0))
                redirected = offs[:2 * nred]
                dead = offs[2 * nred:2 * nred + ndead]
                unused = offs[2 * nred + ndead:]
            elif major >= 14 and op == PRUNE_B:  # VACUUM: LP_DEAD -> LP_UNUSED
                unused = list(struct.unpack_from(f"<{len(data) // 2}H", data, 0))
            else:
                return  # FREEZE_PAGE, CLEANUP_INFO: no line pointer changes
        except (struct.error, IndexError):
            page.complete = False
            return
        items = page.items
        for i in range(0, len(redirected) - 1, 2):
            items[redirected[i]] = redirected[i + 1]
        for o in dead:
            items[o] = DEAD
        for o in unused:
            items.pop(o, None)


def _block(rec: Record, block_id: int) -> BlockRef | None:
    for b in rec.blocks:
        if b.block_id == block_id and b.fork == MAIN_FORK:
            return b
    return None


def _key(b: BlockRef) -> Key:
    return (b.spc, b.db, b.rel, b.blk)
