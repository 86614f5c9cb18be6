"""Primary vs standby after a crash or failover: positions, divergence, and every transaction
the old primary committed that the standby never got (DESIGN.md 4.5, docs/gap.md).

The question pg_rewind answers only in passing ("servers diverged at WAL location X on
timeline N") is the start here: from that point (or from the end of what the standby
received, when it was not promoted) every commit record in the primary's WAL is a lost
transaction; aborted transactions and rolled-back subtransactions are not lost data. With a
catalog snapshot, the replay engine adds the rows of each lost transaction.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .. import __version__
from ..errors import ClusterMismatch, InputError
from ..lsn import Lsn
from ..parse.pgtime import format_time, pg_timestamp
from ..parse.reader import WalReader
from ..parse.record import Record
from ..parse.rmgr.ids import RM_XACT_ID
from ..parse.source import WalSource
from ..parse.xacttrack import XactOutcomes


def pg_time(ts: int) -> str:
    """TimestampTz (microseconds since 2000-01-01 UTC) as 'YYYY-MM-DD HH:MM:SS.ffffff+00';
    outside Python's years 1-9999 as PostgreSQL prints it (far years, BC, infinity); a value
    no timestamp can hold (a damaged record whose CRC is right) as 'invalid timestamp N'."""
    text = format_time(pg_timestamp(ts))
    if text is not None:
        return text
    from ..replay.types import timestamptz_usecs_out

    try:
        return timestamptz_usecs_out(ts)
    except ValueError:
        return f"invalid timestamp {ts}"


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


def _position(side: _Side, reader: WalReader) -> Position:
    """Where a reader that went to the end of a side's WAL stopped, and why."""
    eow = reader.end_of_wal
    assert eow is not None
    return Position(eow.lsn, eow.last_record_lsn, side.timeline, eow.reason.value)


def _end_of(side: _Side, start: Lsn | None = None) -> tuple[Position, WalReader]:
    """The end of a side's WAL by reading all of it (what the reader reaches from its first
    segment). The locator gives the same answer faster: see _located_end."""
    reader = WalReader(side.source, start=start, timeline=side.timeline)
    for _ in reader:
        pass
    return _position(side, reader), reader


def _locate_side(side: _Side, paths: Sequence[str | os.PathLike[str]], scan: str = "recovery"
                 ) -> Any:
    """locate's answer for one side (by default every record from the last checkpoint's redo
    point, as the server's own crash recovery reads)."""
    from ..locate import locate

    return locate(list(paths), timeline=side.timeline, scan=scan).timeline(side.timeline)


def _located_end(side: _Side, paths: Sequence[str | os.PathLike[str]]) -> tuple[Position, list[str]]:
    """The end of the standby's WAL by the locator (xlogtools.locate): a binary search over
    segment and page headers, and a check of every record from the last checkpoint's redo
    point (the C walk), instead of decoding every record.

    Same end_lsn, last_record_lsn and reason as _end_of in every test (tests/test_gap.py
    compares them). They can differ only on damaged WAL: a full read stops at the first damaged
    or missing place from the oldest segment, the locator only at one after the last
    checkpoint's redo point (what the standby's own recovery would replay); an older break says
    nothing about how far the standby received. The locator's notes are passed on."""
    t = _locate_side(side, paths)
    notes = []
    if not t.exact or t.wal_beyond_end is not None:
        notes.append(f"the {side.name}'s WAL: {t.reason_detail}")
    if t.end_lsn is None:
        return Position(None, None, side.timeline, t.reason), notes
    # Custody: the files a full read covers (every segment up to the one it stops in).
    last = int(t.error_lsn if t.error_lsn is not None else t.end_lsn) // side.source.seg_size
    tlis = {tli for tli, _b, _e in side.expected}
    for (tli, segno), f in side.source.files.items():
        if tli in tlis and segno <= last and \
                side.source.timeline_of_segment(segno, side.expected) == tli:
            side.source.read_paths.add(f.path)
    return Position(t.end_lsn, t.last_record_lsn, side.timeline, t.reason), notes


