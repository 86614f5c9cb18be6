"""Gist (RM_GIST_ID): GiST index records of access/gistxlog.h, PostgreSQL 13-18.
16 renamed latestRemovedXid to snapshotConflictHorizon; 17 prints isCatalogRel."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify, tf

PAGE_UPDATE = 0x00
DELETE = 0x10
PAGE_REUSE = 0x20
PAGE_SPLIT = 0x30
PAGE_DELETE = 0x60
ASSIGN_LSN = 0x70

identify = table_identify({PAGE_UPDATE: "PAGE_UPDATE", DELETE: "DELETE",
                           PAGE_REUSE: "PAGE_REUSE", PAGE_SPLIT: "PAGE_SPLIT",
                           PAGE_DELETE: "PAGE_DELETE", ASSIGN_LSN: "ASSIGN_LSN"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    major = rec.pg_major
    horizon_name = "snapshotConflictHorizon" if major >= 16 else "latestRemovedXid"
    if info == PAGE_REUSE:  # locator 0, block 12, horizon (FullTransactionId) 16, isCatalogRel 24
        h = d.u64(16)
        text = (f"rel {d.u32(0)}/{d.u32(4)}/{d.u32(8)}; blk {d.u32(12)}; "
                f"{horizon_name} {h >> 32}:{h & 0xFFFFFFFF}")
        if major >= 17:
            text += f", isCatalogRel {tf(d.u8(24))}"
        return text
    if info == DELETE:  # horizon 0, ntodelete 4, isCatalogRel 6
        text = f"delete: {horizon_name} {d.u32(0)}, nitems: {d.u16(4)}"
        if major >= 17:
            text += f", isCatalogRel {tf(d.u8(6))}"
        return text
    if info == PAGE_SPLIT:  # origrlink 0, orignsn 8, origleaf 16, npage 18
        return f"page_split: splits to {d.u16(18)} pages"
    if info == PAGE_DELETE:  # deleteXid 0, downlinkOffset 8
        x = d.u64(0)
        return f"deleteXid {x >> 32}:{x & 0xFFFFFFFF}; downlink {d.u16(8)}"
    return ""
