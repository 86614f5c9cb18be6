"""BRIN (RM_BRIN_ID): BRIN index records of access/brin_xlog.h, PostgreSQL 13-18 (unchanged)."""
from __future__ import annotations

from ..record import Record
from ._util import main

CREATE_INDEX = 0x00
INSERT = 0x10
UPDATE = 0x20
SAMEPAGE_UPDATE = 0x30
REVMAP_EXTEND = 0x40
DESUMMARIZE = 0x50
OPMASK = 0x70
INIT_PAGE = 0x80

_NAMES = {CREATE_INDEX: "CREATE_INDEX", INSERT: "INSERT", INSERT | INIT_PAGE: "INSERT+INIT",
          UPDATE: "UPDATE", UPDATE | INIT_PAGE: "UPDATE+INIT",
          SAMEPAGE_UPDATE: "SAMEPAGE_UPDATE", REVMAP_EXTEND: "REVMAP_EXTEND",
          DESUMMARIZE: "DESUMMARIZE"}


def identify(info: int, major: int) -> str | None:
    return _NAMES.get(info & 0xF0)


def describe(rec: Record) -> str:
    info = rec.info & OPMASK
    d = main(rec)
    if info == CREATE_INDEX:  # pagesPerRange, version
        return f"v{d.u16(4)} pagesPerRange {d.u32(0)}"
    if info == INSERT:  # heapBlk, pagesPerRange, offnum
        return f"heapBlk {d.u32(0)} pagesPerRange {d.u32(4)} offnum {d.u16(8)}"
    if info == UPDATE:  # oldOffnum, then an xl_brin_insert at 4
        return (f"heapBlk {d.u32(4)} pagesPerRange {d.u32(8)} old offnum {d.u16(0)}, "
                f"new offnum {d.u16(12)}")
    if info == SAMEPAGE_UPDATE:
        return f"offnum {d.u16(0)}"
    if info == REVMAP_EXTEND:
        return f"targetBlk {d.u32(0)}"
    if info == DESUMMARIZE:  # pagesPerRange, heapBlk, regOffset
        return f"pagesPerRange {d.u32(0)}, heapBlk {d.u32(4)}, page offset {d.u16(8)}"
    return ""
