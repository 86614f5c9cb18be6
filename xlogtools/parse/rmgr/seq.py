"""Sequence (RM_SEQ_ID): sequence page logging, commands/sequence.h, PostgreSQL 13-18."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify

LOG = 0x00

identify = table_identify({LOG: "LOG"})


def describe(rec: Record) -> str:
    if rec.info & 0xF0 != LOG:
        return ""
    d = main(rec)  # xl_seq_rec: locator (spc, db, rel)
    return f"rel {d.u32(0)}/{d.u32(4)}/{d.u32(8)}"
