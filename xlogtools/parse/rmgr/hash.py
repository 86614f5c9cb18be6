"""Hash (RM_HASH_ID): hash index records of access/hash_xlog.h, PostgreSQL 13-18.
VACUUM_ONE_PAGE says "latest removed xid" in 13, latestRemovedXid in 14-15,
snapshotConflictHorizon from 16; 17 prints isCatalogRel."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify, tf

INIT_META_PAGE = 0x00
INIT_BITMAP_PAGE = 0x10
INSERT = 0x20
ADD_OVFL_PAGE = 0x30
SPLIT_ALLOCATE_PAGE = 0x40
SPLIT_PAGE = 0x50
SPLIT_COMPLETE = 0x60
MOVE_PAGE_CONTENTS = 0x70
SQUEEZE_PAGE = 0x80
DELETE = 0x90
SPLIT_CLEANUP = 0xA0
UPDATE_META_PAGE = 0xB0
VACUUM_ONE_PAGE = 0xC0

XLH_SPLIT_META_UPDATE_MASKS = 1 << 0
XLH_SPLIT_META_UPDATE_SPLITPOINT = 1 << 1

identify = table_identify({
    INIT_META_PAGE: "INIT_META_PAGE", INIT_BITMAP_PAGE: "INIT_BITMAP_PAGE", INSERT: "INSERT",
    ADD_OVFL_PAGE: "ADD_OVFL_PAGE", SPLIT_ALLOCATE_PAGE: "SPLIT_ALLOCATE_PAGE",
    SPLIT_PAGE: "SPLIT_PAGE", SPLIT_COMPLETE: "SPLIT_COMPLETE",
    MOVE_PAGE_CONTENTS: "MOVE_PAGE_CONTENTS", SQUEEZE_PAGE: "SQUEEZE_PAGE", DELETE: "DELETE",
    SPLIT_CLEANUP: "SPLIT_CLEANUP", UPDATE_META_PAGE: "UPDATE_META_PAGE",
    VACUUM_ONE_PAGE: "VACUUM_ONE_PAGE"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == INIT_META_PAGE:  # num_tuples (double) 0, procid 8, ffactor 12
        return f"num_tuples {d.f64(0):g}, fillfactor {d.u16(12)}"
    if info == INIT_BITMAP_PAGE:
        return f"bmsize {d.u16(0)}"
    if info == INSERT:
        return f"off {d.u16(0)}"
    if info == ADD_OVFL_PAGE:  # bmsize, bmpage_found
        return f"bmsize {d.u16(0)}, bmpage_found {tf(d.u8(2))}"
    if info == SPLIT_ALLOCATE_PAGE:  # new_bucket 0, old flag 4, new flag 6, flags 8
        flags = d.u8(8)
        return (f"new_bucket {d.u32(0)}, "
                f"meta_page_masks_updated {tf(flags & XLH_SPLIT_META_UPDATE_MASKS)}, "
                f"issplitpoint_changed {tf(flags & XLH_SPLIT_META_UPDATE_SPLITPOINT)}")
    if info == SPLIT_COMPLETE:
        return f"old_bucket_flag {d.u16(0)}, new_bucket_flag {d.u16(2)}"
    if info == MOVE_PAGE_CONTENTS:  # ntups, is_prim_bucket_same_wrt
        return f"ntups {d.u16(0)}, is_primary {tf(d.u8(2))}"
    if info == SQUEEZE_PAGE:  # prevblkno 0, nextblkno 4, ntups 8, is_prim_bucket_same_wrt 10
        return (f"prevblkno {d.u32(0)}, nextblkno {d.u32(4)}, ntups {d.u16(8)}, "
                f"is_primary {tf(d.u8(10))}")
    if info == DELETE:  # clear_dead_marking, is_primary_bucket_page
        return f"clear_dead_marking {tf(d.u8(0))}, is_primary {tf(d.u8(1))}"
    if info == UPDATE_META_PAGE:
        return f"ntuples {d.f64(0):g}"
    if info == VACUUM_ONE_PAGE:
        if rec.pg_major <= 13:  # latestRemovedXid, int ntuples
            return f"ntuples {d.i32(4)}, latest removed xid {d.u32(0)}"
        if rec.pg_major < 16:
            return f"ntuples {d.i32(4)}, latestRemovedXid {d.u32(0)}"
        text = f"ntuples {d.u16(4)}, snapshotConflictHorizon {d.u32(0)}"
        if rec.pg_major >= 17:
            text += f", isCatalogRel {tf(d.u8(6))}"
        return text
    return ""
