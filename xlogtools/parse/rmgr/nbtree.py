"""Btree (RM_BTREE_ID): access/nbtxlog.h, PostgreSQL 13-18.

14 changed page deletion (safexid, 64-bit reuse horizon) and DELETE (nupdated); 16 rewrote the
texts as "key: value" lists with the deleted/updated offsets of DELETE and VACUUM; 17 prints
isCatalogRel.
"""
from __future__ import annotations

import struct
from typing import Callable

from ..record import Record
from ._util import Buf, block_data, has_block_data, main, offsets_desc, tf, unpack_main

INSERT_LEAF = 0x00
INSERT_UPPER = 0x10
INSERT_META = 0x20
SPLIT_L = 0x30
SPLIT_R = 0x40
INSERT_POST = 0x50
DEDUP = 0x60
DELETE = 0x70
UNLINK_PAGE = 0x80
UNLINK_PAGE_META = 0x90
NEWROOT = 0xA0
MARK_PAGE_HALFDEAD = 0xB0
VACUUM = 0xC0
REUSE_PAGE = 0xD0
META_CLEANUP = 0xE0

_NAMES = {INSERT_LEAF: "INSERT_LEAF", INSERT_UPPER: "INSERT_UPPER", INSERT_META: "INSERT_META",
          SPLIT_L: "SPLIT_L", SPLIT_R: "SPLIT_R", INSERT_POST: "INSERT_POST", DEDUP: "DEDUP",
          DELETE: "DELETE", UNLINK_PAGE: "UNLINK_PAGE", UNLINK_PAGE_META: "UNLINK_PAGE_META",
          NEWROOT: "NEWROOT", MARK_PAGE_HALFDEAD: "MARK_PAGE_HALFDEAD", VACUUM: "VACUUM",
          REUSE_PAGE: "REUSE_PAGE", META_CLEANUP: "META_CLEANUP"}


def identify(info: int, major: int) -> str | None:
    return _NAMES.get(info & 0xF0)


def _delvacuum(b: Buf, ndeleted: int, nupdated: int) -> str:
    """delvacuum_desc() of 16+: deleted offsets, then updated posting-list tuples."""
    out = [", deleted:", offsets_desc(b.u16_array(0, ndeleted)), ", updated: ["]
    upd_off = 2 * ndeleted
    pos = upd_off + 2 * nupdated  # xl_btree_update {ndeletedtids; uint16 ptids[]} follow
    items = []
    for i in range(nupdated):
        n = b.u16(pos)
        ptids = b.u16_array(pos + 2, n)
        items.append(f"{{ off: {b.u16(upd_off + 2 * i)}, nptids: {n}, ptids: ["
                     + ", ".join(str(p) for p in ptids) + "] }")
        pos += 2 + 2 * n
    out.append(", ".join(items))
    out.append("]")
    return "".join(out)


def _desc_16(rec: Record, info: int) -> str:
    d = main(rec)
    cat17 = rec.pg_major >= 17
    if info in (INSERT_LEAF, INSERT_UPPER, INSERT_META, INSERT_POST):
        return f"off: {d.u16(0)}"
    if info in (SPLIT_L, SPLIT_R):
        return (f"level: {d.u32(0)}, firstrightoff: {d.u16(4)}, newitemoff: {d.u16(6)}, "
                f"postingoff: {d.u16(8)}")
    if info == DEDUP:
        return f"nintervals: {d.u16(0)}"
    if info == VACUUM:
        ndel, nupd = d.u16(0), d.u16(2)
        text = f"ndeleted: {ndel}, nupdated: {nupd}"
        if has_block_data(rec, 0):
            text += _delvacuum(block_data(rec, 0), ndel, nupd)
        return text
    if info == DELETE:
        ndel, nupd = d.u16(4), d.u16(6)
        text = f"snapshotConflictHorizon: {d.u32(0)}, ndeleted: {ndel}, nupdated: {nupd}"
        if cat17:
            text += f", isCatalogRel: {tf(d.u8(8))}"
        if has_block_data(rec, 0):
            text += _delvacuum(block_data(rec, 0), ndel, nupd)
        return text
    if info == MARK_PAGE_HALFDEAD:
        return (f"topparent: {d.u32(16)}, leaf: {d.u32(4)}, left: {d.u32(8)}, "
                f"right: {d.u32(12)}")
    if info in (UNLINK_PAGE, UNLINK_PAGE_META):
        safexid = d.u64(16)
        return (f"left: {d.u32(0)}, right: {d.u32(4)}, level: {d.u32(8)}, "
                f"safexid: {safexid >> 32}:{safexid & 0xFFFFFFFF}, "
                f"leafleft: {d.u32(24)}, leafright: {d.u32(28)}, leaftopparent: {d.u32(32)}")
    if info == NEWROOT:
        return f"level: {d.u32(4)}"
    if info == REUSE_PAGE:
        horizon = d.u64(16)
        text = (f"rel: {d.u32(0)}/{d.u32(4)}/{d.u32(8)}, "
                f"snapshotConflictHorizon: {horizon >> 32}:{horizon & 0xFFFFFFFF}")
        if cat17:
            text += f", isCatalogRel: {tf(d.u8(24))}"
        return text
    if info == META_CLEANUP:
        return f"last_cleanup_num_delpages: {block_data(rec, 0).u32(20)}"
    return ""


