"""What `locate` answers (DESIGN.md 4.2, docs/locate.md): the end of valid WAL per timeline,
with its reason, the last checkpoint and commit, gaps, and WAL found beyond the end."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..lsn import Lsn

from ..parse.pgtime import format_time


# --- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    lsn: Lsn
    redo: Lsn
    timeline: int
    kind: str  # 'online' | 'shutdown'
    time: datetime | None
    found_by: str  # 'decoded' (in a decoded stretch) | 'record_search' (header search, confirmed)

    def as_dict(self) -> dict[str, Any]:
        return {"lsn": str(self.lsn), "redo": str(self.redo), "timeline": self.timeline,
                "kind": self.kind, "time": format_time(self.time), "found_by": self.found_by}


@dataclass(frozen=True)
class Commit:
    xid: int
    lsn: Lsn
    time: datetime | None
    kind: str  # 'commit' | 'abort' | 'commit_prepared' | 'abort_prepared'

    def as_dict(self) -> dict[str, Any]:
        return {"xid": self.xid, "lsn": str(self.lsn), "time": format_time(self.time),
                "kind": self.kind}


@dataclass(frozen=True)
class Gap:
    """Missing segment files first..last (inclusive) between present ones."""

    first: str
    last: str
    count: int
    start_lsn: Lsn
    end_lsn: Lsn
    on_recovery_path: bool | None  # after the last checkpoint's redo point; None: unknown

    def as_dict(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "count": self.count,
                "start_lsn": str(self.start_lsn), "end_lsn": str(self.end_lsn),
                "on_recovery_path": self.on_recovery_path}


@dataclass(frozen=True)
class Beyond:
    """Valid WAL found after the end (past damage or a missing segment): records from
    checked_from on, the last one found ending at end_lsn; `breaks` more damaged or missing
    places lie between (0: one continuous stretch)."""

    checked_from: Lsn  # the earliest record decoded after the break
    end_lsn: Lsn
    last_record_lsn: Lsn | None
    breaks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"checked_from": str(self.checked_from), "end_lsn": str(self.end_lsn),
                "last_record_lsn": _s(self.last_record_lsn), "breaks": self.breaks}

    def describe(self) -> str:
        more = f", past {self.breaks} more damaged or missing place(s)" if self.breaks else ""
        return f"valid records from {self.checked_from} to {self.end_lsn}{more}"


@dataclass(frozen=True)
class TimelineEnd:
    """The end of valid WAL on one timeline (read through its ancestors, by its history)."""

    timeline: int
    parent: int | None  # from the timeline's history file
    begins_at: Lsn | None  # where it branched off its parent
    switched_at: Lsn | None  # where a newer timeline branched off this one
    next_timeline: int | None
    end_lsn: Lsn | None  # where the next record would start
    last_record_lsn: Lsn | None
    last_segment: str | None  # the file holding the last record
    reason: str  # EndReason value, or 'no_segments'
    reason_detail: str
    error_lsn: Lsn | None  # the position the reason names (a record or a page)
    error_segment: str | None  # the segment file that position is in
    exact: bool
    # every record from here to the end was checked (headers, prev-links, CRC): the last
    # checkpoint's redo point by default, as crash recovery; the decoded tail with --quick
    verified_from: Lsn | None
    last_checkpoint: Checkpoint | None
    last_commit: Commit | None
    segments: int  # segment files on this timeline (and its ancestors, by the history)
    first_segment: str | None
    segments_read: int  # of which we opened
    stale_segments: list[str] = field(default_factory=list)
    empty_segments: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    wal_beyond_end: Beyond | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def checked_from(self) -> Lsn | None:
        """The name verified_from had before (kept for callers of 0.1)."""
        return self.verified_from

    def as_dict(self) -> dict[str, Any]:
        return {
            "timeline": self.timeline, "end_lsn": _s(self.end_lsn),
            "last_record_lsn": _s(self.last_record_lsn), "last_segment": self.last_segment,
            "reason": self.reason, "reason_detail": self.reason_detail,
            "error_lsn": _s(self.error_lsn), "error_segment": self.error_segment,
            "exact": self.exact,
            "verified_from": _s(self.verified_from),
            "checked_from": _s(self.verified_from),  # the name before verified_from
            "last_checkpoint": self.last_checkpoint.as_dict() if self.last_checkpoint else None,
            "last_commit": self.last_commit.as_dict() if self.last_commit else None,
            "segments": self.segments, "first_segment": self.first_segment,
            "segments_read": self.segments_read, "stale_segments": list(self.stale_segments),
            "empty_segments": list(self.empty_segments),
            "gaps": [g.as_dict() for g in self.gaps],
            "wal_beyond_end": self.wal_beyond_end.as_dict() if self.wal_beyond_end else None,
            "parent": self.parent, "begins_at": _s(self.begins_at),
            "switched_at": _s(self.switched_at), "next_timeline": self.next_timeline,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class LocateResult:
    system_identifier: int
    pg_major: int
    segment_size: int
    block_size: int
    scan: str
    timelines: list[TimelineEnd]  # oldest first

    @property
    def overall(self) -> TimelineEnd:
        """The newest timeline that has segment files (else the newest known one)."""
        with_files = [t for t in self.timelines if t.segments]
        return (with_files or self.timelines)[-1]

    def timeline(self, tli: int) -> TimelineEnd:
        for t in self.timelines:
            if t.timeline == tli:
                return t
        raise KeyError(tli)

    def as_dict(self) -> dict[str, Any]:
        """DESIGN.md 4.2: the overall (newest) timeline's fields at the top, every timeline
        in `timelines`, plus what the cluster is."""
        out: dict[str, Any] = {"system_identifier": str(self.system_identifier),
                               "pg_major": self.pg_major, "wal_segment_size": self.segment_size,
                               "block_size": self.block_size, "scan": self.scan}
        out.update(self.overall.as_dict())
        out["timelines"] = [t.as_dict() for t in self.timelines]
        return out


def _s(lsn: Lsn | None) -> str | None:
    return None if lsn is None else str(lsn)