def _recovery_end(side: _Side, paths: Sequence[str | os.PathLike[str]], read: WalReader,
                  feed: Callable[[Record], None]) -> tuple[Position, list[str]]:
    """The end of a side's WAL that `read` (a full read from its first segment, whose records
    went to `feed`) reached, by the rule crash recovery follows (locate's): damage before the
    last checkpoint's redo point, which recovery never reads, does not end it. When the full
    read stopped at such damage, the records from the redo point on are read too (to `feed`)
    and the span between is named in a note."""
    pos = _position(side, read)
    if pos.end_lsn is None:
        return pos, []
    # The full read checked every record up to its stop: if no valid WAL lies after it (the
    # header probe and the tail say), that is the end, with no second walk over the files.
    quick = _locate_side(side, paths, "tail")
    if (quick.end_lsn is None or quick.end_lsn <= pos.end_lsn) and quick.wal_beyond_end is None:
        return pos, []
    t = _locate_side(side, paths)
    if pos.end_lsn is None or t.end_lsn is None or t.end_lsn <= pos.end_lsn \
            or t.verified_from is None or t.verified_from < pos.end_lsn:
        return pos, []
    on = WalReader(side.source, start=t.verified_from, timeline=side.timeline)
    for rec in on:
        feed(rec)
    note = (f"the {side.name}'s WAL is damaged at {pos.end_lsn} ({pos.reason}: "
            f"{read.end_of_wal.message if read.end_of_wal else ''}), before the last "
            f"checkpoint's redo point {t.verified_from}, which crash recovery does not read: "
            f"its end is where recovery stops; transactions that committed between "
            f"{pos.end_lsn} and {t.verified_from} are not seen")
    return _position(side, on), [note]


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
    """Follows transactions through a WAL stream: which xids wrote what, and how they ended.
    Which transaction an xid belongs to and how it ended is the shared tracker's
    (parse/xacttrack.py), read leniently as describe reads records (a damaged record's data
    past its end as zeros); this keeps what gap adds: the relations each open or prepared
    transaction wrote, the transactions lost after the cut and those aborted after it."""

    def __init__(self, cut: int, rel_name: Callable[[tuple[int, int, int]], str | None]) -> None:
        self.cut = cut
        self.rel_name = rel_name
        self.xacts = XactOutcomes(strict=False)
        self.parent = self.xacts.top_of  # subtransaction -> its parent
        self.open: dict[int, _Open] = {}
        self.lost: list[Transaction] = []
        self.aborted_after: list[int] = []
        self.prepared: dict[int, _Open] = {}

    def top(self, xid: int) -> int:
        """The top-level transaction of xid (a circle of parents ends where it closes)."""
        return self.xacts.top(xid)

    def feed(self, rec: Record) -> None:
        if rec.rmid == RM_XACT_ID:
            self._xact(rec)
            return
        xid = rec.xid
        if not xid:
            return
        self.xacts.see(rec)
        top = self.xacts.top(xid)
        t = self.open.get(top)
        if t is None:
            t = self.open[top] = _Open(int(rec.lsn))
        for b in rec.blocks:
            if b.fork == 0:
                t.rels.add((b.spc, b.db, b.rel))

    def _merge(self, xid: int, subxacts: tuple[int, ...], lsn: int) -> _Open:
        """The transaction and its committed subtransactions' writes, as one."""
        t = self.open.pop(xid, None) or _Open(lsn)
        for sub in subxacts:
            o = self.open.pop(sub, None)
            if o is not None:
                _merge_into(t, o)
        return t

    def _xact(self, rec: Record) -> None:
        ev = self.xacts.feed(rec)
        if ev is None:
            return
        r, xid = ev.record, ev.xid
        if ev.status == "prepared":
            self.prepared[xid] = self._merge(xid, r.subxids, int(rec.lsn))
            return
        if ev.subxact:
            # a subtransaction rolled back inside its parent: its writes are void (those its
            # parent was known for at the time went to the parent, which goes on)
            for sub in (xid, *r.subxids):
                self.open.pop(sub, None)
            return
        if xid in self.prepared:
            t = self.prepared.pop(xid)
        else:
            t = self._merge(xid, r.subxids, int(rec.lsn))
        if int(rec.end) <= self.cut:
            # The whole record lies before the cut: the standby has it. The cut is compared
            # with the record's end, not its start: a live standby's received position
            # (pg_last_wal_receive_lsn) is the primary's flush point, which can fall inside
            # a record (a partly written page); a commit record the standby has only part
            # of is not committed there. For a cut at a record boundary (the end of the
            # standby's WAL, a timeline switch point) both tests agree.
            return
        if ev.status != "committed":
            self.aborted_after.append(xid)
            return
        rels = sorted(t.rels)
        self.lost.append(Transaction(
            xid=xid, commit_lsn=rec.lsn, commit_time=pg_time(r.time),
            subxids=sorted(r.subxids),
            relations=list(dict.fromkeys(self.rel_name(f) or f"{f[0]}/{f[1]}/{f[2]}"
                                         for f in rels)),
            first_lsn=Lsn(t.first_lsn), kind=r.kind, gid=r.gid or None))


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
            *, standby_position: Position | None = None,
            standby_system_identifier: int | None = None, catalog: Any = None,
            changes: Callable[..., Any] | None = None,
            progress: bool | None = False) -> GapReport:
    """Compare a primary's WAL with a standby's (its WAL files, or a position read from a
    live standby as `standby_position`, with that server's `standby_system_identifier`).
    `changes(paths, xids, start)`, when given, returns {xid: [row change dicts]} for the lost
    transactions (the replay engine).

    Raises InputError when the standby has no WAL, or when the primary's WAL given ends
    before the cut (then it cannot show what the standby is missing); ClusterMismatch for
    inputs of two database systems. `progress`: a progress line on stderr while the WAL is
    read (None: when stderr is a terminal)."""
    p_side = _open_side("primary", primary)
    assert p_side.source.cluster is not None
    sysid = p_side.source.cluster.sysid
    notes: list[str] = []
    s_side: _Side | None = None
    if standby:
        s_side = _open_side("standby", standby)
        assert s_side.source.cluster is not None
        if s_side.source.cluster.sysid != sysid:
            raise ClusterMismatch(
                f"the primary and the standby are different database systems: system identifiers "
                f"{sysid} and {s_side.source.cluster.sysid}")
    if standby_system_identifier is not None and standby_system_identifier != sysid:
        raise ClusterMismatch(
            f"the primary and the standby are different database systems: system identifiers "
            f"{sysid} and {standby_system_identifier} (the live standby's)")
    if standby_position is None and s_side is None:
        raise InputError("no standby WAL or position given")
    divergence = find_divergence(p_side.expected, s_side.expected) if s_side else None
    rel_name = _relation_namer(catalog)

    # The standby: its position, and after a promotion what it committed on its own.
    only_standby: list[Transaction] = []
    s_pos = standby_position
    if divergence is not None and s_side is not None:
        # Read all of it anyway (transactions on the new timeline): its end comes with it.
        st = _Tracker(int(divergence.lsn), rel_name)
        s_reader = WalReader(s_side.source, timeline=s_side.timeline)
        for rec in _progressing(s_reader, "gap (standby)", progress):
            st.feed(rec)
        s_end, s_notes = _recovery_end(s_side, standby, s_reader, st.feed)
        only_standby = st.lost
        if s_pos is None:
            s_pos = s_end
            notes += s_notes
    elif s_pos is None:
        assert s_side is not None
        s_pos, located_notes = _located_end(s_side, standby)
        notes += located_notes
    assert s_pos is not None
    if divergence is not None:
        cut = divergence.lsn
    else:
        if s_pos.end_lsn is None:
            raise InputError("the standby has no WAL at all: nothing tells how far it got")
        cut = s_pos.end_lsn
    if s_pos.source == "server" and s_pos.timeline != p_side.timeline:
        notes.append(f"the live standby is on timeline {s_pos.timeline}, the primary's WAL on "
                     f"timeline {p_side.timeline}: give the standby's WAL directory to see "
                     "where they diverged")

    # The primary: one full read gives its transactions and its end (the same reader, so the
    # end is exact; a separate locator run would only add work).
    tracker = _Tracker(int(cut), rel_name)
    first_seen: Lsn | None = None
    p_reader = WalReader(p_side.source, timeline=p_side.timeline)
    for rec in _progressing(p_reader, "gap (primary)", progress):
        if first_seen is None:
            first_seen = rec.lsn
        tracker.feed(rec)
    p_pos, p_notes = _recovery_end(p_side, primary, p_reader, tracker.feed)
    notes += p_notes
    if p_pos.end_lsn is not None and p_pos.end_lsn < cut and s_pos.source == "server" \
            and p_pos.reason != "missing_segment" and int(cut) - int(p_pos.end_lsn) < p_side.source.seg_size:
        # A live standby receives the primary's flush point, which can lie inside a record the
        # primary had only partly written when it crashed: the standby has those bytes, not the
        # record; the primary's WAL ends where it does for both.
        notes.append(f"the live standby received up to {cut}, {int(cut) - int(p_pos.end_lsn)} bytes "
                     f"past the end of the primary's last complete record ({p_pos.end_lsn}): the "
                     "start of a record the primary never finished writing; nothing is lost there")
        cut = p_pos.end_lsn
    if p_pos.end_lsn is None or p_pos.end_lsn < cut:
        raise InputError(_primary_short(p_pos, s_pos, cut, divergence))
    if first_seen is not None and first_seen > cut:
        notes.append(f"the primary's WAL given starts at {first_seen}, after the cut {cut}: "
                     "transactions committed in between are not seen")
    behind = int(p_pos.end_lsn) - int(cut)
    lost = tracker.lost
    if changes is not None and lost:
        per_xid = changes(primary, [t.xid for t in lost], min(t.first_lsn for t in lost))
        for t in lost:
            t.changes = per_xid.get(t.xid, [])
            # a file the catalog does not name (a table made among the lost transactions)
            # is named as its decoded rows name it
            names = {c["relation"]: f"{c['schema']}.{c['table']}" for c in t.changes
                     if c.get("table") and c.get("relation")}
            t.relations = list(dict.fromkeys(names.get(x, x) for x in t.relations))
    window = {"first_commit_time": lost[0].commit_time if lost else None,
              "last_commit_time": lost[-1].commit_time if lost else None,
              "count": len(lost), "bytes": max(behind, 0)}
    read = set(p_side.source.read_paths) | set(p_side.source.history_files.values())
    if s_side is not None:
        read |= set(s_side.source.read_paths) | set(s_side.source.history_files.values())
    return GapReport(
        primary=p_pos, standby=s_pos, bytes_behind=behind, divergence=divergence, cut_lsn=cut,
        lost_transactions=lost, only_on_standby=only_standby,
        aborted_after_cut=sorted(tracker.aborted_after),
        in_progress_at_end=sorted(x for x, o in tracker.open.items() if o.first_lsn >= 0),
        window=window, inputs=_file_facts(read), notes=notes,
        system_identifier=sysid, pg_major=p_side.source.cluster.pg_major)


