"""End of valid WAL per timeline: where the next record would start, why the WAL ends there,
the last checkpoint and commit, recycled files and gaps (issue 4; JSON schema: DESIGN.md 4.2,
user doc: docs/locate.md).

How, reading little (XLogFindNextRecord and XLogReaderValidatePageHeader of xlogreader.c):

1. The first page header of a segment tells whether it holds current WAL: its xlp_pageaddr is
   the segment's own start. A recycled file (renamed ahead by a checkpoint) keeps its old
   address, a pre-allocated one is zeros. A binary search over the segment sequence finds the
   last current segment in O(log n) header reads; the files after it are each probed once to be
   listed (recycled / empty), which also catches current WAL beyond a broken segment.
2. Inside that segment a binary search over page headers finds the last current page.
3. From a page `tail_bytes` before it, the first record boundary (a page with no continuation,
   or after the continuation, by xlp_rem_len) starts the shared reader; it CRC-checks and chains
   every record up to where it cannot go on: that stop is the end. A bad start backs off.
4. The last checkpoint and commit come from the decoded tail; when it has none, earlier
   segments are stepped through (bounded): checkpoints by a search for their fixed-size record
   header, each hit confirmed by the reader from its page's first record boundary; commits by
   decoding. The checkpoint's redo point says which earlier gaps matter: a missing segment
   between the redo point and the end is a break crash recovery would stop at.

5. `scan="recovery"` (the default) then checks every record from that checkpoint's redo point
   to the end (what crash recovery replays: headers, prev-links, CRC; the reader's C walk),
   `scan="all"` from the first segment (what pg_waldump over the directory reads), so damage
   anywhere in that span ends the WAL there; the stretch before such a stop is decoded for the
   last checkpoint and commit. `scan="tail"` (--quick) checks the decoded tail only.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterable, Sequence

from ..errors import InputError, UsageError
from ..parse.source import HistoryEntry
from ..parse.pgtime import format_time, pg_timestamp
from .results import Beyond, Checkpoint, Commit, Gap, LocateResult, TimelineEnd
from .timeline import (DEFAULT_CHECKPOINT_SEARCH_BYTES, DEFAULT_COMMIT_SEARCH_BYTES,
                       DEFAULT_TAIL_BYTES, SCANS, LocateSource, TimelineLocator, no_segments)

PathArg = str | os.PathLike[str]

__all__ = ["locate", "format_summary", "LocateResult", "TimelineEnd", "Checkpoint", "Commit",
           "Gap", "Beyond", "format_time", "pg_timestamp", "SCANS"]


# --- entry points -----------------------------------------------------------------------------
def locate(paths: Sequence[PathArg] | PathArg | None = None, *, timeline: int | None = None,
           scan: str = "recovery", tail_bytes: int = DEFAULT_TAIL_BYTES,
           checkpoint_search_bytes: int = DEFAULT_CHECKPOINT_SEARCH_BYTES,
           commit_search_bytes: int = DEFAULT_COMMIT_SEARCH_BYTES) -> LocateResult:
    """The end of valid WAL in `paths` (segment files and/or directories; a data directory
    means its pg_wal; none: $PGDATA), per timeline.

    scan: 'recovery' (default) checks every record from the last checkpoint's redo point to
    the end, as crash recovery replays (from the first record when no checkpoint is found);
    'all' from the first segment, as pg_waldump over the directory; 'tail' (--quick) only the
    decoded last `tail_bytes` (more when stepping back for a commit). Every scan decodes the
    tail (or the stretch before damage) for the last checkpoint and commit. timeline: only
    this one. Raises xlogtools.errors.InputError for inputs that are not WAL of one cluster."""
    if scan not in SCANS:
        raise UsageError(f"scan must be one of {', '.join(SCANS)}, not {scan!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    src = LocateSource.open(list(paths) if paths else None)
    assert src.cluster is not None
    with_files = {t for t, _s in src.files}
    known = set(with_files) | set(src.histories)
    for hist in src.histories.values():
        known.update(h.tli for h in hist)
    if timeline is not None and timeline not in known:
        raise InputError(f"timeline {timeline} not found: the input has timelines "
                         + ", ".join(map(str, sorted(known))))
    out = []
    for tli in sorted(known) if timeline is None else [timeline]:
        if tli in with_files:
            res = TimelineLocator(src, tli, scan, tail_bytes, checkpoint_search_bytes,
                            commit_search_bytes).locate()
        else:
            res = no_segments(tli)
        out.append(_with_history(res, src.histories))
    cl = src.cluster
    return LocateResult(cl.sysid, cl.pg_major, cl.seg_size, cl.block_size, scan, out)


def _with_history(res: TimelineEnd, histories: dict[int, list[HistoryEntry]]) -> TimelineEnd:
    """Parent and branch point from the timeline's own history file; where the next timeline
    branched off it, from the oldest newer history file that names it."""
    parent = begins = switched = nxt = None
    own = histories.get(res.timeline)
    if own:
        parent, begins = own[-1].tli, own[-1].switchpoint
    for child in sorted(t for t in histories if t > res.timeline):
        entries = histories[child]
        for i, h in enumerate(entries):
            if h.tli == res.timeline:
                switched = h.switchpoint
                nxt = entries[i + 1].tli if i + 1 < len(entries) else child
                break
        if switched is not None:
            break
    return replace(res, parent=parent, begins_at=begins, switched_at=switched, next_timeline=nxt)


def format_summary(result: LocateResult, inputs: Iterable[str] = ()) -> str:
    """A short readable summary, newest timeline last."""
    mb = result.segment_size >> 20
    names = ", ".join(inputs)
    lines = [f"WAL of PostgreSQL {result.pg_major}, system {result.system_identifier}, "
             f"{mb} MB segments" + (f" in {names}" if names else "")]
    overall = result.overall
    for t in result.timelines:
        head = f"timeline {t.timeline}"
        if t.parent is not None:
            head += f" (from timeline {t.parent} at {t.begins_at})"
        if t.next_timeline is not None:
            head += f"; timeline {t.next_timeline} branched off at {t.switched_at}"
        if t is overall and len(result.timelines) > 1:
            head += "  [newest]"
        lines.append(head)
        if t.end_lsn is None:
            lines.append(f"  {t.reason_detail}")
            continue
        last = (f"last record {t.last_record_lsn} in {t.last_segment}" if t.last_record_lsn
                is not None else "no valid record")
        lines.append(f"  end of WAL:      {t.end_lsn}  ({last})")
        lines.append(f"  ends because:    {t.reason}: {t.reason_detail}"
                     + ("" if t.exact else "  [NOT EXACT]"))
        if t.wal_beyond_end is not None:
            b = t.wal_beyond_end
            lines.append(f"  WAL beyond:      {b.describe()} (not reachable by reading forward)")
        cp = t.last_checkpoint
        lines.append("  last checkpoint: " + (
            f"{cp.lsn} ({cp.kind}), redo {cp.redo}, {format_time(cp.time)}" if cp else "not found"))
        c = t.last_commit
        lines.append("  last commit:     " + (
            f"{c.kind} of xid {c.xid} at {c.lsn}, {format_time(c.time)}" if c else "not found"))
        lines.append(f"  segments:        {t.segments} ({t.first_segment} ..), "
                     f"{t.segments_read} read")
        if t.verified_from is not None:
            lines.append(f"  verified:        records from {t.verified_from} to the end "
                         f"({_VERIFIED[result.scan]})")
        if t.stale_segments:
            lines.append(f"  recycled beyond the end: {len(t.stale_segments)} "
                         f"({_span(t.stale_segments)})")
        if t.empty_segments:
            lines.append(f"  empty beyond the end:    {len(t.empty_segments)} "
                         f"({_span(t.empty_segments)})")
        for g in t.gaps:
            where = {True: "after the last checkpoint's redo point",
                     False: "before the last checkpoint's redo point",
                     None: "relevance unknown"}[g.on_recovery_path]
            lines.append(f"  missing:         {_span([g.first, g.last])} ({g.count}), {where}")
        for n in t.notes:
            lines.append(f"  note: {n}")
    return "\n".join(lines)


_VERIFIED = {
    "recovery": "every one from the last checkpoint's redo point on, as crash recovery",
    "all": "every one from the first segment on, as pg_waldump",
    "tail": "--quick: the last ones only; damage before them is not looked for",
}


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 or names[0] == names[-1] else f"{names[0]} .. {names[-1]}"
