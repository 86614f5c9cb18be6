"""Database (RM_DBASE_ID): CREATE/DROP DATABASE, commands/dbcommands_xlog.h, PostgreSQL
13-18.  15 split CREATE into CREATE_FILE_COPY and CREATE_WAL_LOG."""
from __future__ import annotations

from ..record import Record
from ._util import main

# 13-14
CREATE_PRE15 = 0x00
DROP_PRE15 = 0x10
# 15+
CREATE_FILE_COPY = 0x00
CREATE_WAL_LOG = 0x10
DROP = 0x20


def identify(info: int, major: int) -> str | None:
    info &= 0xF0
    if major < 15:
        return {CREATE_PRE15: "CREATE", DROP_PRE15: "DROP"}.get(info)
    return {CREATE_FILE_COPY: "CREATE_FILE_COPY", CREATE_WAL_LOG: "CREATE_WAL_LOG",
            DROP: "DROP"}.get(info)


def _drop(rec: Record) -> str:
    d = main(rec)  # db_id, ntablespaces, tablespace_ids[]
    db, n = d.u32(0), d.i32(4)
    return ("dir" + "".join(f" {ts}/{db}" for ts in d.u32_array(8, max(n, 0)))
            + d.past_end(8, n, 4))


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == CREATE_FILE_COPY:  # same layout as 13-14's CREATE: db, ts, src db, src ts
        return f"copy dir {d.u32(12)}/{d.u32(8)} to {d.u32(4)}/{d.u32(0)}"
    if rec.pg_major < 15:
        return _drop(rec) if info == DROP_PRE15 else ""
    if info == CREATE_WAL_LOG:  # db_id, tablespace_id
        return f"create dir {d.u32(4)}/{d.u32(0)}"
    if info == DROP:
        return _drop(rec)
    return ""
