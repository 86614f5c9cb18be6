"""Heap2 (RM_HEAP2_ID): page-level heap records of access/heapam_xlog.h, PostgreSQL 13-18.

The codes 0x10-0x30 changed twice:
  13: CLEAN, FREEZE_PAGE, CLEANUP_INFO
  14-16: PRUNE, VACUUM, FREEZE_PAGE (16: freeze plans, "key: value" texts with arrays)
  17+: PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN, PRUNE_VACUUM_CLEANUP (one prune-and-freeze record)
"""
from __future__ import annotations

import struct
from typing import Callable

from ..record import Record
from ._util import Buf, array_desc, block_data, has_block_data, main, offsets_desc, unpack_main
from .heap import infobits_desc, out_infobits

REWRITE = 0x00
VISIBLE = 0x40
MULTI_INSERT = 0x50
LOCK_UPDATED = 0x60
NEW_CID = 0x70
OPMASK = 0x70
INIT_PAGE = 0x80
# 13
CLEAN_13 = 0x10
FREEZE_PAGE_13 = 0x20
CLEANUP_INFO_13 = 0x30
# 14-16
PRUNE = 0x10
VACUUM = 0x20
FREEZE_PAGE = 0x30
# 17+
PRUNE_ON_ACCESS = 0x10
PRUNE_VACUUM_SCAN = 0x20
PRUNE_VACUUM_CLEANUP = 0x30

# xl_heap_prune flags (17+)
XLHP_IS_CATALOG_REL = 1 << 1
XLHP_CLEANUP_LOCK = 1 << 2
XLHP_HAS_CONFLICT_HORIZON = 1 << 3
XLHP_HAS_FREEZE_PLANS = 1 << 4
XLHP_HAS_REDIRECTIONS = 1 << 5
XLHP_HAS_DEAD_ITEMS = 1 << 6
XLHP_HAS_NOW_UNUSED_ITEMS = 1 << 7

_COMMON = {REWRITE: "REWRITE", VISIBLE: "VISIBLE", MULTI_INSERT: "MULTI_INSERT",
           MULTI_INSERT | INIT_PAGE: "MULTI_INSERT+INIT", LOCK_UPDATED: "LOCK_UPDATED",
           NEW_CID: "NEW_CID"}
_BY_ERA = {
    13: {CLEAN_13: "CLEAN", FREEZE_PAGE_13: "FREEZE_PAGE", CLEANUP_INFO_13: "CLEANUP_INFO"},
    14: {PRUNE: "PRUNE", VACUUM: "VACUUM", FREEZE_PAGE: "FREEZE_PAGE"},
    17: {PRUNE_ON_ACCESS: "PRUNE_ON_ACCESS", PRUNE_VACUUM_SCAN: "PRUNE_VACUUM_SCAN",
         PRUNE_VACUUM_CLEANUP: "PRUNE_VACUUM_CLEANUP"},
}


def _era(major: int) -> int:
    return 13 if major <= 13 else 14 if major <= 16 else 17


def identify(info: int, major: int) -> str | None:
    info &= 0xF0
    return _COMMON.get(info) or _BY_ERA[_era(major)].get(info)


def _freeze_plans(plans: list[tuple[int, int, int, int]], offsets: list[int]) -> str:
    """plan_elem_desc(): each plan with the offsets it applies to."""
    items = []
    pos = 0
    for xmax, infomask2, infomask, ntuples in plans:
        offs = offsets[pos:pos + ntuples]
        pos += ntuples
        items.append(f"{{ xmax: {xmax}, infomask: {infomask}, infomask2: {infomask2}, "
                     f"ntuples: {ntuples}, offsets:{offsets_desc(offs)} }}")
    return array_desc(items)


def _read_plans(b: Buf, off: int, n: int) -> list[tuple[int, int, int, int]]:
    """xl_heap_freeze_plan / xlhp_freeze_plan: xmax, t_infomask2, t_infomask, frzflags,
    ntuples (12 bytes)."""
    return [(b.u32(off + 12 * i), b.u16(off + 12 * i + 4), b.u16(off + 12 * i + 6),
             b.u16(off + 12 * i + 10)) for i in range(n)]