def _desc_14(rec: Record, info: int) -> str:
    d = main(rec)
    if info in (INSERT_LEAF, INSERT_UPPER, INSERT_META, INSERT_POST):
        return f"off {d.u16(0)}"
    if info in (SPLIT_L, SPLIT_R):
        return (f"level {d.u32(0)}, firstrightoff {d.u16(4)}, newitemoff {d.u16(6)}, "
                f"postingoff {d.u16(8)}")
    if info == DEDUP:
        return f"nintervals {d.u16(0)}"
    if info == VACUUM:
        return f"ndeleted {d.u16(0)}; nupdated {d.u16(2)}"
    if info == MARK_PAGE_HALFDEAD:
        return f"topparent {d.u32(16)}; leaf {d.u32(4)}; left {d.u32(8)}; right {d.u32(12)}"
    if info == NEWROOT:
        return f"lev {d.u32(4)}"
    if rec.pg_major <= 13:
        if info == DELETE:  # latestRemovedXid, ndeleted (uint32)
            return f"latestRemovedXid {d.u32(0)}; ndeleted {d.u32(4)}"
        if info in (UNLINK_PAGE, UNLINK_PAGE_META):
            # leftsib, rightsib, leafleftsib, leafrightsib, topparent, btpo_xact
            return (f"left {d.u32(0)}; right {d.u32(4)}; btpo_xact {d.u32(20)}; "
                    f"leafleft {d.u32(8)}; leafright {d.u32(12)}; topparent {d.u32(16)}")
        if info == REUSE_PAGE:  # node, block, latestRemovedXid
            return f"rel {d.u32(0)}/{d.u32(4)}/{d.u32(8)}; latestRemovedXid {d.u32(16)}"
        if info == META_CLEANUP:
            b = block_data(rec, 0)
            return (f"oldest_btpo_xact {b.u32(20)}; "
                    f"last_cleanup_num_heap_tuples: {b.f64(24):f}")
        return ""
    if info == DELETE:
        return f"latestRemovedXid {d.u32(0)}; ndeleted {d.u16(4)}; nupdated {d.u16(6)}"
    if info in (UNLINK_PAGE, UNLINK_PAGE_META):
        safexid = d.u64(16)
        return (f"left {d.u32(0)}; right {d.u32(4)}; level {d.u32(8)}; "
                f"safexid {safexid >> 32}:{safexid & 0xFFFFFFFF}; "
                f"leafleft {d.u32(24)}; leafright {d.u32(28)}; leaftopparent {d.u32(32)}")
    if info == REUSE_PAGE:
        horizon = d.u64(16)
        return (f"rel {d.u32(0)}/{d.u32(4)}/{d.u32(8)}; "
                f"latestRemovedXid {horizon >> 32}:{horizon & 0xFFFFFFFF}")
    if info == META_CLEANUP:
        return f"last_cleanup_num_delpages {block_data(rec, 0).u32(20)}"
    return ""


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    if rec.pg_major >= 16:
        return _desc_16(rec, info)
    return _desc_14(rec, info)


# --- fast paths ---------------------------------------------------------------------------
# The insert records (INSERT_LEAF above all) are most of an index's WAL: xl_btree_insert is
# one offset number (same text as _desc_14/_desc_16).
_OFFNUM = struct.Struct("<H")


def _insert_14(rec: Record) -> str:
    return "off %d" % unpack_main(rec, _OFFNUM)[0]


def _insert_16(rec: Record) -> str:
    return "off: %d" % unpack_main(rec, _OFFNUM)[0]


def describer(info: int, major: int) -> Callable[[Record], str] | None:
    """A fast describe() for records with this info in this major, if there is one."""
    if info & 0xF0 in (INSERT_LEAF, INSERT_UPPER, INSERT_META, INSERT_POST):
        return _insert_16 if major >= 16 else _insert_14
    return None
