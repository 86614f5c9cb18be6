"""Heap (RM_HEAP_ID): tuple-level records of access/heapam_xlog.h, PostgreSQL 13-18.

16 rewrote the desc texts as "key: value" lists; 18's INPLACE carries invalidations.
"""
from __future__ import annotations

import struct
from typing import Callable

from ..record import Record
from ._util import invalidations_desc, main, offsets_desc, unpack_main

INSERT = 0x00
DELETE = 0x10
UPDATE = 0x20
TRUNCATE = 0x30
HOT_UPDATE = 0x40
CONFIRM = 0x50
LOCK = 0x60
INPLACE = 0x70
OPMASK = 0x70
INIT_PAGE = 0x80

# infobits (XLHL_*)
XLHL_XMAX_IS_MULTI = 0x01
XLHL_XMAX_LOCK_ONLY = 0x02
XLHL_XMAX_EXCL_LOCK = 0x04
XLHL_XMAX_KEYSHR_LOCK = 0x08
XLHL_KEYS_UPDATED = 0x10
_INFOBITS = ((XLHL_XMAX_IS_MULTI, "IS_MULTI"), (XLHL_XMAX_LOCK_ONLY, "LOCK_ONLY"),
             (XLHL_XMAX_EXCL_LOCK, "EXCL_LOCK"), (XLHL_XMAX_KEYSHR_LOCK, "KEYSHR_LOCK"),
             (XLHL_KEYS_UPDATED, "KEYS_UPDATED"))

XLH_TRUNCATE_CASCADE = 0x01
XLH_TRUNCATE_RESTART_SEQS = 0x02

# xl_heap_insert / _delete / _update flags (the ones the replay engine reads)
XLH_INSERT_IS_SPECULATIVE = 1 << 2
XLH_DELETE_CONTAINS_OLD_TUPLE = 1 << 1
XLH_DELETE_CONTAINS_OLD_KEY = 1 << 2
XLH_DELETE_IS_SUPER = 1 << 3
XLH_UPDATE_CONTAINS_OLD_TUPLE = 1 << 2
XLH_UPDATE_CONTAINS_OLD_KEY = 1 << 3
XLH_UPDATE_PREFIX_FROM_OLD = 1 << 5
XLH_UPDATE_SUFFIX_FROM_OLD = 1 << 6

_NAMES = {
    INSERT: "INSERT", INSERT | INIT_PAGE: "INSERT+INIT", DELETE: "DELETE", UPDATE: "UPDATE",
    UPDATE | INIT_PAGE: "UPDATE+INIT", HOT_UPDATE: "HOT_UPDATE",
    HOT_UPDATE | INIT_PAGE: "HOT_UPDATE+INIT", TRUNCATE: "TRUNCATE", CONFIRM: "HEAP_CONFIRM",
    LOCK: "LOCK", INPLACE: "INPLACE",
}


def identify(info: int, major: int) -> str | None:
    return _NAMES.get(info & 0xF0)


def out_infobits(bits: int) -> str:
    """out_infobits() of 13-15: each set flag followed by a space."""
    return "".join(f"{name} " for flag, name in _INFOBITS if bits & flag)


def infobits_desc(bits: int, key: str) -> str:
    """infobits_desc() of 16+: 'key: [A, B]'."""
    return f"{key}: [" + ", ".join(name for flag, name in _INFOBITS if bits & flag) + "]"


def _desc_pre16(rec: Record, info: int) -> str:
    d = main(rec)
    if info == INSERT:  # offnum, flags
        return f"off {d.u16(0)} flags 0x{d.u8(2):02X}"
    if info == DELETE:  # xmax, offnum, infobits_set, flags
        return f"off {d.u16(4)} flags 0x{d.u8(7):02X} " + out_infobits(d.u8(6))
    if info in (UPDATE, HOT_UPDATE):
        # old_xmax 0, old_offnum 4, old_infobits_set 6, flags 7, new_xmax 8, new_offnum 12
        return (f"off {d.u16(4)} xmax {d.u32(0)} flags 0x{d.u8(7):02X} "
                + out_infobits(d.u8(6)) + f"; new off {d.u16(12)} xmax {d.u32(8)}")
    if info == TRUNCATE:  # dbId, nrelids, flags, relids[]
        flags, n = d.u8(8), d.u32(4)
        out = ("cascade " if flags & XLH_TRUNCATE_CASCADE else "") + \
              ("restart_seqs " if flags & XLH_TRUNCATE_RESTART_SEQS else "")
        return (out + f"nrelids {n} relids" + "".join(f" {r}" for r in d.u32_array(12, n))
                + d.past_end(12, n, 4))
    if info == CONFIRM:
        return f"off {d.u16(0)}"
    if info == LOCK:  # locking_xid, offnum, infobits_set, flags
        return (f"off {d.u16(4)}: xid {d.u32(0)}: flags 0x{d.u8(7):02X} "
                + out_infobits(d.u8(6)))
    if info == INPLACE:
        return f"off {d.u16(0)}"
    return ""


def _truncate_flags(flags: int) -> str:
    names = [n for f, n in ((XLH_TRUNCATE_CASCADE, "CASCADE"),
                            (XLH_TRUNCATE_RESTART_SEQS, "RESTART_SEQS")) if flags & f]
    return "flags: [" + ", ".join(names) + "]"


