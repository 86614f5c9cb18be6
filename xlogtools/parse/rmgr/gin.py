"""Gin (RM_GIN_ID): GIN index records of access/ginxlog.h, PostgreSQL 13-18 (unchanged)."""
from __future__ import annotations

from ..record import Record
from ._util import Buf, block_data, block_image_apply, has_block_image, main, shortalign, tf

CREATE_PTREE = 0x10
INSERT = 0x20
SPLIT = 0x30
VACUUM_PAGE = 0x40
DELETE_PAGE = 0x50
UPDATE_META_PAGE = 0x60
INSERT_LISTPAGE = 0x70
DELETE_LISTPAGE = 0x80
VACUUM_DATA_LEAF_PAGE = 0x90

GIN_INSERT_ISDATA = 0x01
GIN_INSERT_ISLEAF = 0x02
GIN_SPLIT_ROOT = 0x04

GIN_SEGMENT_DELETE = 1
GIN_SEGMENT_INSERT = 2
GIN_SEGMENT_REPLACE = 3
GIN_SEGMENT_ADDITEMS = 4

_NAMES = {CREATE_PTREE: "CREATE_PTREE", INSERT: "INSERT", SPLIT: "SPLIT",
          VACUUM_PAGE: "VACUUM_PAGE", VACUUM_DATA_LEAF_PAGE: "VACUUM_DATA_LEAF_PAGE",
          DELETE_PAGE: "DELETE_PAGE", UPDATE_META_PAGE: "UPDATE_META_PAGE",
          INSERT_LISTPAGE: "INSERT_LISTPAGE", DELETE_LISTPAGE: "DELETE_LISTPAGE"}

SIZEOF_GIN_META_PAGE_DATA = 56  # GinMetaPageData, MAXALIGNed


def identify(info: int, major: int) -> str | None:
    return _NAMES.get(info & 0xF0)


def _block_id(b: Buf, off: int) -> int:
    """BlockIdData: two uint16 halves, high first."""
    return (b.u16(off) << 16) | b.u16(off + 2)


def _recompress_leaf(b: Buf, off: int) -> str:
    """desc_recompress_leaf(): ginxlogRecompressDataLeaf (nactions, then actions)."""
    nactions = b.u16(off)
    out = [f" {nactions} segments:"]
    pos = off + 2
    for _ in range(nactions):
        segno, action = b.u8(pos), b.u8(pos + 1)
        pos += 2
        nitems = 0
        if action in (GIN_SEGMENT_INSERT, GIN_SEGMENT_REPLACE):
            # GinPostingList: first (6 bytes), nbytes (uint16), bytes
            pos += shortalign(8 + shortalign(b.u16(pos + 6)))
        if action == GIN_SEGMENT_ADDITEMS:
            nitems = b.u16(pos)
            pos += 2 + 6 * nitems
        if action == GIN_SEGMENT_ADDITEMS:
            out.append(f" {segno} (add {nitems} items)")
        elif action == GIN_SEGMENT_DELETE:
            out.append(f" {segno} (delete)")
        elif action == GIN_SEGMENT_INSERT:
            out.append(f" {segno} (insert)")
        elif action == GIN_SEGMENT_REPLACE:
            out.append(f" {segno} (replace)")
        else:
            out.append(f" {segno} unknown action {action} ???")
            break
    return "".join(out)


def _image_note(rec: Record) -> str:
    if block_image_apply(rec, 0):
        return " (full page image)"
    return " (full page image, for WAL verification)"


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == INSERT:  # flags, then child block ids when not a leaf
        flags = d.u16(0)
        out = [f"isdata: {tf(flags & GIN_INSERT_ISDATA)} isleaf: {tf(flags & GIN_INSERT_ISLEAF)}"]
        if not flags & GIN_INSERT_ISLEAF:
            out.append(f" children: {_block_id(d, 2)}/{_block_id(d, 6)}")
        if has_block_image(rec, 0):
            out.append(_image_note(rec))
        else:
            b = block_data(rec, 0)
            if not flags & GIN_INSERT_ISDATA:  # ginxlogInsertEntry: offset, isDelete, tuple
                out.append(f" isdelete: {tf(b.u8(2))}")
            elif flags & GIN_INSERT_ISLEAF:
                out.append(_recompress_leaf(b, 0))
            else:  # ginxlogInsertDataInternal: offset, PostingItem {child, key}
                out.append(f" pitem: {_block_id(b, 2)}-{_block_id(b, 6)}/{b.u16(10)}")
        return "".join(out)
    if info == SPLIT:  # locator, rrlink, left, right, flags 24
        flags = d.u16(24)
        return (f"isrootsplit: {tf(flags & GIN_SPLIT_ROOT)}"
                f" isdata: {tf(flags & GIN_INSERT_ISDATA)} isleaf: {tf(flags & GIN_INSERT_ISLEAF)}")
    if info == VACUUM_DATA_LEAF_PAGE:
        if has_block_image(rec, 0):
            return _image_note(rec)
        return _recompress_leaf(block_data(rec, 0), 0)
    if info == DELETE_LISTPAGE:
        return f"ndeleted: {d.i32(SIZEOF_GIN_META_PAGE_DATA)}"
    return ""
