"""RelMap (RM_RELMAP_ID): relation mapper file updates, utils/relmapper.h, PostgreSQL 13-18."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify

UPDATE = 0x00

identify = table_identify({UPDATE: "UPDATE"})


def describe(rec: Record) -> str:
    if rec.info & 0xF0 != UPDATE:
        return ""
    d = main(rec)  # dbid, tsid, nbytes, data
    size = d.u32(8) if rec.pg_major < 15 else d.i32(8)
    return f"database {d.u32(0)} tablespace {d.u32(4)} size {size}"
