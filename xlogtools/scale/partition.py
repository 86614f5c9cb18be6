"""WAL inputs cut into independent, ordered segment ranges, and one range decoded into Arrow
record batches of the documented record schema (docs/dump.md, export/rows.py arrow_schema).

The rule is `dump --jobs`'s (export/dump.py), generalised here for engines whose tasks cannot
talk to each other:

- A record belongs to the range it *starts* in. A range is [start, until) of whole segments;
  its reader finds its first whole record as `WalReader` does for any start LSN (the page
  header's xlp_rem_len skips the continuation of a record begun in the previous segment,
  XLogFindNextRecord), and its last record is read on into the next segment.
- The link between ranges is checked by the range before it: after its last record its reader
  goes on to the next record (the first one of the next range) through the same chain of
  prev-links a single process follows, so a broken link is seen where one process would see it
  (`dump --jobs` checks the same link in its parent process, which an engine does not have).
- A range whose reader stops early (damage, a missing segment, the written tail) asks the same
  question as dump's exit status (export/walend.py classify_end, i.e. the locator): is there
  valid WAL of the timeline beyond the stop? No: the end of the WAL, the range is done. Yes:
  damage, which fails the task (`WalRangeDamage`, naming LSN and reason) unless the caller
  chose on_damage="skip", where the rest of the range is skipped and listed.

commit_time (the commit time of a record's top-level transaction) needs the commit record,
which comes after the transaction's records, maybe in a later range. Each task finds it
itself, in a first pass over its own range and a bounded look-ahead past it: reading on stops
as soon as every transaction of the range's records has ended (commit or abort), or
`commit_lookahead` bytes after the range. Within that bound the result equals dump's (which
reads the whole input once for the commit records); a transaction that commits later still
gets a null commit_time (docs/scale.md, "commit_time").

A partition holds paths and LSNs only (no WAL bytes): it pickles small and each task opens the
files itself.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Generator, Iterator, Sequence

from ..errors import UsageError, XlogError
from ..export import rows
from ..export.filters import RecordFilter
from ..export.writers import format_batch
from ..lsn import Lsn, segment_name
from ..parse.api import open_wal
from ..parse.endofwal import EndOfWal, EndReason
from ..parse.source import WalSource

log = logging.getLogger("xlogtools.scale")

DEFAULT_SEGMENTS_PER_PARTITION = 4
# How far past its range a task reads for the commit records of its transactions.
DEFAULT_COMMIT_LOOKAHEAD = 256 << 20
ON_DAMAGE = ("fail", "skip")


@dataclass(frozen=True)
class WalPartition:
    """Records starting in [start, until) of `timeline` (read as dump reads it: the timeline's
    history names the ancestor each earlier segment comes from). `until` None: to the end."""

    index: int
    paths: tuple[str, ...]
    timeline: int
    start: Lsn
    until: Lsn | None
    end: Lsn | None  # the caller's end LSN (dump -e), or None
    first_segno: int
    last_segno: int
    seg_size: int
    # file names of the first and last segment (the timeline each is read from)
    first_segment: str = ""
    last_segment: str = ""

    @property
    def segments(self) -> str:
        a = self.first_segment or segment_name(self.timeline, self.first_segno, self.seg_size)
        b = self.last_segment or segment_name(self.timeline, self.last_segno, self.seg_size)
        return a if a == b else f"{a}..{b}"

    def __str__(self) -> str:
        until = self.until if self.until is not None else "end"
        return (f"partition {self.index} (timeline {self.timeline}, segments {self.segments}, "
                f"{self.start}..{until})")


@dataclass(frozen=True)
class DamagedRange:
    """A range a task did not read because of damage: [lsn, until) of partition `partition`."""

    partition: int
    timeline: int
    segments: str
    lsn: Lsn  # where the next record would have started (the end of the last good one)
    until: Lsn | None
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lsn"] = str(self.lsn)
        d["until"] = str(self.until) if self.until is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DamagedRange":
        return cls(d["partition"], d["timeline"], d["segments"], Lsn(d["lsn"]),
                   Lsn(d["until"]) if d["until"] else None, d["reason"], d["message"])


class WalRangeDamage(XlogError):
    """A task's range hit damage (valid WAL of the timeline lies beyond the stop)."""

    def __init__(self, damage: DamagedRange) -> None:
        super().__init__(damage.message, lsn=damage.lsn)
        self.damage = damage

    def __reduce__(self) -> Any:  # travels back from engine workers whole
        return (WalRangeDamage, (self.damage,))


