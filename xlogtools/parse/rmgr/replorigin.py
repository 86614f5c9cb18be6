"""ReplicationOrigin (RM_REPLORIGIN_ID): origin progress and drops, replication/origin.h,
PostgreSQL 13-18."""
from __future__ import annotations

from ..record import Record
from ._util import lsn, main, table_identify

SET = 0x00
DROP = 0x10

identify = table_identify({SET: "SET", DROP: "DROP"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == SET:  # remote_lsn 0, node_id 8, force 10
        return f"set {d.u16(8)}; lsn {lsn(d.u64(0))}; force: {d.u8(10)}"
    if info == DROP:
        return f"drop {d.u16(0)}"
    return ""