def _prune_17(rec: Record) -> str:
    d = main(rec)
    flags = d.u8(1)  # reason 0, flags 1; the conflict horizon follows unaligned
    out = []
    if flags & XLHP_HAS_CONFLICT_HORIZON:
        out.append(f"snapshotConflictHorizon: {d.u32(2)}")
    out.append(f", isCatalogRel: {'T' if flags & XLHP_IS_CATALOG_REL else 'F'}")
    if has_block_data(rec, 0):
        b = block_data(rec, 0)
        pos = 0
        plans: list[tuple[int, int, int, int]] = []
        redirected: list[int] = []
        dead: list[int] = []
        unused: list[int] = []
        if flags & XLHP_HAS_FREEZE_PLANS:  # nplans, pad, plans[]
            nplans = b.u16(pos)
            plans = _read_plans(b, pos + 4, nplans)
            pos += 4 + 12 * nplans
        if flags & XLHP_HAS_REDIRECTIONS:  # ntargets, pairs
            n = b.u16(pos)
            redirected = b.u16_array(pos + 2, 2 * n)
            pos += 2 + 4 * n
        if flags & XLHP_HAS_DEAD_ITEMS:
            n = b.u16(pos)
            dead = b.u16_array(pos + 2, n)
            pos += 2 + 2 * n
        if flags & XLHP_HAS_NOW_UNUSED_ITEMS:
            n = b.u16(pos)
            unused = b.u16_array(pos + 2, n)
            pos += 2 + 2 * n
        nfrozen = sum(p[3] for p in plans)
        frz_offsets = b.u16_array(pos, nfrozen)
        nred = len(redirected) // 2
        out.append(f", nplans: {len(plans)}, nredirected: {nred}, ndead: {len(dead)}, "
                   f"nunused: {len(unused)}")
        if plans:
            out.append(", plans:" + _freeze_plans(plans, frz_offsets))
        if nred:
            out.append(", redirected:" + array_desc(
                f"{redirected[2 * i]}->{redirected[2 * i + 1]}"
                for i in range(len(redirected) // 2)))
        if dead:
            out.append(", dead:" + offsets_desc(dead))
        if unused:
            out.append(", unused:" + offsets_desc(unused))
    return "".join(out)


def _desc_16(rec: Record, info: int) -> str:
    """16+ texts of the records every era shares, and 16's prune/vacuum/freeze."""
    d = main(rec)
    major = rec.pg_major
    if major >= 17 and info in (PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN, PRUNE_VACUUM_CLEANUP):
        return _prune_17(rec)
    if major == 16 and info == PRUNE:  # snapshotConflictHorizon, nredirected, ndead
        nred, ndead = d.u16(4), d.u16(6)
        text = f"snapshotConflictHorizon: {d.u32(0)}, nredirected: {nred}, ndead: {ndead}"
        if has_block_data(rec, 0):
            b = block_data(rec, 0)
            total = len(b) // 2
            nunused = total - 2 * nred - ndead
            redirected = b.u16_array(0, 2 * nred)
            dead = b.u16_array(4 * nred, ndead)
            unused = b.u16_array(4 * nred + 2 * ndead, max(nunused, 0))
            text += (f", nunused: {nunused}, redirected:"
                     + array_desc(f"{redirected[2 * i]}->{redirected[2 * i + 1]}"
                                  for i in range(len(redirected) // 2))
                     + b.past_end(0, 2 * nred + ndead, 2)
                     + ", dead:" + offsets_desc(dead) + ", unused:" + offsets_desc(unused))
        return text
    if major == 16 and info == VACUUM:
        n = d.u16(0)
        text = f"nunused: {n}"
        if has_block_data(rec, 0):
            text += ", unused:" + offsets_desc(block_data(rec, 0).u16_array(0, n))
        return text
    if major == 16 and info == FREEZE_PAGE:  # snapshotConflictHorizon, nplans
        nplans = d.u16(4)
        text = f"snapshotConflictHorizon: {d.u32(0)}, nplans: {nplans}"
        if has_block_data(rec, 0):
            b = block_data(rec, 0)
            plans = _read_plans(b, 0, nplans)
            offsets = b.u16_array(12 * nplans, sum(p[3] for p in plans))
            text += ", plans:" + _freeze_plans(plans, offsets)
        return text
    if info == VISIBLE:
        return f"snapshotConflictHorizon: {d.u32(0)}, flags: 0x{d.u8(4):02X}"
    if info == MULTI_INSERT:  # flags 0, ntuples 2, offsets 4
        n = d.u16(2)
        text = f"ntuples: {n}, flags: 0x{d.u8(0):02X}"
        if has_block_data(rec, 0) and not rec.info & INIT_PAGE:
            text += ", offsets:" + offsets_desc(d.u16_array(4, n))
        return text
    if info == LOCK_UPDATED:  # xmax, offnum, infobits_set, flags
        return (f"xmax: {d.u32(0)}, off: {d.u16(4)}, " + infobits_desc(d.u8(6), "infobits")
                + f", flags: 0x{d.u8(7):02X}")
    if info == NEW_CID:
        return f"rel: {_new_cid_rel(d)}, tid: {_new_cid_tid(d)}" + \
            f", cmin: {d.u32(4)}, cmax: {d.u32(8)}, combo: {d.u32(12)}"
    return ""


def _new_cid_rel(d: Buf) -> str:
    # xl_heap_new_cid: top_xid 0, cmin 4, cmax 8, combocid 12, locator 16, tid 28
    return f"{d.u32(16)}/{d.u32(20)}/{d.u32(24)}"


def _new_cid_tid(d: Buf) -> str:
    return f"{(d.u16(28) << 16) | d.u16(30)}/{d.u16(32)}"


def _desc_pre16(rec: Record, info: int) -> str:
    d = main(rec)
    era = _era(rec.pg_major)
    if era == 13:
        if info == CLEAN_13:  # latestRemovedXid, nredirected, ndead
            return f"remxid {d.u32(0)}"
        if info == FREEZE_PAGE_13:  # cutoff_xid, ntuples
            return f"cutoff xid {d.u32(0)} ntuples {d.u16(4)}"
        if info == CLEANUP_INFO_13:  # node, latestRemovedXid
            return f"remxid {d.u32(12)}"
    else:
        if info == PRUNE:
            return (f"latestRemovedXid {d.u32(0)} nredirected {d.u16(4)} "
                    f"ndead {d.u16(6)}")
        if info == VACUUM:
            return f"nunused {d.u16(0)}"
        if info == FREEZE_PAGE:
            return f"cutoff xid {d.u32(0)} ntuples {d.u16(4)}"
    if info == VISIBLE:
        return f"cutoff xid {d.u32(0)} flags 0x{d.u8(4):02X}"
    if info == MULTI_INSERT:
        return f"{d.u16(2)} tuples flags 0x{d.u8(0):02X}"
    if info == LOCK_UPDATED:
        return (f"off {d.u16(4)}: xmax {d.u32(0)}: flags 0x{d.u8(7):02X} "
                + out_infobits(d.u8(6)))
    if info == NEW_CID:
        return (f"rel {_new_cid_rel(d)}; tid {_new_cid_tid(d)}"
                f"; cmin: {d.u32(4)}, cmax: {d.u32(8)}, combo: {d.u32(12)}")
    return ""


def describe(rec: Record) -> str:
    info = rec.info & OPMASK
    if rec.pg_major >= 16:
        return _desc_16(rec, info)
    return _desc_pre16(rec, info)


# --- fast paths ---------------------------------------------------------------------------
# PRUNE (14-15) comes right after the heap records in an OLTP workload's WAL; its text is three
# fields of the main data, read with one unpack (same text as _desc_pre16).
_PRUNE = struct.Struct("<IHH")  # latestRemovedXid, nredirected, ndead


def _prune_14(rec: Record) -> str:
    if rec.main_data_len >= 8:
        return "latestRemovedXid %d nredirected %d ndead %d" % _PRUNE.unpack_from(
            rec.data, rec.main_data_off)
    return "latestRemovedXid %d nredirected %d ndead %d" % unpack_main(rec, _PRUNE)


def describer(info: int, major: int) -> Callable[[Record], str] | None:
    """A fast describe() for records with this info in this major, if there is one."""
    if 14 <= major <= 15 and info & OPMASK == PRUNE:
        return _prune_14
    return None