@dataclass(frozen=True)
class ReadOptions:
    """What a task does with its partition (the same for every partition of a read)."""

    filter: RecordFilter = field(default_factory=RecordFilter)
    columns: tuple[str, ...] | None = None  # projection (None: every column)
    commit_lookahead: int = DEFAULT_COMMIT_LOOKAHEAD
    on_damage: str = "fail"  # or "skip": read on, list the skipped range
    damage_log: str | None = None  # directory: one JSON file per skipped range (skip mode)

    def __post_init__(self) -> None:
        if self.on_damage not in ON_DAMAGE:
            raise UsageError(f"on_damage must be one of {', '.join(ON_DAMAGE)}, "
                             f"not {self.on_damage!r}")
        if self.columns is not None:
            bad = [c for c in self.columns if c not in rows.FIELDS]
            if bad:
                raise UsageError(f"unknown column(s) {', '.join(bad)}: the record schema has "
                                 + ", ".join(rows.FIELDS))

    @property
    def wants_commit_time(self) -> bool:
        return self.columns is None or "commit_time" in self.columns


# --- planning ----------------------------------------------------------------------------------

def plan_partitions(paths: Sequence[str | os.PathLike[str]] | str | None, *,
                    start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
                    timeline: int | None = None,
                    segments_per_partition: int = DEFAULT_SEGMENTS_PER_PARTITION
                    ) -> list[WalPartition]:
    """The inputs (segment files, pg_wal or data directories, archives of any layout
    WalSource reads, several timelines) as ordered ranges of `segments_per_partition`
    segments of the timeline dump would read (`timeline`, default the newest), over the
    segments of it and its ancestors between `start` and `end`. Reads directory listings
    and the history files only."""
    if segments_per_partition < 1:
        raise UsageError("segments_per_partition must be at least 1")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    plist = tuple(os.fspath(p) for p in paths) if paths else ()
    src = WalSource.open(list(plist) or None)
    reader = open_wal(src, start=start, end=end, timeline=timeline)  # resolves the defaults
    tli = reader.timeline
    expected = src.expected_timelines(tli)
    seg_size = src.seg_size
    ancestry = {t for t, _b, _e in expected}
    segnos = sorted({s for (t, s) in src.files if t in ancestry
                     and src.timeline_of_segment(s, expected) == t})
    lo_lsn = int(reader.start)
    first = max(lo_lsn // seg_size, segnos[0] if segnos else 0)
    last = segnos[-1] if segnos else first
    if reader.end is not None:
        last = min(last, int(reader.end) // seg_size)
    if not segnos or last < first:
        return []
    per = segments_per_partition
    out: list[WalPartition] = []
    for i, seg in enumerate(range(first, last + 1, per)):
        top = min(seg + per - 1, last)
        lo = max(lo_lsn, seg * seg_size) if i == 0 else seg * seg_size
        until = Lsn((top + 1) * seg_size) if top < last else None
        out.append(WalPartition(
            i, plist, tli, Lsn(lo), until, reader.end, seg, top, seg_size,
            src.name_of(src.timeline_of_segment(seg, expected), seg),
            src.name_of(src.timeline_of_segment(top, expected), top)))
    return out


# --- one partition ---------------------------------------------------------------------------

def _open(part: WalPartition) -> Any:
    # No `until`: the reader goes on past the range (the link check, the look-ahead).
    return open_wal(list(part.paths) or None, start=part.start, end=part.end,
                    timeline=part.timeline)


# A task keeps the batches of its range from the commit-time pass for the decoding, instead
# of reading the range twice, while they hold at most this many bytes of record data.
KEEP_BATCHES_BYTES = 256 << 20


@dataclass
class _Scan:
    """The commit-time pass over a range: the times; the batches holding the range's records
    with how many of each are the range's (None when they were not kept); whether the range
    was read whole; and where the reader stopped when it was not."""

    times: rows.CommitTimes
    batches: list[tuple[Any, int]] | None
    whole: bool
    end_of_wal: EndOfWal | None


def partition_commit_times(part: WalPartition, flt: RecordFilter,
                           lookahead: int = DEFAULT_COMMIT_LOOKAHEAD) -> rows.CommitTimes:
    """xid -> commit time for the transactions of the partition's (matching) records: the
    commit records in the range and after it, until every such transaction has ended or
    `lookahead` bytes past the range. Read from the reader's batches: the xids of the range's
    records come from the columns, and only commit and abort records are looked at one by one
    (export/commitindex.xact_ends)."""
    return _scan(part, flt, lookahead, keep=False).times


def _scan(part: WalPartition, flt: RecordFilter, lookahead: int, keep: bool) -> _Scan:
    import bisect

    import pyarrow.compute as pc

    from ..export.batchfilter import filter_mask
    from ..export.commitindex import xact_ends

    reader = _open(part)
    out = _Scan({}, [] if keep else None, False, None)
    times = out.times
    kept = 0
    needed: set[int] = set()
    ended: set[int] = set()
    open_xids: set[int] | None = None  # after the range: transactions not ended yet
    until = int(part.until) if part.until is not None else 1 << 64
    stop = until + lookahead
    for batch in reader.batches():
        lsn = batch.column("lsn")
        k = bisect.bisect_left(lsn, until)  # records [0, k) are the range's
        if k < batch.n:
            out.whole = True
        if k:
            if out.batches is not None:
                out.batches.append((batch, k))
                kept += len(batch.arena)
                if kept > KEEP_BATCHES_BYTES:
                    out.batches = None  # too much to hold: the range is decoded again
            if flt.active:
                mask = filter_mask(batch, flt).slice(0, k)
                xid, top = (pc.filter(batch.arrow(c).slice(0, k), mask)
                            for c in ("xid", "toplevel_xid"))
            else:
                xid, top = (batch.arrow(c).slice(0, k) for c in ("xid", "toplevel_xid"))
            needed.update(pc.unique(xid).to_pylist())
            needed.update(pc.unique(top).to_pylist())
        idx, tops, whens, commits, subs = xact_ends(batch)
        if subs:  # subtransactions: record by record
            for j, i in enumerate(idx):
                if i >= k:
                    if open_xids is None:  # the first end record after the range
                        open_xids = needed - ended
                        open_xids.discard(0)
                    if not open_xids or lsn[i] >= stop:
                        return out
                s = subs.get(j, ())
                if commits[j]:
                    times[tops[j]] = whens[j]
                    for x in s:
                        times[x] = whens[j]
                if open_xids is None:
                    ended.add(tops[j])
                    ended.update(s)
                else:
                    open_xids.discard(tops[j])
                    open_xids.difference_update(s)
        else:
            m = bisect.bisect_left(idx, k)  # the end records [0, m) are in the range
            if m:
                times.update((t, w) for t, w, c in zip(tops[:m], whens[:m], commits[:m]) if c)
                ended.update(tops[:m])
            if m < len(idx):  # after the range: until every transaction of the range ended
                if open_xids is None:
                    open_xids = needed - ended
                    open_xids.discard(0)
                last = len(idx)  # the first end record `lookahead` bytes after the range
                for j in range(m, len(idx)):
                    if lsn[idx[j]] >= stop:
                        last = j
                        break
                done = m if not open_xids else None
                if done is None:
                    for j in range(m, last):
                        if tops[j] in open_xids:
                            open_xids.discard(tops[j])
                            if not open_xids:
                                done = j + 1  # the records after it are not looked at
                                break
                upto = last if done is None else done
                times.update((t, w) for t, w, c in zip(tops[m:upto], whens[m:upto],
                                                       commits[m:upto]) if c)
                if done is not None or last < len(idx):
                    return out
        if k < batch.n:
            if open_xids is None:
                open_xids = needed - ended
                open_xids.discard(0)
            if not open_xids or lsn[batch.n - 1] >= stop:
                return out
    if not out.whole:
        out.end_of_wal = reader.end_of_wal
    return out


def decode_partition(part: WalPartition, flt: RecordFilter, times: rows.CommitTimes | None,
                     columns: Sequence[str] | None = None
                     ) -> Generator[Any, None, EndOfWal | None]:
    """The records starting in the partition's range, as pyarrow.RecordBatches of the record
    schema (projected to `columns`), in LSN order. Returns None when the range was read whole
    and the first record after it links to its last one (read through the same prev-link
    chain); else the EndOfWal where reading stopped.

    This is the one "records of an LSN range -> Arrow batches" step of the engines and of the
    dataset writer: the reader's batches (the C batch decoder when built) made into columns
    by export/columns.py, as dump's parquet export makes them."""
    import bisect

    from ..export.commitindex import commit_index_of

    reader = _open(part)
    until = int(part.until) if part.until is not None else 1 << 64
    index = commit_index_of(times) if times is not None else None
    whole = False

    def ranged() -> Iterator[tuple[Any, int]]:
        nonlocal whole
        for batch in reader.batches():
            # the records before `until` are this range's; one at or after it (the next
            # range's first, linked to our last one by the reader's prev-link check) ends it
            k = bisect.bisect_left(batch.column("lsn"), until)
            if k:
                yield batch, k
            if k < batch.n:
                whole = True
                return

    yield from _columns(ranged(), flt, index, columns)
    return None if whole else reader.end_of_wal


def _columns(batches: Iterator[tuple[Any, int]], flt: RecordFilter, index: Any,
             columns: Sequence[str] | None) -> Iterator[Any]:
    """The record batches of (batch, how many of its first records are the range's) pairs."""
    cols = list(columns) if columns is not None else None
    for batch, k in batches:
        if flt.active:
            import pyarrow.compute as pc

            from ..export.batchfilter import filter_mask

            select: list[int] | None = [
                i for i in pc.indices_nonzero(filter_mask(batch, flt)).to_pylist() if i < k]
        else:
            select = None if k == batch.n else list(range(k))
        if select is None or select:
            rb = format_batch(batch, "parquet", index, None, select)
            yield rb if cols is None else rb.select(cols)


def read_partition(part: WalPartition, opts: ReadOptions | None = None,
                   skipped: list[DamagedRange] | None = None) -> Iterator[Any]:
    """What an engine task runs: commit times (when the projection has commit_time), then
    decode_partition, then the verdict on where it stopped. Damage raises WalRangeDamage; with
    on_damage="skip" the range's records before it are kept and the skipped range is appended
    to `skipped`, logged as a warning and written to opts.damage_log when set. The commit-time
    pass keeps the range's batches (up to KEEP_BATCHES_BYTES) so the range is read once."""
    opts = opts or ReadOptions()
    if opts.wants_commit_time:
        from ..export.commitindex import commit_index_of

        scan = _scan(part, opts.filter, opts.commit_lookahead, keep=True)
        if scan.batches is not None:
            batches, scan.batches = scan.batches, None  # released as they are formatted
            index = commit_index_of(scan.times)

            def drain() -> Iterator[tuple[Any, int]]:
                while batches:
                    yield batches.pop(0)

            yield from _columns(drain(), opts.filter, index, opts.columns)
            eow = scan.end_of_wal
        else:
            eow = yield from decode_partition(part, opts.filter, scan.times, opts.columns)
    else:
        eow = yield from decode_partition(part, opts.filter, None, opts.columns)
    damage = _damage(part, eow)
    if damage is None:
        return
    if opts.on_damage != "skip":
        raise WalRangeDamage(damage)
    log.warning("skipped %s", damage.message)
    if skipped is not None:
        skipped.append(damage)
    if opts.damage_log:
        write_damage_log(opts.damage_log, damage)


def _damage(part: WalPartition, eow: EndOfWal | None) -> DamagedRange | None:
    """None when the partition's reader stopped where it may: its range read whole, the
    caller's end, the written tail of the WAL. Else the damaged range."""
    if eow is None or eow.reason is EndReason.END_LSN_REACHED:
        return None
    until = part.until
    if until is not None and eow.lsn >= until:
        # Reading the next range's first record failed: that range's task reads it again
        # (from its own first record) and reports what it finds there; only a broken link
        # to our last record is seen by us alone.
        if eow.reason is not EndReason.PREV_LINK_MISMATCH:
            return None
    from ..export.walend import classify_end

    verdict = classify_end(list(part.paths) or None, eow, part.timeline)
    if verdict.status == 0:
        return None
    return DamagedRange(part.index, part.timeline, part.segments, eow.lsn, until,
                        eow.reason.value, f"{part}: {verdict.message}")


# --- the record of skipped ranges ----------------------------------------------------------------

def write_damage_log(directory: str | os.PathLike[str], damage: DamagedRange) -> None:
    """One JSON file per skipped range, written under a temporary name and renamed."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, f"damaged-{damage.partition:06d}.json")
    tmp = final + f".tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(damage.as_dict(), f)
    os.replace(tmp, final)


def read_damage_log(directory: str | os.PathLike[str]) -> list[DamagedRange]:
    """The ranges skipped by a read with on_damage="skip" and damage_log=directory."""
    if not os.path.isdir(directory):
        return []
    out = []
    for name in sorted(os.listdir(directory)):
        if name.startswith("damaged-") and name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                out.append(DamagedRange.from_dict(json.load(f)))
    return out