def _progressing(reader: WalReader, label: str, enabled: bool | None) -> Iterator[Record]:
    """The reader's records, with a progress line on stderr (export/progress.py)."""
    from ..export.progress import Progress, wal_span

    bar = Progress(label, enabled, *wal_span(reader))
    if not bar.enabled:
        yield from reader
        return
    n = 0
    try:
        for rec in reader:
            n += 1
            if not n & 1023:
                bar.update(int(rec.lsn), n)
            yield rec
    finally:
        bar.finish()


def _primary_short(p: Position, s: Position, cut: Lsn, divergence: Divergence | None) -> str:
    """Why a primary's WAL that ends before the cut gives no answer (not an empty 'no gap')."""
    if p.end_lsn is None:
        return (f"the primary's WAL given holds no valid record ({p.reason}): nothing to compare "
                "with the standby")
    where = (f"where the standby left its timeline ({divergence.pg_rewind_text()})" if divergence
             else f"the standby's position {cut} ("
                  + ("received, per the live standby" if s.source == "server" else
                     "the end of its WAL") + ")")
    return (f"the primary's WAL given ends at {p.end_lsn} ({p.reason}), before {where}: it "
            f"cannot show what the standby is missing, and is {int(cut) - int(p.end_lsn)} bytes "
            "short. Most likely later segments of the primary are not in the input: give its "
            "complete pg_wal (and its archive, with another --primary). If it is complete, the "
            "primary lost WAL the standby had already received (fsync off, or a disk that lied) "
            "and no committed transaction of it is missing on the standby")


def _relation_namer(catalog: Any) -> Callable[[tuple[int, int, int]], str | None]:
    """schema.name of a relation file by the catalog (a Catalog or its JSON): a table, or the
    table that a TOAST table or an index belongs to (so one table is named once); a system
    catalog or sequence by its own name."""
    if catalog is None:
        return lambda r: None
    from ..replay.catalog import Catalog

    cat = catalog if isinstance(catalog, Catalog) else Catalog.from_json(catalog)

    return lambda r: cat.relation_name(*r)
