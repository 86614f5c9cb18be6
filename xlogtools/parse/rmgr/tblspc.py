"""Tablespace (RM_TBLSPC_ID): CREATE/DROP TABLESPACE, commands/tablespace.h, PostgreSQL 13-18."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify

CREATE = 0x00
DROP = 0x10

identify = table_identify({CREATE: "CREATE", DROP: "DROP"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == CREATE:  # ts_id, ts_path (NUL-terminated)
        return f'{d.u32(0)} "{d.cstring(4)}"'
    if info == DROP:
        return str(d.u32(0))
    return ""
