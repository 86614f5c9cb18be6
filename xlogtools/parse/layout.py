"""On-disk WAL layouts: access/xlog_internal.h (page headers), access/xlogrecord.h
(record and block headers), PostgreSQL 13-18.

Two forms of each layout: a `construct` declaration (the documented, checked shape, used for
cold structures and in tests) and a precompiled `struct.Struct` for the per-record hot path.
Wire names follow PostgreSQL's (xlp_*, xl_*); tests check both forms agree. The construct
declarations are made on first use (module __getattr__), so that importing the reader does
not import construct: dump and locate start faster.
"""
from __future__ import annotations

import struct
from typing import Any

# --- page magic -> major version (XLOG_PAGE_MAGIC of each release) -------------------------
PAGE_MAGIC_TO_MAJOR: dict[int, int] = {
    0xD106: 13,
    0xD10D: 14,
    0xD110: 15,
    0xD113: 16,
    0xD116: 17,
    0xD118: 18,
}
MAJOR_TO_PAGE_MAGIC = {v: k for k, v in PAGE_MAGIC_TO_MAJOR.items()}

# --- page header (XLogPageHeaderData / XLogLongPageHeaderData) ------------------------------
XLP_FIRST_IS_CONTRECORD = 0x0001
XLP_LONG_HEADER = 0x0002
XLP_BKP_REMOVABLE = 0x0004
XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008  # 14+ (back-patched to 10+ minor releases)
XLP_ALL_FLAGS = 0x000F

SIZE_OF_SHORT_PHD = 24  # MAXALIGN(sizeof(XLogPageHeaderData))
SIZE_OF_LONG_PHD = 40  # MAXALIGN(sizeof(XLogLongPageHeaderData))

# hot path: magic, info, tli, pageaddr, rem_len
PAGE_HEADER = struct.Struct("<HHIQI")
LONG_PAGE_HEADER = struct.Struct("<HHIQI4xQII")

# --- record header (XLogRecord) -------------------------------------------------------------
SIZE_OF_XLOG_RECORD = 24
XL_CRC_OFFSET = 20  # offsetof(XLogRecord, xl_crc)
# tot_len, xid, prev, info, rmid, crc
RECORD_HEADER = struct.Struct("<IIQBB2xI")
XLR_INFO_MASK = 0x0F
XLR_RMGR_INFO_MASK = 0xF0
XLR_SPECIAL_REL_UPDATE = 0x01
XLR_CHECK_CONSISTENCY = 0x02

# --- fragment headers (XLogRecordBlockHeader and friends) ----------------------------------
XLR_MAX_BLOCK_ID = 32
XLR_BLOCK_ID_DATA_SHORT = 255
XLR_BLOCK_ID_DATA_LONG = 254
XLR_BLOCK_ID_ORIGIN = 253
XLR_BLOCK_ID_TOPLEVEL_XID = 252  # 14+

BKPBLOCK_FORK_MASK = 0x0F
BKPBLOCK_FLAG_MASK = 0xF0
BKPBLOCK_HAS_IMAGE = 0x10
BKPBLOCK_HAS_DATA = 0x20
BKPBLOCK_WILL_INIT = 0x40
BKPBLOCK_SAME_REL = 0x80

BLOCK_HEADER = struct.Struct("<BH")  # fork_flags, data_length (after the id byte)
IMAGE_HEADER = struct.Struct("<HHB")  # length, hole_offset, bimg_info
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
RELFILE = struct.Struct("<III")

# bimg_info bits. Their meaning changed in 15 (lz4/zstd were added).
BKPIMAGE_HAS_HOLE = 0x01
# 13-14
BKPIMAGE_IS_COMPRESSED_PRE15 = 0x02
BKPIMAGE_APPLY_PRE15 = 0x04
# 15+
BKPIMAGE_APPLY = 0x02
BKPIMAGE_COMPRESS_PGLZ = 0x04
BKPIMAGE_COMPRESS_LZ4 = 0x08
BKPIMAGE_COMPRESS_ZSTD = 0x10

