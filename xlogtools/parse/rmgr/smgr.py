"""Storage (RM_SMGR_ID): relation file creation and truncation, catalog/storage_xlog.h,
PostgreSQL 13-18 (same layouts throughout; RelFileNode became RelFileLocator in 16)."""
from __future__ import annotations

from ..record import Record
from ._util import main, relpathperm, table_identify

CREATE = 0x10
TRUNCATE = 0x20
SMGR_TRUNCATE_HEAP = 0x0001  # xl_smgr_truncate.flags

identify = table_identify({CREATE: "CREATE", TRUNCATE: "TRUNCATE"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == CREATE:  # rlocator (spc, db, rel), forkNum
        return relpathperm(d.u32(0), d.u32(4), d.u32(8), d.i32(12), rec.pg_major)
    if info == TRUNCATE:  # blkno, rlocator, flags
        path = relpathperm(d.u32(4), d.u32(8), d.u32(12), 0, rec.pg_major)
        return f"{path} to {d.u32(0)} blocks flags {d.i32(16)}"
    return ""
