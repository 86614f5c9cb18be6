"""Primary vs standby after a crash or failover: positions, divergence, and every transaction
the old primary committed that the standby never got (DESIGN.md 4.5, docs/gap.md).

The question pg_rewind answers only in passing ("servers diverged at WAL location X on
timeline N") is the start here: from that point (or from the end of what the standby
received, when it was not promoted) every commit record in the primary's WAL is a lost
transaction; aborted transactions and rolled-back subtransactions are not lost data. With a
catalog snapshot, the replay engine adds the rows of each lost transaction.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .errors import ClusterMismatch, InputError
from .lsn import Lsn
from .parse.reader import WalReader
from .parse.record import Record
from .parse.rmgr import xact
from .parse.source import WalSource

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
RM_XACT_ID = 1


def pg_time(ts: int) -> str:
    """TimestampTz (microseconds since 2000-01-01 UTC) as 'YYYY-MM-DD HH:MM:SS.ffffff+00'."""
    t = PG_EPOCH + dt.timedelta(microseconds=ts)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"


@dataclass
class Position:
    end_lsn: Lsn | None  # where the next record would start
    last_record_lsn: Lsn | None
    timeline: int
    reason: str | None = None  # why its WAL ends there
    source: str = "wal"  # "wal" (read from files) or "server" (asked a live server)

    def as_dict(self) -> dict[str, Any]:
        return {"end_lsn": str(self.end_lsn) if self.end_lsn is not None else None,
                "last_record_lsn": str(self.last_record_lsn) if self.last_record_lsn is not None else None,
                "timeline": self.timeline, "reason": self.reason, "source": self.source}


@dataclass
class Divergence:
    lsn: Lsn
    from_timeline: int
    to_timeline: int

    def as_dict(self) -> dict[str, Any]:
        return {"lsn": str(self.lsn), "from_timeline": self.from_timeline,
                "to_timeline": self.to_timeline}

    def pg_rewind_text(self) -> str:
        return f"servers diverged at WAL location {self.lsn} on timeline {self.from_timeline}"


@dataclass
class Transaction:
    xid: int
    commit_lsn: Lsn
    commit_time: str
    subxids: list[int]
    relations: list[str]
    first_lsn: Lsn
    kind: str = "commit"  # commit | commit_prepared
    gid: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"xid": self.xid, "commit_lsn": str(self.commit_lsn),
                "commit_time": self.commit_time, "subxids": self.subxids,
                "relations": self.relations, "first_lsn": str(self.first_lsn),
                "kind": self.kind, "gid": self.gid, "changes": self.changes}


@dataclass
class GapReport:
    primary: Position
    standby: Position
    bytes_behind: int | None
    divergence: Divergence | None
    cut_lsn: Lsn  # WAL of the primary at or after this is missing on the standby
    lost_transactions: list[Transaction]
    only_on_standby: list[Transaction]
    aborted_after_cut: list[int]
    in_progress_at_end: list[int]
    window: dict[str, Any]
    inputs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    system_identifier: int = 0
    pg_major: int = 0
    tool_version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary.as_dict(), "standby": self.standby.as_dict(),
            "bytes_behind": self.bytes_behind,
            "divergence": self.divergence.as_dict() if self.divergence else None,
            "cut_lsn": str(self.cut_lsn),
            "lost_transactions": [t.as_dict() for t in self.lost_transactions],
            "only_on_standby": [t.as_dict() for t in self.only_on_standby],
            "aborted_after_cut": self.aborted_after_cut,
            "in_progress_at_end": self.in_progress_at_end,
            "window": self.window, "inputs": self.inputs, "notes": self.notes,
            "system_identifier": str(self.system_identifier), "pg_major": self.pg_major,
            "tool_version": self.tool_version,
        }


# --- reading one side ------------------------------------------------------------------------

@dataclass
class _Side:
    name: str
    source: WalSource
    timeline: int
    expected: list[tuple[int, Lsn, Lsn | None]]


def _open_side(name: str, paths: Sequence[str | os.PathLike[str]]) -> _Side:
    try:
        src = WalSource.open(list(paths))
    except InputError as exc:
        raise InputError(f"{name}: {exc.message}", file=exc.file) from None
    tli = max(src.timelines())
    return _Side(name, src, tli, src.expected_timelines(tli))


def _end_of(side: _Side, start: Lsn | None = None) -> tuple[Position, WalReader]:
    reader = WalReader(side.source, start=start, timeline=side.timeline)
    for _ in reader:
        pass
    eow = reader.end_of_wal
    assert eow is not None
    return Position(eow.lsn, eow.last_record_lsn, side.timeline, eow.reason.value), reader


def find_divergence(primary: list[tuple[int, Lsn, Lsn | None]],
                    standby: list[tuple[int, Lsn, Lsn | None]]) -> Divergence | None:
    """Where two timeline histories part (pg_rewind's findCommonAncestorTimeline): the last
    timeline they share, at the earlier of the two points where each left it."""
    n = min(len(primary), len(standby))
    for i in range(n):
        (tp, bp, ep), (ts, bs, es) = primary[i], standby[i]
        if tp != ts or bp != bs:
            prev = primary[i - 1] if i else None
            if prev is None:
                return None
            return Divergence(Lsn(bp if bp < bs else bs), prev[0], max(tp, ts))
        if ep != es:
            cut = min(e for e in (ep, es) if e is not None) if (ep or es) else None
            if cut is None:
                return None
            nxt = standby[i + 1][0] if ep is None or (es is not None and es < ep) else \
                primary[i + 1][0] if i + 1 < len(primary) else ts
            return Divergence(Lsn(cut), tp, nxt)
    return None


# --- transactions ---------------------------------------------------------------------------

@dataclass
class _Open:
    first_lsn: int
    rels: set[tuple[int, int, int]] = field(default_factory=set)


class _Tracker:
    """Follows transactions through a WAL stream: which xids wrote what, and how they ended."""

    def __init__(self, cut: int, rel_name: Callable[[tuple[int, int, int]], str | None]) -> None:
        self.cut = cut
        self.rel_name = rel_name
        self.open: dict[int, _Open] = {}
        self.parent: dict[int, int] = {}
        self.lost: list[Transaction] = []
        self.aborted_after: list[int] = []
        self.prepared: dict[int, _Open] = {}

    def top(self, xid: int) -> int:
        while xid in self.parent:
            xid = self.parent[xid]
        return xid

    def feed(self, rec: Record) -> None:
        xid = rec.xid
        if rec.rmid == RM_XACT_ID:
            self._xact(rec)
            return
        if not xid:
            return
        if rec.toplevel_xid:
            self.parent[xid] = rec.toplevel_xid
        t = self.open.get(self.top(xid))
        if t is None:
            t = self.open[self.top(xid)] = _Open(int(rec.lsn))
        for b in rec.blocks:
            if b.fork == 0:
                t.rels.add((b.spc, b.db, b.rel))

    def _merge(self, xid: int, subxacts: list[int], lsn: int) -> _Open:
        """The transaction and its committed subtransactions' writes, as one."""
        t = self.open.pop(xid, None) or _Open(lsn)
        for sub in subxacts:
            self.parent[sub] = xid
            o = self.open.pop(sub, None)
            if o is not None:
                _merge_into(t, o)
        return t

    def _xact(self, rec: Record) -> None:
        op = rec.info & xact.OPMASK
        if op == xact.ASSIGNMENT:
            d = rec.main_data
            top = int.from_bytes(d[0:4], "little")
            n = int.from_bytes(d[4:8], "little", signed=True)
            for i in range(max(n, 0)):
                self.parent[int.from_bytes(d[8 + 4 * i:12 + 4 * i], "little")] = top
            return
        if op == xact.PREPARE:
            p = xact.parse_prepare(rec)
            top = p.twophase_xid or rec.xid
            self.prepared[top] = self._merge(top, p.subxacts, int(rec.lsn))
            return
        if op in (xact.COMMIT, xact.COMMIT_PREPARED, xact.ABORT, xact.ABORT_PREPARED):
            commit = op in (xact.COMMIT, xact.COMMIT_PREPARED)
            p = xact.parse_commit_or_abort(rec, commit)
            xid = p.twophase_xid if op in (xact.COMMIT_PREPARED, xact.ABORT_PREPARED) else rec.xid
            if not commit and (rec.xid in self.parent or (rec.toplevel_xid and rec.xid != rec.toplevel_xid)):
                # a subtransaction rolled back inside its parent: its writes are void
                for sub in [rec.xid, *p.subxacts]:
                    self.parent.pop(sub, None)
                    self.open.pop(sub, None)
                return
            if xid in self.prepared:
                t = self.prepared.pop(xid)
            else:
                t = self._merge(xid, p.subxacts, int(rec.lsn))
            if int(rec.lsn) < self.cut:
                return
            if not commit:
                self.aborted_after.append(xid)
                return
            rels = sorted(t.rels)
            self.lost.append(Transaction(
                xid=xid, commit_lsn=rec.lsn, commit_time=pg_time(p.xact_time),
                subxids=sorted(p.subxacts),
                relations=[self.rel_name(r) or f"{r[0]}/{r[1]}/{r[2]}" for r in rels],
                first_lsn=Lsn(t.first_lsn), kind="commit" if op == xact.COMMIT else "commit_prepared",
                gid=p.twophase_gid or None))


def _merge_into(t: _Open, o: _Open) -> None:
    t.rels |= o.rels
    t.first_lsn = min(t.first_lsn, o.first_lsn)


def _file_facts(paths: set[Path]) -> list[dict[str, Any]]:
    out = []
    for p in sorted(paths):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out.append({"path": str(p), "size": p.stat().st_size, "sha256": h.hexdigest()})
    return out


# --- the analysis ----------------------------------------------------------------------------

def analyze(primary: Sequence[str | os.PathLike[str]], standby: Sequence[str | os.PathLike[str]],
            *, standby_position: Position | None = None, catalog: Any = None,
            changes: Callable[..., Any] | None = None) -> GapReport:
    """Compare a primary's WAL with a standby's (its WAL files, or a position read from a
    live standby as `standby_position`). `changes(paths, xids, start)`, when given, returns
    {xid: [row change dicts]} for the lost transactions (the replay engine)."""
    p_side = _open_side("primary", primary)
    assert p_side.source.cluster is not None
    notes: list[str] = []
    s_side: _Side | None = None
    if standby:
        s_side = _open_side("standby", standby)
        assert s_side.source.cluster is not None
        if s_side.source.cluster.sysid != p_side.source.cluster.sysid:
            raise ClusterMismatch(
                f"the primary and the standby are different database systems: system identifiers "
                f"{p_side.source.cluster.sysid} and {s_side.source.cluster.sysid}")
    p_pos, p_reader = _end_of(p_side)
    if standby_position is not None:
        s_pos = standby_position
    elif s_side is not None:
        s_pos, _ = _end_of(s_side)
    else:
        raise InputError("no standby WAL or position given")
    divergence = find_divergence(p_side.expected, s_side.expected) if s_side else None
    if divergence is not None:
        cut = divergence.lsn
    else:
        if s_pos.end_lsn is None:
            raise InputError("the standby has no WAL at all: nothing tells how far it got")
        cut = s_pos.end_lsn
    if p_pos.end_lsn is not None and cut > p_pos.end_lsn and divergence is None:
        notes.append(f"the standby's WAL reaches {cut}, beyond the primary's end {p_pos.end_lsn}: "
                     "the primary's WAL given here is incomplete (missing or older segments), "
                     "or the standby is not this primary's")
    behind = int(p_pos.end_lsn) - int(cut) if p_pos.end_lsn is not None else None
    rel_name = _relation_namer(catalog)
    tracker = _Tracker(int(cut), rel_name)
    first_seen: Lsn | None = None
    for rec in WalReader(p_side.source, timeline=p_side.timeline):
        if first_seen is None:
            first_seen = rec.lsn
        tracker.feed(rec)
    if first_seen is not None and first_seen > cut:
        notes.append(f"the primary's WAL given starts at {first_seen}, after the cut {cut}: "
                     "transactions committed in between are not seen")
    only_standby: list[Transaction] = []
    if divergence is not None and s_side is not None:
        st = _Tracker(int(divergence.lsn), rel_name)
        for rec in WalReader(s_side.source, timeline=s_side.timeline):
            st.feed(rec)
        only_standby = st.lost
    lost = tracker.lost
    if changes is not None and lost:
        per_xid = changes(primary, [t.xid for t in lost], min(t.first_lsn for t in lost))
        for t in lost:
            t.changes = per_xid.get(t.xid, [])
    window = {"first_commit_time": lost[0].commit_time if lost else None,
              "last_commit_time": lost[-1].commit_time if lost else None,
              "count": len(lost), "bytes": max(behind or 0, 0)}
    read = set(p_side.source.read_paths) | set(p_side.source.history_files.values())
    if s_side is not None:
        read |= set(s_side.source.read_paths) | set(s_side.source.history_files.values())
    return GapReport(
        primary=p_pos, standby=s_pos, bytes_behind=behind, divergence=divergence, cut_lsn=cut,
        lost_transactions=lost, only_on_standby=only_standby,
        aborted_after_cut=sorted(tracker.aborted_after),
        in_progress_at_end=sorted(x for x, o in tracker.open.items() if o.first_lsn >= 0),
        window=window, inputs=_file_facts(read), notes=notes,
        system_identifier=p_side.source.cluster.sysid, pg_major=p_side.source.cluster.pg_major)


def _relation_namer(catalog: Any) -> Callable[[tuple[int, int, int]], str | None]:
    if catalog is None:
        return lambda r: None
    names: dict[tuple[int, int, int], str] = {}
    for rel in catalog.get("relations", []):
        key = (rel["tablespace_oid"], rel["database_oid"], rel["relfilenode"])
        names[key] = f"{rel['schema']}.{rel['name']}"
    return names.get
