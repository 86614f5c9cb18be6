"""CLOG (RM_CLOG_ID): commit log page zeroing and truncation, access/clog.h, PostgreSQL 13-18.
Page numbers are int64 from 17 on."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify

ZEROPAGE = 0x00
TRUNCATE = 0x10

identify = table_identify({ZEROPAGE: "ZEROPAGE", TRUNCATE: "TRUNCATE"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    wide = rec.pg_major >= 17
    if info == ZEROPAGE:
        return f"page {d.i64(0) if wide else d.i32(0)}"
    if info == TRUNCATE:  # pageno, oldestXact, oldestXactDb
        if wide:
            return f"page {d.i64(0)}; oldestXact {d.u32(8)}"
        return f"page {d.i32(0)}; oldestXact {d.u32(4)}"
    return ""