FORK_NAMES = ("main", "fsm", "vm", "init")

# --- resource managers ---------------------------------------------------------------------
# The rmgr table, ids and record codes live in parse/rmgr (ids.py, xlog.py); the names below are
# theirs, taken on first use (module __getattr__): parse.rmgr's modules import parse.record,
# which imports this module, so they cannot be imported here up front.
_FROM_RMGR = {
    "RMGR_NAMES": ("ids", "RMGR_NAMES"), "RM_MAX_BUILTIN_ID": ("ids", "RM_MAX_BUILTIN_ID"),
    "RM_MIN_CUSTOM_ID": ("ids", "RM_MIN_CUSTOM_ID"),
    "RM_MAX_CUSTOM_ID": ("ids", "RM_MAX_CUSTOM_ID"), "RM_XLOG_ID": ("ids", "RM_XLOG_ID"),
    "RM_XACT_ID": ("ids", "RM_XACT_ID"), "RM_LOGICALMSG_ID": ("ids", "RM_LOGICALMSG_ID"),
    "rmgr_name": ("ids", "rmgr_name"), "rmgr_id_valid": ("ids", "rmgr_id_valid"),
    "XLOG_CHECKPOINT_SHUTDOWN": ("xlog", "CHECKPOINT_SHUTDOWN"),
    "XLOG_CHECKPOINT_ONLINE": ("xlog", "CHECKPOINT_ONLINE"),
    "XLOG_SWITCH": ("xlog", "SWITCH"),
    "XLOG_OVERWRITE_CONTRECORD": ("xlog", "OVERWRITE_CONTRECORD"),  # 14+
}


def maxalign(n: int) -> int:
    return (n + 7) & ~7


# --- the construct declarations, made on first use -----------------------------------------
_DECLARED = ("XLogPageHeaderData", "XLogLongPageHeaderData", "XLogRecord",
             "XLogRecordBlockHeader", "XLogRecordBlockImageHeader",
             "XLogRecordBlockCompressHeader", "RelFileLocator")


def _declare() -> dict[str, Any]:
    from construct import Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

    XLogPageHeaderData = Struct(
        "xlp_magic" / Int16ul,
        "xlp_info" / Int16ul,
        "xlp_tli" / Int32ul,
        "xlp_pageaddr" / Int64ul,
        "xlp_rem_len" / Int32ul,
        Padding(4),
    )
    XLogLongPageHeaderData = Struct(  # the short header's fields, then:
        *XLogPageHeaderData.subcons,
        "xlp_sysid" / Int64ul,
        "xlp_seg_size" / Int32ul,
        "xlp_xlog_blcksz" / Int32ul,
    )
    XLogRecord = Struct(
        "xl_tot_len" / Int32ul,
        "xl_xid" / Int32ul,
        "xl_prev" / Int64ul,
        "xl_info" / Int8ul,
        "xl_rmid" / Int8ul,
        Padding(2),
        "xl_crc" / Int32ul,
    )
    XLogRecordBlockHeader = Struct("id" / Int8ul, "fork_flags" / Int8ul, "data_length" / Int16ul)
    XLogRecordBlockImageHeader = Struct(
        "length" / Int16ul, "hole_offset" / Int16ul, "bimg_info" / Int8ul
    )
    XLogRecordBlockCompressHeader = Struct("hole_length" / Int16ul)
    RelFileLocator = Struct("spcOid" / Int32ul, "dbOid" / Int32ul, "relNumber" / Int32ul)
    return {name: value for name, value in locals().items() if name in _DECLARED}


def __getattr__(name: str) -> Any:
    if name in _DECLARED:
        globals().update(_declare())
        return globals()[name]
    if name in _FROM_RMGR:
        import importlib

        for ours, (module, theirs) in _FROM_RMGR.items():
            globals()[ours] = getattr(importlib.import_module(f"{__package__}.rmgr.{module}"),
                                      theirs)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