def _desc_16(rec: Record, info: int) -> str:
    d = main(rec)
    if info == INSERT:
        return f"off: {d.u16(0)}, flags: 0x{d.u8(2):02X}"
    if info == DELETE:
        return (f"xmax: {d.u32(0)}, off: {d.u16(4)}, " + infobits_desc(d.u8(6), "infobits")
                + f", flags: 0x{d.u8(7):02X}")
    if info in (UPDATE, HOT_UPDATE):
        return (f"old_xmax: {d.u32(0)}, old_off: {d.u16(4)}, "
                + infobits_desc(d.u8(6), "old_infobits")
                + f", flags: 0x{d.u8(7):02X}, new_xmax: {d.u32(8)}, new_off: {d.u16(12)}")
    if info == TRUNCATE:
        n = d.u32(4)
        return (_truncate_flags(d.u8(8)) + f", nrelids: {n}, relids:"
                + offsets_desc(d.u32_array(12, n)) + d.past_end(12, n, 4))
    if info == CONFIRM:
        return f"off: {d.u16(0)}"
    if info == LOCK:
        return (f"xmax: {d.u32(0)}, off: {d.u16(4)}, " + infobits_desc(d.u8(6), "infobits")
                + f", flags: 0x{d.u8(7):02X}")
    if info == INPLACE:
        text = f"off: {d.u16(0)}"
        if rec.pg_major >= 18:
            # offnum 0, dbId 4, tsId 8, relcacheInitFileInval 12, nmsgs 16, msgs 20
            text += invalidations_desc(d, 20, d.i32(16), d.u32(4), d.u32(8), d.boolean(12),
                                       rec.pg_major)
        return text
    return ""


def describe(rec: Record) -> str:
    info = rec.info & OPMASK
    if rec.pg_major >= 16:
        return _desc_16(rec, info)
    return _desc_pre16(rec, info)


# --- fast paths ---------------------------------------------------------------------------
# INSERT, UPDATE/HOT_UPDATE, DELETE and LOCK are most of the WAL of an OLTP workload.  These
# read the main data struct with one unpack (unpack_main only when the data is short), print
# the infobits from a table and format with % (about twice as fast as f-strings with format
# specs).  They print exactly what _desc_pre16/_desc_16 print (see describer()).

_INSERT = struct.Struct("<HB")  # xl_heap_insert: offnum, flags
_XMAX_OFF = struct.Struct("<IHBB")  # xl_heap_delete / xl_heap_lock: xmax, offnum, infobits, flags
_UPDATE = struct.Struct("<IHBBIH")  # xl_heap_update: old_xmax, old_offnum, old_infobits_set,
#                                     flags, new_xmax, new_offnum
_OUT_INFOBITS = tuple(out_infobits(bits) for bits in range(32))
_INFOBITS_LIST = tuple("[" + ", ".join(name for flag, name in _INFOBITS if bits & flag) + "]"
                       for bits in range(32))


def _insert_pre16(rec: Record) -> str:
    if rec.main_data_len >= 3:
        return "off %d flags 0x%02X" % _INSERT.unpack_from(rec.data, rec.main_data_off)
    return "off %d flags 0x%02X" % unpack_main(rec, _INSERT)


def _insert_16(rec: Record) -> str:
    if rec.main_data_len >= 3:
        return "off: %d, flags: 0x%02X" % _INSERT.unpack_from(rec.data, rec.main_data_off)
    return "off: %d, flags: 0x%02X" % unpack_main(rec, _INSERT)


def _update_pre16(rec: Record) -> str:
    if rec.main_data_len >= 14:
        xmax, off, bits, flags, new_xmax, new_off = _UPDATE.unpack_from(rec.data, rec.main_data_off)
    else:
        xmax, off, bits, flags, new_xmax, new_off = unpack_main(rec, _UPDATE)
    return "off %d xmax %d flags 0x%02X %s; new off %d xmax %d" % (
        off, xmax, flags, _OUT_INFOBITS[bits & 0x1F], new_off, new_xmax)


def _update_16(rec: Record) -> str:
    if rec.main_data_len >= 14:
        xmax, off, bits, flags, new_xmax, new_off = _UPDATE.unpack_from(rec.data, rec.main_data_off)
    else:
        xmax, off, bits, flags, new_xmax, new_off = unpack_main(rec, _UPDATE)
    return ("old_xmax: %d, old_off: %d, old_infobits: %s, flags: 0x%02X, new_xmax: %d, "
            "new_off: %d" % (xmax, off, _INFOBITS_LIST[bits & 0x1F], flags, new_xmax, new_off))


def _delete_pre16(rec: Record) -> str:
    _xmax, off, bits, flags = unpack_main(rec, _XMAX_OFF)
    return "off %d flags 0x%02X %s" % (off, flags, _OUT_INFOBITS[bits & 0x1F])


def _lock_pre16(rec: Record) -> str:
    xmax, off, bits, flags = unpack_main(rec, _XMAX_OFF)
    return "off %d: xid %d: flags 0x%02X %s" % (off, xmax, flags, _OUT_INFOBITS[bits & 0x1F])


def _delete_or_lock_16(rec: Record) -> str:
    xmax, off, bits, flags = unpack_main(rec, _XMAX_OFF)
    return "xmax: %d, off: %d, infobits: %s, flags: 0x%02X" % (
        xmax, off, _INFOBITS_LIST[bits & 0x1F], flags)


def describer(info: int, major: int) -> Callable[[Record], str] | None:
    """A fast describe() for records with this info in this major, if there is one."""
    op = info & OPMASK
    if major >= 16:
        return {INSERT: _insert_16, UPDATE: _update_16, HOT_UPDATE: _update_16,
                DELETE: _delete_or_lock_16, LOCK: _delete_or_lock_16}.get(op)
    return {INSERT: _insert_pre16, UPDATE: _update_pre16, HOT_UPDATE: _update_pre16,
            DELETE: _delete_pre16, LOCK: _lock_pre16}.get(op)
