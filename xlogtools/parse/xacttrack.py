"""Which top-level transaction each xid belongs to, and how each transaction ended, followed
through a WAL read: the one tracker replay, gap and schema history build on.

PostgreSQL says who a subtransaction belongs to in several places (access/xact.h, xact.c):
- an ASSIGNMENT record (xl_xact_assignment) lists subtransactions of a top-level one, written
  once PGPROC_MAX_CACHED_SUBXIDS of them are unreported;
- at wal_level=logical, the first record of a subtransaction carries its top-level xid
  (XLR_BLOCK_ID_TOPLEVEL_XID, 14+; XLogRecGetTopXid);
- a COMMIT record lists the committed subtransactions of its transaction, a PREPARE those of
  the prepared one;
- a subtransaction rolled back (ROLLBACK TO SAVEPOINT) writes its own ABORT record, with its
  own committed children; its parent goes on.
COMMIT PREPARED and ROLLBACK PREPARED end the prepared transaction named in the record
(xl_xact_twophase), not the one that writes it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .record import Record
from .rmgr import xact
from .rmgr.ids import RM_XACT_ID


@dataclass(frozen=True, slots=True)
class XactEvent:
    """A commit, abort or prepare record as the tracker took it in."""

    record: xact.XactRecord
    xid: int  # the transaction it ends or prepares (xact.decode's xid)
    status: str  # committed | aborted | prepared
    # The transaction the ended one belonged to when it is a subtransaction rolled back inside
    # its parent (`subxact`): that parent, which goes on. Else xid itself.
    parent: int
    subxact: bool


class XactOutcomes:
    """The subtransaction -> parent map of a WAL read (`top_of`) and the outcome of each
    transaction record fed to it. strict (replay): a transaction record whose data does not
    add up raises RecordDataError and changes nothing; lenient (gap, as describe does): its
    data past the end reads as zeros."""

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self.top_of: dict[int, int] = {}

    def top(self, xid: int) -> int:
        """The top-level transaction of xid as far as known (xid itself when it is one). A
        circle of parents (only damaged records make one: a record naming itself or one of its
        subtransactions as its top) ends the walk where it closes, instead of walking it
        forever."""
        top_of = self.top_of
        seen: set[int] | None = None
        steps = 0
        while xid in top_of:
            steps += 1
            if steps > 64:  # deeper than real nesting goes in practice: watch for a circle
                if seen is None:
                    seen = set()
                if xid in seen:
                    break
                seen.add(xid)
            nxt = top_of[xid]
            if nxt == xid:
                break
            xid = nxt
        return xid

    def see(self, rec: Record) -> None:
        """Note the top-level xid a record carries (XLogRecGetTopXid) for its own xid."""
        if rec.xid and rec.toplevel_xid:
            self.top_of[rec.xid] = rec.toplevel_xid

    def feed(self, rec: Record) -> XactEvent | None:
        """Take a transaction record in: an XactEvent for a commit, abort or prepare; None for
        an assignment (only noted) and for the other records."""
        if rec.rmid != RM_XACT_ID:
            return None
        r = xact.decode(rec, strict=self.strict)
        if r is None:
            return None
        top_of = self.top_of
        if r.kind == "assignment":
            for s in r.subxids:
                top_of[s] = r.xid
            return None
        xid = r.xid
        if r.kind == "prepare":
            for s in r.subxids:
                top_of[s] = xid
            return XactEvent(r, xid, "prepared", xid, False)
        if r.kind == "abort":
            if rec.toplevel_xid:
                top_of[xid] = rec.toplevel_xid
            parent = top_of.get(xid, xid)
            if parent != xid:
                # a subtransaction rolled back inside its parent: the committed children it
                # lists are rolled back with it, and like it belong to that parent
                for s in r.subxids:
                    top_of[s] = parent
                return XactEvent(r, xid, "aborted", parent, True)
        for s in r.subxids:
            top_of[s] = xid
        return XactEvent(r, xid, "committed" if r.is_commit else "aborted", xid, False)
