"""What of an archive directory a walsender may send: `valid_length` of a segment, DIR as a
walsender sees it (`Archive`: rescanned when its files change, segment bytes cached), and what
streaming a timeline from a position means there (`TimelinePlan`).

How far a segment may be sent (`valid_length`): up to the end of the last whole record the
reader validates (CRC included) in pages whose header carries the right magic and address:
the tail of a segment still being written, or a recycled file's stale pages, are never sent,
so nothing sent has to be taken back. (In relay mode the receiver's
flushed position decides instead for the segment it writes: see `sender.WalSender.live_limit`.)
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..errors import InputError
from ..lsn import Lsn
from ..parse import layout as L
from ..parse.reader import complete_records_end
from ..parse.source import ClusterInfo, SegmentFile, WalSource, read_file_bytes
from .backend import INTERNAL_ERROR
from .replcommands import CommandError

log = logging.getLogger("xlogtools.serve")



def valid_length(data: bytes, segno: int, cluster: ClusterInfo, tli: int) -> tuple[int, bool]:
    """(bytes from the segment start that may be sent, every page valid and present).

    What may be sent is what is certainly WAL: up to the end of the last whole, valid record
    (CRC and all, by the reader) that lies in pages with the right magic and address. A page
    of a segment being written can be on disk with a record half-copied into it, or with the
    last bytes of a record still zeros; and a recycled file's pages beyond the end are stale.
    (Once the next segment exists the caller sends a complete segment whole.)"""
    seg_size, block_size = cluster.seg_size, cluster.block_size
    seg_start = segno * seg_size
    n = min(len(data), seg_size)
    pos = 0
    while pos + L.SIZE_OF_SHORT_PHD <= n:
        m, _info, _tli, addr, _rem = L.PAGE_HEADER.unpack_from(data, pos)
        if m != cluster.magic or addr != seg_start + pos:
            break
        pos += block_size
    pages_end = min(pos, n)
    if pages_end == 0:
        return 0, False
    return complete_records_end(cluster, tli, segno, data[:pages_end]), pages_end >= seg_size


class Archive:
    """DIR as a walsender sees it: rescanned when its files change; segment bytes cached."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.source: WalSource | None = None
        self._signature: tuple[Any, ...] = ()
        self._cache: OrderedDict[tuple[Path, int, int], tuple[bytes, int, bool]] = OrderedDict()
        self.generation = 0
        self.holes_reported: set[tuple[int, int]] = set()
        # False in relay mode: the .partial being written changes all the time, and the
        # receiver's notifications (not a rescan) tell when there is more to send.
        self.track_partial_mtime = True

    def _scan_signature(self) -> tuple[Any, ...]:
        out = []
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = [d for d in dirs if d not in ("archive_status", "summaries")]
            for f in files:
                if f.endswith(".tmp") or f.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                mtime = st.st_mtime_ns if self.track_partial_mtime or \
                    not f.endswith(".partial") else 0
                out.append((root, f, st.st_size, mtime))
        out.sort()
        return tuple(out)

    def forget_cached(self) -> None:
        self._cache.clear()

    def refresh(self) -> bool:
        """Rescan DIR; True when something changed."""
        sig = self._scan_signature()
        if sig == self._signature and self.source is not None:
            return False
        try:
            src = WalSource.open([self.directory])
        except InputError as exc:
            if self.source is None:
                log.debug("archive not usable yet: %s", exc)
                self._signature = sig
                return False
            log.warning("rescanning %s: %s", self.directory, exc)
            return False
        self._signature = sig
        self.source = src
        self.generation += 1
        return True

    # -- what the archive holds ---------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.source is not None and self.source.cluster is not None

    def current_timeline(self) -> int:
        assert self.source is not None
        return max(self.source.timelines())

    def history(self, tli: int) -> list[Any]:
        assert self.source is not None
        return self.source.histories.get(tli, [])

    def history_bytes(self, path: Path) -> bytes:
        """The content of a history file of the scan (`source.history_files`): NNNNNNNN.history,
        decompressed if its name ends in .gz, .zst, .lz4 or .bz2."""
        compression = path.name.partition(".history.")[2]
        return read_file_bytes(path, compression or None)

    def segment_data(self, seg: SegmentFile, segno: int) -> tuple[bytes, int, bool]:
        """(bytes, sendable length, complete) of one segment file (complete ones cached by
        name/size/mtime)."""
        assert self.source is not None
        try:
            st = seg.path.stat()
        except OSError:
            return b"", 0, False
        key = (seg.path, st.st_size, st.st_mtime_ns)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        data = self.source.read(seg)
        cl = self.source.cluster
        assert cl is not None
        n, complete = valid_length(data, segno, cl, seg.tli)
        res = (data, n, complete)
        if not complete:
            # Still being written: two writes within one mtime tick leave size and mtime as
            # they were, so a cached copy could hide the second one. Read it again next time.
            return res
        self._cache[key] = res
        while len(self._cache) > 6:
            self._cache.popitem(last=False)
        return res

    def file_for(self, plan: "TimelinePlan", segno: int) -> SegmentFile | None:
        assert self.source is not None
        seg_size = self.source.seg_size
        chain = plan.chain
        for i in range(len(chain) - 1, -1, -1):
            tli, begin = chain[i]
            if int(begin) // seg_size <= segno:
                f = self.source.segment(tli, segno)
                if f is not None:
                    return f
                # The switch segment of a historic timeline may also come from the old one.
                if i > 0 and plan.valid_upto is not None and i == len(chain) - 1 \
                        and int(plan.valid_upto) // seg_size == segno:
                    continue
                return None
        return None

    def first_segno(self, plan: "TimelinePlan") -> int | None:
        assert self.source is not None
        tlis = {t for t, _ in plan.chain}
        segs = [s for (t, s) in self.source.files if t in tlis]
        return min(segs) if segs else None

    def last_segno(self, plan: "TimelinePlan") -> int | None:
        assert self.source is not None
        tlis = {t for t, _ in plan.chain}
        segs = [s for (t, s) in self.source.files if t in tlis]
        return max(segs) if segs else None

    def end_of_wal(self, tli: int) -> Lsn:
        """Where the WAL of `tli` (with its ancestors) ends in the archive: the xlogpos of
        IDENTIFY_SYSTEM."""
        assert self.source is not None
        plan = self.plan(tli, Lsn(0))
        seg_size = self.source.seg_size
        last = self.last_segno(plan)
        if last is None:
            return Lsn(0)
        for segno in range(last, max(-1, last - 64), -1):
            f = self.file_for(plan, segno)
            if f is None:
                continue
            _, n, _ = self.segment_data(f, segno)
            if n > 0:
                return Lsn(segno * seg_size + n)
        return Lsn(0)

    def plan(self, tli: int, start: Lsn) -> "TimelinePlan":
        """What streaming `tli` from `start` means here (StartReplication of walsender.c)."""
        assert self.source is not None
        cur = self.current_timeline()
        if tli == 0:
            tli = cur
        if tli == cur:
            return TimelinePlan(tli, _chain(self.source.expected_timelines(cur)), None, None)
        hist = self.history(cur)
        for i, h in enumerate(hist):
            if h.tli == tli:
                nxt = hist[i + 1].tli if i + 1 < len(hist) else cur
                chain = _chain(self.source.expected_timelines(cur))
                # the requested timeline's chain, then the next one from the switch point
                idx = [t for t, _ in chain].index(tli)
                chain = chain[:idx + 1] + [(nxt, h.switchpoint)]
                return TimelinePlan(tli, chain, h.switchpoint, nxt)
        raise CommandError(INTERNAL_ERROR, f"requested timeline {tli} is not in this server's "
                           "history")


def _chain(expected: list[tuple[int, Lsn, Lsn | None]]) -> list[tuple[int, Lsn]]:
    return [(t, b) for t, b, _ in expected]


@dataclass(frozen=True)
class TimelinePlan:
    timeline: int
    chain: list[tuple[int, Lsn]]  # (tli, begin) oldest first; the last one's files are newest
    valid_upto: Lsn | None  # switch point when the timeline is historic
    next_tli: int | None
