"""XLOG (RM_XLOG_ID): checkpoints and other records of access/transam/xlog.c; layouts of
catalog/pg_control.h (CheckPoint) and access/xlog_internal.h, PostgreSQL 13-18.

17 added CHECKPOINT_REDO and the wal_level of checkpoints and end-of-recovery records.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ..record import Record
from ..pgtime import timestamptz_to_str
from ._util import lsn, main
from .ids import RM_XLOG_ID

CHECKPOINT_SHUTDOWN = 0x00
CHECKPOINT_ONLINE = 0x10
NOOP = 0x20
NEXTOID = 0x30
SWITCH = 0x40
BACKUP_END = 0x50
PARAMETER_CHANGE = 0x60
RESTORE_POINT = 0x70
FPW_CHANGE = 0x80
END_OF_RECOVERY = 0x90
FPI_FOR_HINT = 0xA0
FPI = 0xB0
OVERWRITE_CONTRECORD = 0xD0  # in 13's later minor releases too
CHECKPOINT_REDO = 0xE0  # 17+

_NAMES = {
    CHECKPOINT_SHUTDOWN: "CHECKPOINT_SHUTDOWN", CHECKPOINT_ONLINE: "CHECKPOINT_ONLINE",
    NOOP: "NOOP", NEXTOID: "NEXTOID", SWITCH: "SWITCH", BACKUP_END: "BACKUP_END",
    PARAMETER_CHANGE: "PARAMETER_CHANGE", RESTORE_POINT: "RESTORE_POINT",
    FPW_CHANGE: "FPW_CHANGE", END_OF_RECOVERY: "END_OF_RECOVERY",
    FPI_FOR_HINT: "FPI_FOR_HINT", FPI: "FPI", OVERWRITE_CONTRECORD: "OVERWRITE_CONTRECORD",
}

# CheckPoint of catalog/pg_control.h: 88 bytes in 13-18. 17 put wal_level (int32) in the
# padding after fullPageWrites, so every other field keeps its offset.
SIZEOF_CHECKPOINT = 88
_CHECKPOINT = struct.Struct("<QIIB3xiQIIIIIII4xqIII4x")
assert _CHECKPOINT.size == SIZEOF_CHECKPOINT


@dataclass(frozen=True)
class CheckPoint:
    """The CheckPoint a checkpoint record carries (also pg_control's checkPointCopy)."""

    redo: int
    timeline: int  # ThisTimeLineID
    prev_timeline: int
    full_page_writes: bool
    wal_level: int | None  # 17+
    next_xid: int  # FullTransactionId: epoch << 32 | xid
    next_oid: int
    next_multi: int
    next_multi_offset: int
    oldest_xid: int
    oldest_xid_db: int
    oldest_multi: int
    oldest_multi_db: int
    time: int  # pg_time_t: seconds since 1970
    oldest_commit_ts_xid: int
    newest_commit_ts_xid: int
    oldest_active_xid: int


def is_checkpoint(rec: Record) -> bool:
    """A CHECKPOINT_SHUTDOWN or CHECKPOINT_ONLINE record."""
    return rec.rmid == RM_XLOG_ID and rec.info & 0xF0 in (CHECKPOINT_SHUTDOWN, CHECKPOINT_ONLINE)


def checkpoint(rec: Record, *, padded: bool = False) -> CheckPoint | None:
    """The CheckPoint of a CHECKPOINT_SHUTDOWN or CHECKPOINT_ONLINE record; None for any other
    record or one whose main data is too short to hold it. padded: what a short record lacks
    reads as zeros, as pg_waldump's describe reads it (None only for other records)."""
    if not is_checkpoint(rec):
        return None
    d = rec.main_data
    if len(d) < SIZEOF_CHECKPOINT:
        if not padded:
            return None
        d = d.ljust(SIZEOF_CHECKPOINT, b"\0")
    f = _CHECKPOINT.unpack_from(d)
    return CheckPoint(f[0], f[1], f[2], bool(f[3]), f[4] if rec.pg_major >= 17 else None,
                      *f[5:])


# wal_level_options: the first entry with the value wins ("replica" over its aliases)
_WAL_LEVELS = {0: "minimal", 1: "replica", 2: "logical"}


def wal_level_name(v: int) -> str:
    return _WAL_LEVELS.get(v, "?")


def identify(info: int, major: int) -> str | None:
    info &= 0xF0
    if info == CHECKPOINT_REDO:
        return "CHECKPOINT_REDO" if major >= 17 else None
    return _NAMES.get(info)


def describe(rec: Record) -> str:
    info = rec.info & 0xF0
    d = main(rec)
    major = rec.pg_major
    if info in (CHECKPOINT_SHUTDOWN, CHECKPOINT_ONLINE):
        cp = checkpoint(rec, padded=True)
        assert cp is not None
        wal_level = f"wal_level {wal_level_name(cp.wal_level or 0)}; " if major >= 17 else ""
        return (f"redo {lsn(cp.redo)}; tli {cp.timeline}; prev tli {cp.prev_timeline}; "
                f"fpw {'true' if cp.full_page_writes else 'false'}; {wal_level}"
                f"xid {cp.next_xid >> 32}:{cp.next_xid & 0xFFFFFFFF}; oid {cp.next_oid}; "
                f"multi {cp.next_multi}; offset {cp.next_multi_offset}; "
                f"oldest xid {cp.oldest_xid} in DB {cp.oldest_xid_db}; "
                f"oldest multi {cp.oldest_multi} in DB {cp.oldest_multi_db}; "
                f"oldest/newest commit timestamp xid: "
                f"{cp.oldest_commit_ts_xid}/{cp.newest_commit_ts_xid}; "
                f"oldest running xid {cp.oldest_active_xid}; "
                f"{'shutdown' if info == CHECKPOINT_SHUTDOWN else 'online'}")
    if info == NEXTOID:
        return str(d.u32(0))
    if info == RESTORE_POINT:
        return d.cstring(8)  # xl_restore_point: rp_time, rp_name
    if info == BACKUP_END:
        return lsn(d.u64(0))
    if info == PARAMETER_CHANGE:
        return (f"max_connections={d.i32(0)} max_worker_processes={d.i32(4)} "
                f"max_wal_senders={d.i32(8)} max_prepared_xacts={d.i32(12)} "
                f"max_locks_per_xact={d.i32(16)} wal_level={wal_level_name(d.i32(20))} "
                f"wal_log_hints={'on' if d.u8(24) else 'off'} "
                f"track_commit_timestamp={'on' if d.u8(25) else 'off'}")
    if info == FPW_CHANGE:
        return "true" if d.u8(0) else "false"
    if info == END_OF_RECOVERY:
        text = (f"tli {d.u32(8)}; prev tli {d.u32(12)}; time {timestamptz_to_str(d.i64(0))}")
        if major >= 17:
            text += f"; wal_level {wal_level_name(d.i32(16))}"
        return text
    if info == OVERWRITE_CONTRECORD:
        return f"lsn {lsn(d.u64(0))}; time {timestamptz_to_str(d.i64(8))}"
    if info == CHECKPOINT_REDO and major >= 17:
        return f"wal_level {wal_level_name(d.i32(0))}"
    return ""
