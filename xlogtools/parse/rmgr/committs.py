"""CommitTs (RM_COMMIT_TS_ID): commit timestamp SLRU records, access/commit_ts.h,
PostgreSQL 13-18.  13 still knows SETTS (never written any more); page numbers are int64
from 17 on."""
from __future__ import annotations

from ..record import Record
from ..pgtime import timestamptz_to_str
from ._util import main

ZEROPAGE = 0x00
TRUNCATE = 0x10
SETTS = 0x20  # 13 only


def identify(info: int, major: int) -> str | None:
    info &= 0xF0
    if info == ZEROPAGE:
        return "ZEROPAGE"
    if info == TRUNCATE:
        return "TRUNCATE"
    if info == SETTS and major <= 13:
        return "SETTS"
    return None


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    wide = rec.pg_major >= 17
    if info == ZEROPAGE:
        return str(d.i64(0) if wide else d.i32(0))
    if info == TRUNCATE:  # pageno, oldestXid
        if wide:
            return f"pageno {d.i64(0)}, oldestXid {d.u32(8)}"
        return f"pageno {d.i32(0)}, oldestXid {d.u32(4)}"
    if info == SETTS and rec.pg_major <= 13:
        # xl_commit_ts_set: timestamp 0, nodeid 8, mainxid 12; subxids follow
        text = f"set {timestamptz_to_str(d.i64(0))}/{d.u16(8)} for: {d.u32(12)}"
        nsub = (len(d) - 16) // 4
        return text + "".join(f", {x}" for x in d.u32_array(16, max(nsub, 0)))
    return ""
