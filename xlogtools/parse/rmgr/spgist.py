"""SPGist (RM_SPGIST_ID): SP-GiST index records of access/spgxlog.h, PostgreSQL 13-18.
14 rewrote the texts ("key: value" lists; 13 has the older terse ones); 16 renamed
newestredirectxid to snapshotConflictHorizon; 17 prints isCatalogRel."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify, tf

ADD_LEAF = 0x10
MOVE_LEAFS = 0x20
ADD_NODE = 0x30
SPLIT_TUPLE = 0x40
PICKSPLIT = 0x50
VACUUM_LEAF = 0x60
VACUUM_ROOT = 0x70
VACUUM_REDIRECT = 0x80

identify = table_identify({ADD_LEAF: "ADD_LEAF", MOVE_LEAFS: "MOVE_LEAFS", ADD_NODE: "ADD_NODE",
                           SPLIT_TUPLE: "SPLIT_TUPLE", PICKSPLIT: "PICKSPLIT",
                           VACUUM_LEAF: "VACUUM_LEAF", VACUUM_ROOT: "VACUUM_ROOT",
                           VACUUM_REDIRECT: "VACUUM_REDIRECT"})


def _describe_13(rec: Record, info: int) -> str:
    d = main(rec)
    if info == ADD_LEAF:
        return (f"add leaf to page; off {d.u16(2)}; headoff {d.u16(4)}; parentoff {d.u16(6)}"
                + (" (newpage)" if d.u8(0) else "") + (" (nulls)" if d.u8(1) else ""))
    if info == MOVE_LEAFS:
        return f"{d.u16(0)} leafs"
    if info == ADD_NODE:
        return f"off {d.u16(0)}"
    if info == SPLIT_TUPLE:
        return (f"prefix off: {d.u16(0)}, postfix off: {d.u16(2)} "
                f"(same {d.u8(5)}, new {d.u8(4)})")
    if info == PICKSPLIT:
        return (f"ndel {d.u16(2)}; nins {d.u16(4)}"
                + (" (innerIsParent)" if d.u8(12) else "") + (" (isRootSplit)" if d.u8(0) else ""))
    if info == VACUUM_REDIRECT:
        return f"newest XID {d.u32(4)}"
    return ""


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    if rec.pg_major <= 13:
        return _describe_13(rec, info)
    d = main(rec)
    if info == ADD_LEAF:
        # newPage 0, storesNulls 1, offnumLeaf 2, offnumHeadLeaf 4, offnumParent 6, nodeI 8
        return (f"off: {d.u16(2)}, headoff: {d.u16(4)}, parentoff: {d.u16(6)}, nodeI: {d.u16(8)}"
                + (" (newpage)" if d.u8(0) else "") + (" (nulls)" if d.u8(1) else ""))
    if info == MOVE_LEAFS:
        # nMoves 0, newPage 2, replaceDead 3, storesNulls 4, offnumParent 6, nodeI 8
        return (f"nmoves: {d.u16(0)}, parentoff: {d.u16(6)}, nodeI: {d.u16(8)}"
                + (" (newpage)" if d.u8(2) else "") + (" (replacedead)" if d.u8(3) else "")
                + (" (nulls)" if d.u8(4) else ""))
    if info == ADD_NODE:
        # offnum 0, offnumNew 2, newPage 4, parentBlk 5, offnumParent 6, nodeI 8
        return (f"off: {d.u16(0)}, newoff: {d.u16(2)}, parentBlk: {d.i8(5)}, "
                f"parentoff: {d.u16(6)}, nodeI: {d.u16(8)}" + (" (newpage)" if d.u8(4) else ""))
    if info == SPLIT_TUPLE:  # offnumPrefix 0, offnumPostfix 2, newPage 4, postfixBlkSame 5
        return (f"prefixoff: {d.u16(0)}, postfixoff: {d.u16(2)}"
                + (" (newpage)" if d.u8(4) else "") + (" (same)" if d.u8(5) else ""))
    if info == PICKSPLIT:
        # isRootSplit 0, nDelete 2, nInsert 4, initSrc 6, initDest 7, offnumInner 8,
        # initInner 10, storesNulls 11, innerIsParent 12, offnumParent 14, nodeI 16
        return (f"ndelete: {d.u16(2)}, ninsert: {d.u16(4)}, inneroff: {d.u16(8)}, "
                f"parentoff: {d.u16(14)}, nodeI: {d.u16(16)}"
                + (" (innerIsParent)" if d.u8(12) else "") + (" (nulls)" if d.u8(11) else "")
                + (" (isRootSplit)" if d.u8(0) else ""))
    if info == VACUUM_LEAF:
        return (f"ndead: {d.u16(0)}, nplaceholder: {d.u16(2)}, nmove: {d.u16(4)}, "
                f"nchain: {d.u16(6)}")
    if info == VACUUM_ROOT:
        return f"ndelete: {d.u16(0)}"
    if info == VACUUM_REDIRECT:  # nToPlaceholder 0, firstPlaceholder 2, xid 4, isCatalogRel 8
        text = f"ntoplaceholder: {d.u16(0)}, firstplaceholder: {d.u16(2)}, "
        if rec.pg_major < 16:
            return text + f"newestredirectxid: {d.u32(4)}"
        text += f"snapshotConflictHorizon: {d.u32(4)}"
        if rec.pg_major >= 17:
            text += f", isCatalogRel: {tf(d.u8(8))}"
        return text
    return ""
