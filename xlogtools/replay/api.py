"""Row-level replay for a Python caller: the row changes of a WAL range, those of some
transactions, the transactions' outcomes (DESIGN.md 4.4).

    from xlogtools.replay import Catalog, Replay

    rp = Replay(["/var/lib/postgresql/15/main"], Catalog.load("cat.json"))
    for ch in rp:                       # RowChange, committed transactions in commit order
        print(ch.commit_time, ch.op, ch.table, ch.old, ch.new)

    hist = SchemaHistory.from_datadir("/evidence/data", dbname="app", start=redo)
    Replay(["/evidence/data/pg_wal"], hist, start=redo)   # each change with the schema in
                                        # force at its LSN (ch.schema_uncertain where unknown)

The engine is `engine.Replay` and the change it yields `change.RowChange`; both are
importable from here too, the path callers use. This module holds the functions over them:
`replay_changes`, `checkpoint_redo_before`, `changes_by_xid`, `read_transactions`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, TypeGuard, cast

from ..errors import RecordDataError
from ..lsn import Lsn
from ..parse.api import PathArg, open_wal
from ..parse.record import Record
from ..parse.rmgr.ids import RM_XACT_ID
from ..parse.rmgr.xlog import checkpoint
from .catalog import Catalog
from .change import RowChange
from .engine import Replay
from .xact import Transaction, XactTracker

if TYPE_CHECKING:
    from .schema_history import SchemaHistory


def _is_history(x: Any) -> TypeGuard[SchemaHistory]:
    from .schema_history import SchemaHistory

    return isinstance(x, SchemaHistory)


def _catalog_source(catalog: "Catalog | SchemaHistory | PathArg") -> "Catalog | SchemaHistory":
    """A Catalog or SchemaHistory as given, or the catalog file loaded."""
    if isinstance(catalog, Catalog) or _is_history(catalog):
        return catalog
    return Catalog.load(cast("PathArg", catalog))  # (a path, by elimination)


def replay_changes(paths: Sequence[PathArg] | PathArg | None,
                   catalog: "Catalog | SchemaHistory | PathArg", *,
                   start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
                   include: str = "committed", tables: Iterable[str] = (),
                   xids: Iterable[int] = (), timezone: str = "UTC",
                   timeline: int | None = None, commit_from: Lsn | str | int | None = None
                   ) -> Iterator[RowChange]:
    """Row changes of the WAL in `paths` (see Replay)."""
    catalog = _catalog_source(catalog)
    yield from Replay(paths, catalog, start=start, end=end, include=include, tables=tables,
                      xids=xids, timezone=timezone, timeline=timeline, commit_from=commit_from)


def checkpoint_redo_before(paths: Sequence[PathArg] | PathArg | None, lsn: Lsn | str | int, *,
                           timeline: int | None = None) -> Lsn | None:
    """The redo point of the last checkpoint record at or before `lsn` (None if the WAL read
    has none). Starting a replay there gives every page changed after it a full-page image
    (full_page_writes), so old rows are complete; pass `commit_from=lsn` to report only what
    ends after `lsn`."""
    target = Lsn(lsn)
    redo: Lsn | None = None
    for rec in open_wal(paths, end=None, timeline=timeline):
        if rec.lsn > target:
            break
        cp = checkpoint(rec, padded=True)
        if cp is not None:
            redo = Lsn(cp.redo)
    return redo


def changes_by_xid(paths: Sequence[PathArg] | PathArg | None,
                   catalog: "Catalog | SchemaHistory | PathArg",
                   xids: Iterable[int], start: Lsn | str | int, *,
                   timeline: int | None = None, timezone: str = "UTC"
                   ) -> dict[int, list[dict[str, Any]]]:
    """{top-level xid: [row change dicts (4.4)]} of the given transactions that committed at or
    after `start` (rolled-back subtransactions left out), read from the redo point of the checkpoint before `start` so that old rows come
    from page images (what a gap analysis needs)."""
    catalog = _catalog_source(catalog)
    redo = checkpoint_redo_before(paths, start, timeline=timeline)
    out: dict[int, list[dict[str, Any]]] = {}
    rp = Replay(paths, catalog, start=redo if redo is not None else start, xids=xids,
                commit_from=start, timezone=timezone, timeline=timeline)
    for ch in rp:
        out.setdefault(ch.xid, []).append(ch.to_dict())
    return out


def read_transactions(paths: Sequence[PathArg] | PathArg | None, *,
                      start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
                      timeline: int | None = None) -> dict[int, Transaction]:
    """Outcome of every top-level transaction whose commit, abort or prepare record is in the
    WAL read (no catalog needed): xid -> Transaction."""
    xacts = XactTracker()
    for rec in _transaction_records(open_wal(paths, start=start, end=end, timeline=timeline)):
        try:
            ended = xacts.feed(rec)
        except RecordDataError:
            continue  # a damaged commit record: its transaction's outcome stays unknown
        if ended is not None and not ended.subxact and ended.end.gid:
            xacts.transactions[ended.top].gid = ended.end.gid  # COMMIT/ABORT PREPARED's own
    return xacts.transactions


def _transaction_records(records: Iterable[Record]) -> Iterator[Record]:
    return (rec for rec in records if rec.rmid == RM_XACT_ID)


__all__ = ["Replay", "RowChange", "Transaction", "changes_by_xid", "checkpoint_redo_before",
           "read_transactions", "replay_changes"]
