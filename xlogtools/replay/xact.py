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
from dataclasses import dataclass, field

from ..lsn import Lsn
from ..parse.record import Record
from .types import BadDatum, timestamptz_usecs_out
from .tuples import _C  # the optional C deformer, for the commit time in UTC

from ..parse.rmgr import xact as _xact
from ..parse.rmgr.ids import RM_XACT_ID  # noqa: F401
# The record codes and xinfo flags are access/xact.h's, declared once in the rmgr module.
from ..parse.rmgr.xact import (ABORT, ABORT_PREPARED, ASSIGNMENT, COMMIT,  # noqa: F401
                               COMMIT_PREPARED, HAS_INFO, OPMASK, PREPARE, XINFO_HAS_AE_LOCKS,
                               XINFO_HAS_DBINFO, XINFO_HAS_DROPPED_STATS, XINFO_HAS_GID,
                               XINFO_HAS_INVALS, XINFO_HAS_ORIGIN, XINFO_HAS_RELFILENODES,
                               XINFO_HAS_SUBXACTS, XINFO_HAS_TWOPHASE)


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


def parse_xact(rec: Record) -> XactEnd | tuple[int, list[int]] | None:
    """An XactEnd, an assignment (top xid, subxids), or None for other xact records. A
    record whose counts run past its data raises RecordDataError (naming its LSN).
    (parse.rmgr.xact.decode read as the replay engine keeps it.)"""
    r = _xact.decode(rec)
    if r is None:
        return None
    if r.kind == "assignment":
        return r.xid, list(r.subxids)
    kind = "commit" if r.is_commit else "abort" if r.is_abort else "prepare"
    # the gid as replay has always shown it: undecodable bytes replaced
    gid = r.gid.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if r.gid else ""
    return XactEnd(kind, r.xid, list(r.subxids), r.time, r.lsn, gid, r.db_id)


@dataclass
class XactState:
    """What the WAL read says about one top-level transaction."""

    xid: int
    status: str = "in_progress"  # committed | aborted | in_progress
    end: XactEnd | None = None
    subxids: set[int] = field(default_factory=set)
    prepared: XactEnd | None = None
