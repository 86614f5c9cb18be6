"""Transaction outcomes as the replay engine keeps them, PostgreSQL 13-18: each commit,
abort and prepare record as an XactEnd (its commit time as text), each top-level
transaction's Transaction (what read_transactions returns).

Which transaction a subtransaction belongs to and how a record ends one (assignments, the
top-level xid of records, subtransaction aborts, two-phase commit) is the shared tracker's
knowledge (parse/xacttrack.py); the records are read by parse/rmgr/xact.decode
(ParseCommitRecord, ParseAbortRecord, ParsePrepareRecord of xactdesc.c).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..lsn import Lsn
from ..parse.record import Record
from ..parse.xacttrack import XactOutcomes
from .types import BadDatum, timestamptz_usecs_out
from .tuples import NATIVE  # the optional C deformer, for the commit time in UTC

from ..parse.rmgr import xact as _xact


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
        if NATIVE is not None:
            return NATIVE.timestamptz_utc(self.time_usecs)
        try:
            return timestamptz_usecs_out(self.time_usecs)
        except BadDatum:
            return None


def xact_end(r: _xact.XactRecord) -> XactEnd:
    """A decoded commit, abort or prepare record as the replay engine keeps it."""
    kind = "commit" if r.is_commit else "abort" if r.is_abort else "prepare"
    # the gid as replay has always shown it: undecodable bytes replaced
    gid = r.gid.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if r.gid else ""
    return XactEnd(kind, r.xid, list(r.subxids), r.time, r.lsn, gid, r.db_id)


@dataclass
class Transaction:
    """Outcome of a top-level transaction as far as the WAL read shows."""

    xid: int
    status: str
    commit_lsn: Lsn | None = None  # the LSN of its commit (or abort) record
    commit_time: str | None = None
    subxids: list[int] = field(default_factory=list)
    gid: str = ""  # 2PC
    prepared_lsn: Lsn | None = None


@dataclass(frozen=True)
class Ended:
    """A commit or abort record as the tracker took it in."""

    end: XactEnd
    top: int  # the top-level transaction it ends, or (`subxact`) the parent of the one it ends
    status: str  # committed | aborted
    subxact: bool  # a subtransaction rolled back inside its parent, which goes on


class XactTracker:
    """Transaction outcomes of a WAL read, fed its transaction records: each top-level xid's
    Transaction (status, commit LSN and time, subxids, gid, prepared LSN), kept on top of the
    shared tracker (parse/xacttrack.py, strict: a damaged transaction record raises
    RecordDataError), which knows which transaction each subtransaction belongs to (`top_of`,
    which callers may also fill from the top-level xid of other records). The replay engine
    keeps its row changes by it; read_transactions is what it knows after a read."""

    def __init__(self) -> None:
        self.outcomes = XactOutcomes(strict=True)
        self.top_of: dict[int, int] = self.outcomes.top_of
        self.transactions: dict[int, Transaction] = {}

    def top(self, xid: int) -> int:
        """The top-level xid of xid as far as known (xid itself when it is one)."""
        return self.outcomes.top(xid)

    def feed(self, rec: Record) -> Ended | None:
        """Take a transaction record in: an Ended for a commit or abort, None for the others
        (assignments and prepares are only noted). A record whose data does not add up
        raises RecordDataError and changes nothing."""
        ev = self.outcomes.feed(rec)
        if ev is None:
            return None
        end = xact_end(ev.record)
        if ev.status == "prepared":
            t = self.transactions.setdefault(end.xid, Transaction(end.xid, "in_progress"))
            t.gid, t.prepared_lsn = end.gid, end.lsn
            t.subxids = sorted(set(t.subxids) | set(end.subxacts))
            return None
        if ev.subxact:
            return Ended(end, ev.parent, ev.status, True)
        t = self.transactions.setdefault(ev.xid, Transaction(ev.xid, ev.status))
        t.status = ev.status
        t.commit_lsn = end.lsn
        t.commit_time = end.time
        t.subxids = sorted(set(t.subxids) | set(end.subxacts))
        return Ended(end, ev.xid, ev.status, False)

    def in_progress(self, xid: int) -> int:
        """The top-level transaction of xid, still open at the end of the read: known as
        in progress from now on."""
        top = self.top(xid)
        self.transactions.setdefault(top, Transaction(top, "in_progress"))
        return top
