"""Standby (RM_STANDBY_ID): locks, running transactions and invalidations for hot standby,
storage/standbydefs.h, PostgreSQL 13-18.  16+ also list the subtransactions of RUNNING_XACTS
(and spell out "subxid overflowed")."""
from __future__ import annotations

from ..record import Record
from ._util import invalidations_desc, main, table_identify

LOCK = 0x00
RUNNING_XACTS = 0x10
INVALIDATIONS = 0x20

identify = table_identify({LOCK: "LOCK", RUNNING_XACTS: "RUNNING_XACTS",
                           INVALIDATIONS: "INVALIDATIONS"})


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    if info == LOCK:  # nlocks, locks[] {xid, dbOid, relOid}
        n = d.i32(0)
        return "".join(f"xid {d.u32(4 + 12 * i)} db {d.u32(8 + 12 * i)} rel {d.u32(12 + 12 * i)} "
                       for i in range(d.fit(4, n, 12))) + d.past_end(4, n, 12)
    if info == RUNNING_XACTS:
        # xcnt 0, subxcnt 4, subxid_overflow 8, nextXid 12, oldestRunningXid 16,
        # latestCompletedXid 20, xids 24
        xcnt, subxcnt = d.i32(0), d.i32(4)
        out = [f"nextXid {d.u32(12)} latestCompletedXid {d.u32(20)} "
               f"oldestRunningXid {d.u32(16)}"]
        if xcnt > 0:
            out.append(f"; {xcnt} xacts:" + "".join(f" {x}" for x in d.u32_array(24, xcnt))
                       + d.past_end(24, xcnt, 4))
        if d.u8(8):
            out.append("; subxid overflowed" if rec.pg_major >= 16 else "; subxid ovf")
        if rec.pg_major >= 16 and subxcnt > 0:
            sub_off = 24 + 4 * max(xcnt, 0)
            out.append(f"; {subxcnt} subxacts:"
                       + "".join(f" {x}" for x in d.u32_array(sub_off, subxcnt))
                       + d.past_end(sub_off, subxcnt, 4))
        return "".join(out)
    if info == INVALIDATIONS:  # dbId, tsId, relcacheInitFileInval, nmsgs, msgs
        return invalidations_desc(d, 16, d.i32(12), d.u32(0), d.u32(4), d.boolean(8),
                                  rec.pg_major)
    return ""
