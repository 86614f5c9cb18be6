"""Transaction outcomes from RM_XACT_ID records (access/xact.h; ParseCommitRecord,
ParseAbortRecord, ParsePrepareRecord of xactdesc.c), PostgreSQL 13-18.

Commit records list the committed subtransactions; a subtransaction rolled back (ROLLBACK TO
SAVEPOINT) writes its own ABORT record; 2PC writes PREPARE, then COMMIT_PREPARED or
ABORT_PREPARED naming the prepared xid (xl_xact_twophase). ASSIGNMENT records (and, at
wal_level=logical, the top-level xid of 14+ records) say which top-level transaction a
subtransaction belongs to before its commit does.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

from ..errors import RecordDataError
from ..lsn import Lsn
from ..parse.record import Record
from .types import BadDatum, timestamptz_usecs_out
from .tuples import _C  # the optional C deformer, for the commit time in UTC

RM_XACT_ID = 1
# The record codes and xinfo flags are access/xact.h's, declared once in the rmgr module.
from ..parse.rmgr.xact import (ABORT, ABORT_PREPARED, ASSIGNMENT, COMMIT,  # noqa: E402,F401
                               COMMIT_PREPARED, HAS_INFO, OPMASK, PREPARE, XINFO_HAS_AE_LOCKS,
                               XINFO_HAS_DBINFO, XINFO_HAS_DROPPED_STATS, XINFO_HAS_GID,
                               XINFO_HAS_INVALS, XINFO_HAS_ORIGIN, XINFO_HAS_RELFILENODES,
                               XINFO_HAS_SUBXACTS, XINFO_HAS_TWOPHASE)

_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from


@dataclass
class XactEnd:
    """A parsed commit/abort/prepare record."""

    kind: str  # 'commit' | 'abort' | 'prepare'
    xid: int  # the top-level (or, for a subtransaction abort, the sub) xid it ends
    subxacts: list[int]
    time_usecs: int  # TimestampTz: microseconds since 2000-01-01 UTC
    lsn: Lsn
    gid: str = ""
    db_id: int = 0

    @functools.cached_property
    def time(self) -> str | None:
        """The commit time as text; None when the record's timestamp is outside PostgreSQL's
        range (a damaged record whose CRC was made right). Made once."""
        if _C is not None:
            return _C.timestamptz_utc(self.time_usecs)  # type: ignore[no-any-return]
        try:
            return timestamptz_usecs_out(self.time_usecs)
        except BadDatum:
            return None


def _parse_commit_abort(rec: Record, kind: str) -> XactEnd:
    d = rec.main_data
    major = rec.pg_major
    t = _i64(d, 0)[0]
    pos = 8
    xinfo = 0
    if rec.info & HAS_INFO:
        xinfo = _u32(d, pos)[0]
        pos += 4
    db_id = 0
    if xinfo & XINFO_HAS_DBINFO:
        db_id = _u32(d, pos)[0]
        pos += 8
    subxacts: list[int] = []
    if xinfo & XINFO_HAS_SUBXACTS:
        n = max(_i32(d, pos)[0], 0)
        subxacts = list(struct.unpack_from(f"<{n}I", d, pos + 4))
        pos += 4 + 4 * n
    if xinfo & XINFO_HAS_RELFILENODES:
        n = max(_i32(d, pos)[0], 0)
        pos += 4 + 12 * n
    if major >= 15 and xinfo & XINFO_HAS_DROPPED_STATS:
        n = max(_i32(d, pos)[0], 0)
        pos += 4 + n * (16 if major >= 18 else 12)
    if kind == "commit" and xinfo & XINFO_HAS_INVALS:
        n = max(_i32(d, pos)[0], 0)
        pos += 4 + 16 * n
    xid = rec.xid
    gid = ""
    if xinfo & XINFO_HAS_TWOPHASE:
        xid = _u32(d, pos)[0]
        pos += 4
        if xinfo & XINFO_HAS_GID:
            end = d.find(b"\0", pos)
            gid = d[pos:end if end >= 0 else len(d)].decode("utf-8", "replace")
    return XactEnd(kind, xid, subxacts, t, rec.lsn, gid, db_id)


def _parse_prepare(rec: Record) -> XactEnd:
    """xl_xact_prepare: magic, total_len, xid, database, prepared_at, owner, nsubxacts, ...,
    then the MAXALIGNed gid and subxact arrays (15 added two stats counts)."""
    d = rec.main_data
    major = rec.pg_major
    xid, db = _u32(d, 8)[0], _u32(d, 12)[0]
    t = _i64(d, 16)[0]
    nsub = max(_i32(d, 28)[0], 0)
    if major >= 15:
        gidlen, pos = struct.unpack_from("<H", d, 54)[0], 72
    else:
        gidlen, pos = struct.unpack_from("<H", d, 46)[0], 64
    gid = d[pos:pos + gidlen].split(b"\0", 1)[0].decode("utf-8", "replace")
    pos += (gidlen + 7) & ~7
    subxacts = list(struct.unpack_from(f"<{nsub}I", d, pos)) if nsub else []
    return XactEnd("prepare", xid, subxacts, t, rec.lsn, gid, db)


def parse_xact(rec: Record) -> XactEnd | tuple[int, list[int]] | None:
    """An XactEnd, an assignment (top xid, subxids), or None for other xact records. A
    record whose counts run past its data raises RecordDataError (naming its LSN)."""
    op = rec.info & OPMASK
    try:
        if op in (COMMIT, COMMIT_PREPARED):
            return _parse_commit_abort(rec, "commit")
        if op in (ABORT, ABORT_PREPARED):
            return _parse_commit_abort(rec, "abort")
        if op == PREPARE:
            return _parse_prepare(rec)
        if op == ASSIGNMENT:
            d = rec.main_data
            n = max(_i32(d, 4)[0], 0)
            return _u32(d, 0)[0], list(struct.unpack_from(f"<{n}I", d, 8))
    except (struct.error, IndexError) as exc:
        raise RecordDataError(f"Transaction record at {rec.lsn} (info {rec.info:#04x}): its "
                              f"data does not add up ({exc})", lsn=rec.lsn) from None
    return None


@dataclass
class XactState:
    """What the WAL read says about one top-level transaction."""

    xid: int
    status: str = "in_progress"  # committed | aborted | in_progress
    end: XactEnd | None = None
    subxids: set[int] = field(default_factory=set)
    prepared: XactEnd | None = None
