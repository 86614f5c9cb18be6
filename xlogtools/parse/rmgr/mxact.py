"""MultiXact (RM_MULTIXACT_ID): multixact SLRU records, access/multixact.h, PostgreSQL 13-18.
Page numbers are int64 from 17 on."""
from __future__ import annotations

import struct

from ..record import Record
from ._util import main, table_identify

ZERO_OFF_PAGE = 0x00
ZERO_MEM_PAGE = 0x10
CREATE_ID = 0x20
TRUNCATE_ID = 0x30

identify = table_identify({ZERO_OFF_PAGE: "ZERO_OFF_PAGE", ZERO_MEM_PAGE: "ZERO_MEM_PAGE",
                           CREATE_ID: "CREATE_ID", TRUNCATE_ID: "TRUNCATE_ID"})

# MultiXactStatus values, as out_member() prints them
_STATUS = {0: "(keysh) ", 1: "(sh) ", 2: "(fornokeyupd) ", 3: "(forupd) ", 4: "(nokeyupd) ",
           5: "(upd) "}


MULTIXACT_UPDATE_STATUSES = (4, 5)  # MultiXactStatusNoKeyUpdate, MultiXactStatusUpdate


def create_members(rec: Record) -> tuple[int, list[tuple[int, int]]] | None:
    """(multixact id, [(xid, status)]) of a CREATE_ID record (xl_multixact_create); None for
    other records or one whose member count runs past its data."""
    if rec.info & 0xF0 != CREATE_ID:
        return None
    data = rec.main_data
    if len(data) < 12:
        return None
    mid, _moff, n = struct.unpack_from("<IIi", data, 0)
    if n < 0 or len(data) < 12 + 8 * n:
        return None
    return mid, [struct.unpack_from("<Ii", data, 12 + 8 * i) for i in range(n)]


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info in (ZERO_OFF_PAGE, ZERO_MEM_PAGE):
        return str(d.i64(0) if rec.pg_major >= 17 else d.i32(0))
    if info == CREATE_ID:  # mid, moff, nmembers, members[] {xid, status}
        n = d.i32(8)
        out = [f"{d.u32(0)} offset {d.u32(4)} nmembers {n}: "]
        for i in range(d.fit(12, n, 8)):
            out.append(f"{d.u32(12 + 8 * i)} {_STATUS.get(d.i32(16 + 8 * i), '(unk) ')}")
        out.append(d.past_end(12, n, 8))
        return "".join(out)
    if info == TRUNCATE_ID:
        # oldestMultiDB, startTruncOff, endTruncOff, startTruncMemb, endTruncMemb
        return (f"offsets [{d.u32(4)}, {d.u32(8)}), "
                f"members [{d.u32(12)}, {d.u32(16)})")
    return ""
