"""Is the end of WAL an export stopped at the written tail, or damage in the middle?

pg_waldump exits 1 at every end of valid WAL, also where a pg_wal simply ends (a zeroed page,
a zero length, a recycled page, a torn last record): crash recovery treats all of those as the
end of WAL. For exports (text, table, jsonl, csv, parquet) that makes every run look failed,
so they exit 0 there and 1 only when valid WAL of the same timeline lies beyond the stop point
(damage or a missing segment in the middle), as DESIGN.md 3 says. `--format waldump` and
`--stats` keep pg_waldump's status.

Whether WAL lies beyond is the locator's question (xlogtools.locate: the O(log n) header probe
of segments and pages, the stale-file logic, the decode of the tail and of what follows a
break). This module only compares its answers with where the export stopped; it does not
probe on its own. One wrapper: where the locator's search for WAL past a break does not reach
the files after the stop (a truncated segment in the middle: it notes "holds current WAL that
could not be reached" but gives no position), the locator is run on those files alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from typing import TYPE_CHECKING

from ..lsn import Lsn
from ..parse.endofwal import EndOfWal, EndReason

if TYPE_CHECKING:
    from ..locate import TimelineEnd

PathArg = str | os.PathLike[str]


@dataclass(frozen=True)
class EndVerdict:
    """What the end of an export means: `status` 0 (the written tail, or the range asked
    for) or 1 (valid WAL lies beyond: damage or a missing segment in the middle)."""

    status: int
    kind: str  # 'range' | 'written_tail' | 'damage' | 'missing_segment'
    message: str  # one line for stderr ('' for 'range')
    beyond_lsn: Lsn | None = None  # where valid WAL beyond the stop ends (kind damage/missing)


def _stop_text(eow: EndOfWal) -> str:
    return f"{eow.waldump_message()} [{eow.reason}]"


def classify_end(paths: Sequence[PathArg] | None, eow: EndOfWal | None,
                 timeline: int) -> EndVerdict:
    """The verdict for a reader of `paths` on `timeline` that stopped at `eow`."""
    if eow is None or eow.reason is EndReason.END_LSN_REACHED:
        return EndVerdict(0, "range", "")
    from ..errors import XlogError
    from ..locate import locate

    try:
        # The export itself read and checked every record up to its stop; only what lies
        # after the stop is the question, which the header probe and the decoded tail (and
        # the search past a break) answer: no second walk from the redo point.
        res = locate(list(paths) if paths else None, timeline=timeline, scan="tail")
        t = res.timeline(timeline)
        return _verdict(paths, eow, timeline, t)
    except (XlogError, KeyError) as exc:
        # The read itself went well up to here; only the check for WAL beyond failed.
        return EndVerdict(1, "damage", f"end of WAL: {_stop_text(eow)}; whether valid WAL "
                                       f"lies beyond it could not be checked: {exc}")


def _verdict(paths: Sequence[PathArg] | None, eow: EndOfWal, timeline: int,
             t: "TimelineEnd") -> EndVerdict:
    beyond = t.wal_beyond_end
    further: Lsn | None = None
    detail = ""
    if beyond is not None and beyond.end_lsn > eow.lsn:
        further = beyond.end_lsn
        detail = beyond.describe()
    elif t.end_lsn is not None and t.end_lsn > eow.lsn:
        # The locator reached further than this read: the read stopped before the tail.
        further = t.end_lsn
        detail = f"valid records up to {t.end_lsn}"
    if further is None:
        further, detail = _current_wal_after(paths, eow, timeline)
    if further is not None:
        kind = "missing_segment" if eow.reason is EndReason.MISSING_SEGMENT else "damage"
        what = (f"segment {eow.segment} is missing" if kind == "missing_segment" and eow.segment
                else "the WAL is damaged here")
        return EndVerdict(1, kind, (
            f"end of WAL in the middle: {_stop_text(eow)}; {what} and WAL of timeline "
            f"{timeline} continues after it ({detail})"), further)
    if eow.reason is EndReason.MISSING_SEGMENT:
        return EndVerdict(0, "written_tail", (
            f"end of WAL at {eow.lsn}: the next segment{' ' + eow.segment if eow.segment else ''}"
            f" is not in the input and no WAL of timeline {timeline} follows: the end of the "
            f"WAL given [{eow.reason}]"))
    return EndVerdict(0, "written_tail", (
        f"end of WAL at {eow.lsn}, the written tail of timeline {timeline} (where crash "
        f"recovery also stops): {eow.message} [{eow.reason}]"))


def _current_wal_after(paths: Sequence[PathArg] | None, eow: EndOfWal, timeline: int
                       ) -> tuple[Lsn | None, str]:
    """Valid WAL in the segment files of `timeline` after the one the stop is in: the
    locator run on those files alone (its header probe tells recycled and empty files from
    current ones). (end LSN, description) or (None, '')."""
    from ..errors import XlogError
    from ..locate import locate
    from ..parse.source import WalSource

    src = WalSource.open(list(paths) if paths else None)
    expected = src.expected_timelines(timeline)
    tlis = {t for t, _b, _e in expected}
    stop_seg = int(eow.error_lsn if eow.error_lsn is not None else eow.lsn) // src.seg_size
    later = [f.path for (t, s), f in sorted(src.files.items(), key=lambda kv: kv[0][1])
             if s > stop_seg and t in tlis and src.timeline_of_segment(s, expected) == t]
    if not later:
        return None, ""
    try:
        res = locate(later + list(src.history_files.values()), timeline=timeline, scan="tail")
        t = res.timeline(timeline)
    except (XlogError, KeyError):
        return None, ""
    if t.last_record_lsn is None or t.end_lsn is None:
        return None, ""
    return t.end_lsn, f"valid records in {t.first_segment} .. {t.last_segment}, to {t.end_lsn}"
