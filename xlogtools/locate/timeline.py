"""The work of `locate` on one timeline: header probes, the decoded tail, the walk from the
last checkpoint's redo point, the search back for checkpoints and commits (see the package's
docstring for the steps)."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from ..lsn import Lsn, segment_name
from ..parse import layout as L
from ..parse.pgtime import unix_time
from ..parse.reader import EndOfWal, EndReason, WalReader
from ..parse.record import Record
from ..parse.rmgr import xact
from ..parse.rmgr.ids import RM_XACT_ID, RM_XLOG_ID
from ..parse.rmgr.xlog import CHECKPOINT_SHUTDOWN, checkpoint as checkpoint_data, is_checkpoint
from ..parse.source import SegmentFile, WalSource, map_file, read_file_bytes
from ..parse.pgtime import pg_timestamp
from .ckptsearch import checkpoint_candidates
from .results import Beyond, Checkpoint, Commit, Gap, TimelineEnd

DEFAULT_TAIL_BYTES = 1 << 20
DEFAULT_CHECKPOINT_SEARCH_BYTES = 1 << 30
DEFAULT_COMMIT_SEARCH_BYTES = 16 << 20
SCANS = ("recovery", "tail", "all")
HEADER_SIZES = (0, L.SIZE_OF_SHORT_PHD, L.SIZE_OF_LONG_PHD)  # next record after a page header


# --- the work -------------------------------------------------------------------------------
@dataclass
class LocateSource(WalSource):
    """WalSource that keeps recent segments (several readers visit the same files: the
    checkpoint search, the walk from its redo point, the tail) and names the files it opened.
    Plain files are mapped, not copied (the walk from the redo point reads up to max_wal_size
    of WAL); compressed ones are decompressed into memory, and only the last few are kept."""

    cache: "collections.OrderedDict[str, Any]" = field(default_factory=collections.OrderedDict)
    opened: set[str] = field(default_factory=set)

    def read(self, c: SegmentFile) -> Any:
        self.opened.add(c.path.name)
        key = str(c.path)
        data = self.cache.get(key)
        if data is None:
            if c.compression is None:
                data = map_file(c.path)
                self.read_paths.add(c.path)
            else:
                data = super().read(c)
            self.cache[key] = data
            copies = [k for k, v in self.cache.items() if isinstance(v, bytes)]
            while len(copies) > 4 or len(self.cache) > 256:
                drop = copies.pop(0) if len(copies) > 4 else next(iter(self.cache))
                del self.cache[drop]
        else:
            self.cache.move_to_end(key)
        return data


@dataclass
class _Window:
    """One run of the shared reader: the records it decoded and why it stopped."""

    start: int
    first: Lsn | None
    first_prev: Lsn | None
    count: int
    last: Lsn | None
    eow: EndOfWal
    checkpoint: Record | None
    commit: Record | None


@dataclass(frozen=True)
class _Break:
    """Something reading forward cannot pass, before the decoded tail."""

    lsn: int
    kind: str  # 'gap' | 'unusable' | 'damage'
    segno: int
    window: _Window | None = None


class TimelineLocator:
    """Locate the end of one timeline (through its ancestors, as the reader follows them)."""

    def __init__(self, src: LocateSource, tli: int, scan: str, tail_bytes: int,
                 checkpoint_search_bytes: int, commit_search_bytes: int) -> None:
        self.src = src
        self.tli = tli
        self.scan = scan
        self.tail_bytes = max(tail_bytes, src.block_size)
        self.ckpt_budget = checkpoint_search_bytes
        self.commit_budget = commit_search_bytes
        self.seg = src.seg_size
        self.blcksz = src.block_size
        assert src.cluster is not None
        self.magic = src.cluster.magic
        self.sysid = src.cluster.sysid
        self.major = src.cluster.pg_major
        self.expected = src.expected_timelines(tli)
        tlis = {t for t, _b, _e in self.expected}
        self.files = {s: f for (t, s), f in src.files.items()
                      if t in tlis and src.timeline_of_segment(s, self.expected) == t}
        self.seq = sorted(self.files)
        self.probes: dict[int, str] = {}
        self.notes: list[str] = []

    # -- reading --------------------------------------------------------------------------------
    def name(self, segno: int) -> str:
        f = self.files.get(segno)
        return f.name if f else segment_name(self.src.timeline_of_segment(segno, self.expected),
                                             segno, self.seg)

    def probe(self, segno: int) -> str:
        """State of a segment by its first page header: current | recycled | empty | invalid."""
        if segno not in self.probes:
            f = self.files[segno]
            self.src.opened.add(f.path.name)
            head = read_file_bytes(f.path, f.compression, L.SIZE_OF_LONG_PHD)
            self.probes[segno] = self._state(head, segno)
        return self.probes[segno]

    def _state(self, head: bytes, segno: int) -> str:
        if len(head) < L.SIZE_OF_LONG_PHD:
            return "empty" if not any(head) else "invalid"
        if not any(head):
            return "empty"
        magic, info, _tli, addr, _rem, sysid, seg_size, _bs = L.LONG_PAGE_HEADER.unpack_from(head)
        if magic != self.magic or not info & L.XLP_LONG_HEADER or sysid != self.sysid \
                or seg_size != self.seg:
            return "invalid"
        if addr != segno * self.seg:
            return "recycled" if addr < segno * self.seg else "invalid"
        return "current"

    def page_ok(self, buf: bytes, seg_start: int, off: int) -> bool:
        if len(buf) < off + L.SIZE_OF_SHORT_PHD:
            return False
        magic, info, _tli, addr, _rem = L.PAGE_HEADER.unpack_from(buf, off)
        return magic == self.magic and addr == seg_start + off and not info & ~L.XLP_ALL_FLAGS

    def decode(self, start: int, end: int | None = None) -> _Window:
        reader = WalReader(self.src, start=Lsn(start), end=Lsn(end) if end is not None else None,
                           timeline=self.tli)
        first = first_prev = ckpt = commit = None
        n = 0
        for rec in reader:
            if first is None:
                first, first_prev = rec.lsn, rec.prev
            n += 1
            rmid = rec.rmid
            if rmid == RM_XLOG_ID:
                if is_checkpoint(rec):
                    ckpt = rec
            elif rmid == RM_XACT_ID and rec.info & xact.OPMASK in xact.ENDS:
                commit = rec
        assert reader.end_of_wal is not None
        return _Window(start, first, first_prev, n, reader.last_record_lsn, reader.end_of_wal,
                       ckpt, commit)

    def floor_page(self, lsn: int) -> int:
        return lsn - lsn % self.blcksz

    def verify(self, start: int, tail: _Window) -> _Window:
        """Check every record from `start` to where reading stops (headers, prev-links, CRC,
        fragment headers: WalReader.scan(), the C walk when built), as crash recovery reads
        from its redo point. When it stops where the decoded tail stops, the tail stands;
        when it stops earlier (damage in the middle), the stretch before the stop is decoded
        (for the last checkpoint and commit), from a page `tail_bytes` before it."""
        reader = WalReader(self.src, start=Lsn(start), timeline=self.tli)
        reader.scan()
        eow = reader.end_of_wal
        assert eow is not None
        if (eow.lsn, eow.reason, eow.error_lsn) == (tail.eow.lsn, tail.eow.reason,
                                                     tail.eow.error_lsn):
            return tail
        near = max(start, self.floor_page(int(eow.error_lsn)) - self.tail_bytes)
        w = self.decode(near)
        if (w.eow.lsn, w.eow.reason) != (eow.lsn, eow.reason) and near > start:
            w = self.decode(start)  # no record boundary there leads to the same stop
        return w

    # -- 1 and 2: where current WAL ends, by headers ---------------------------------------------
    def last_current_index(self) -> int:
        """Binary search for the last segment whose header is current (monotone in a normal
        pg_wal: current ones, then recycled/empty ones), then a probe of each file after it."""
        seq = self.seq
        lo, hi = -1, len(seq) - 1
        if self.probe(seq[hi]) == "current":
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.probe(seq[mid]) == "current":
                lo = mid
            else:
                hi = mid
        last = lo
        for i in range(lo + 1, len(seq)):
            if self.probe(seq[i]) == "current":
                last = i  # current WAL after a broken segment: reading will say where it stops
        return last

    def last_current_page(self, segno: int) -> int:
        buf = self.src.read(self.files[segno])
        start = segno * self.seg
        lo, hi = 0, min(len(buf), self.seg) // self.blcksz
        # invariant: page lo is current (the segment's first page was probed), page hi is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.page_ok(buf, start, mid * self.blcksz):
                lo = mid
            else:
                hi = mid
        return start + lo * self.blcksz

    def run_start(self, idx: int) -> int:
        """First segment of the run of consecutive present segments that ends at seq[idx]."""
        seq = self.seq
        i = idx
        while i > 0 and seq[i - 1] == seq[i] - 1:
            i -= 1
        return seq[i]

    # -- 3: decode the tail -----------------------------------------------------------------------
    def tail_window(self, idx: int, last_page: int) -> _Window:
        lower = self.run_start(idx) * self.seg
        start = max(lower, self.floor_page(last_page + self.blcksz - self.tail_bytes))
        while True:
            w = self.decode(start)
            if w.count or start <= lower:
                return w
            # No valid record from this boundary (zeros after an XLOG_SWITCH, or damage):
            # back off to the segment's start, then segment by segment; a segment's first
            # page is always a record boundary.
            seg_start = start - start % self.seg
            start = max(lower, seg_start if seg_start < start else seg_start - self.seg)

    def beyond(self, eow: EndOfWal, last_page: int) -> Beyond | None:
        """Valid WAL after a stop that is not at the end of current pages (damage or a broken
        segment in the middle): resume at the next page that yields records (decoded for up
        to tail_bytes to find them), then walk the rest of that stretch (WalReader.scan())."""
        first: Lsn | None = None
        last: tuple[Lsn, Lsn | None] | None = None  # end and last record of the last stretch
        stretches = 0
        for _ in range(8):
            epage = self.floor_page(int(eow.error_lsn))
            if epage >= last_page:
                break
            pos = epage + self.blcksz
            w = None
            for _attempt in range(64):
                if pos // self.seg not in self.files:
                    later = [s for s in self.seq if s > pos // self.seg]
                    if not later:
                        break
                    pos = later[0] * self.seg
                if pos > last_page:
                    break
                w = self.decode(pos, end=pos + self.tail_bytes)
                if w.count:
                    break
                pos += self.blcksz
            if w is None or not w.count:
                break
            assert w.first is not None
            first = first or w.first
            stretches += 1
            if w.eow.reason is EndReason.END_LSN_REACHED:  # records go on: walk the rest
                r = WalReader(self.src, start=w.first, timeline=self.tli)
                r.scan()
                assert r.end_of_wal is not None
                eow = r.end_of_wal
                last = (eow.lsn, r.last_record_lsn)
            else:
                eow = w.eow
                last = (eow.lsn, w.last)
        if last is None or first is None:
            return None
        return Beyond(first, last[0], last[1], stretches - 1)

    def newest_checkpoint(self, lo: int, hi: int) -> Checkpoint | None:
        """The newest checkpoint record that starts in [lo, hi) (found by the header search,
        confirmed by the reader), within the checkpoint search budget; None if the newest
        one found starts before lo, or none is found."""
        segno = (hi - 1) // self.seg
        below, budget = hi, self.ckpt_budget
        while segno >= lo // self.seg and budget > 0:
            if segno in self.files and self.probe(segno) == "current":
                cp = self.search_checkpoint(segno, below)
                if cp is not None:
                    return cp if cp.lsn >= lo else None
            budget -= self.seg
            below = segno * self.seg
            segno -= 1
        return None

    # -- 4: what happened last ---------------------------------------------------------------------
    def checkpoint_of(self, rec: Record, found_by: str) -> Checkpoint | None:
        cp = checkpoint_data(rec)
        if cp is None:
            return None
        kind = "shutdown" if rec.info & 0xF0 == CHECKPOINT_SHUTDOWN else "online"
        return Checkpoint(rec.lsn, Lsn(cp.redo), cp.timeline, kind, unix_time(cp.time), found_by)

    def commit_of(self, rec: Record) -> Commit:
        """The commit or abort record as a Commit (parse/rmgr/xact's decoder, whose xid is the
        transaction the record ends: for COMMIT/ABORT PREPARED the prepared one)."""
        # read as describe reads it: a damaged record's data past its end as zeros
        r = xact.decode(rec, strict=False)
        assert r is not None and r.kind != "assignment" and r.kind != "prepare"
        return Commit(r.xid, rec.lsn, pg_timestamp(r.time), r.kind)

    def search_checkpoint(self, segno: int, below: int) -> Checkpoint | None:
        """The last checkpoint record in segment segno that starts before `below`: candidates
        by their fixed xl_tot_len (locate/ckptsearch.py), confirmed by the reader from their
        page's first record."""
        seg_start = segno * self.seg
        buf = self.src.read(self.files[segno])
        for pos in checkpoint_candidates(buf, below - seg_start, self.blcksz):
            cp = self.confirm_checkpoint(seg_start + pos)
            if cp is not None:
                return cp
        return None

    def confirm_checkpoint(self, lsn: int) -> Checkpoint | None:
        reader = WalReader(self.src, start=Lsn(lsn), timeline=self.tli)
        for rec in reader:
            if rec.lsn == lsn and is_checkpoint(rec):
                return self.checkpoint_of(rec, "record_search")
            return None
        return None

    def history(self, end: EndOfWal, windows: list[_Window], checked_from: int,
                checked_prev: Lsn | None
                ) -> tuple[Checkpoint | None, Commit | None, int, list[_Break], int]:
        """Last checkpoint and commit before `end`: from the decoded windows, else stepping back
        segment by segment from checked_from (the first record decoded; checked_prev its
        xl_prev). Checkpoints are searched for (bounded by the checkpoint budget); commits are
        decoded (commit budget), in WAL that chains up to checked_from by its prev-links, which
        moves checked_from back. Returns them, the new checked_from, what was met that reading
        forward cannot pass (missing or unusable segments, damage), and the lowest LSN looked at.
        """
        ckpt = commit = None
        for w in windows:  # oldest first; later ones win
            if w.checkpoint is not None and w.checkpoint.lsn < end.lsn:
                ckpt = self.checkpoint_of(w.checkpoint, "decoded") or ckpt
            if w.commit is not None and w.commit.lsn < end.lsn:
                commit = self.commit_of(w.commit)
        breaks: list[_Break] = []
        low = below = checked_from
        segno = checked_from // self.seg
        ckpt_left, commit_left = self.ckpt_budget, self.commit_budget
        chained = checked_prev is not None
        first_seg = self.seq[0] if self.seq else 0
        while (ckpt is None and ckpt_left > 0 or commit is None and commit_left > 0 and chained) \
                and segno >= first_seg:
            start = segno * self.seg
            if segno not in self.files:
                chained = False
            elif start < low and self.probe(segno) != "current":
                breaks.append(_Break(start, "unusable", segno))
                chained = False
            else:
                if commit is None and chained and commit_left > 0:
                    w = self.decode(start, end=checked_from)
                    commit_left -= checked_from - start
                    stop = w.eow
                    if stop.reason is EndReason.END_LSN_REACHED and \
                            checked_from - stop.lsn in HEADER_SIZES and \
                            (w.count == 0 or w.last == checked_prev):
                        if w.count:  # chained up: the checked stretch grows back
                            assert w.first is not None
                            checked_from, checked_prev = int(w.first), w.first_prev
                            if w.commit is not None:
                                commit = self.commit_of(w.commit)
                            if ckpt is None and w.checkpoint is not None:
                                ckpt = self.checkpoint_of(w.checkpoint, "decoded")
                    else:
                        chained = False
                        if w.count and stop.reason is not EndReason.END_LSN_REACHED:
                            breaks.append(_Break(int(stop.error_lsn), "damage", segno, w))
                if ckpt is None and ckpt_left > 0:
                    ckpt = self.search_checkpoint(segno, below)
                    ckpt_left -= self.seg
            low = min(low, start)
            below = start
            segno -= 1
        return ckpt, commit, checked_from, breaks, low

    # -- putting it together ------------------------------------------------------------------------
    def locate(self) -> TimelineEnd:
        """Everything but the history fields, which the caller fills in."""
        if not self.seq:
            return no_segments(self.tli)
        idx = self.last_current_index()
        last_seg = self.seq[max(idx, 0)]  # nothing current: reading the first segment says why
        last_page = (self.last_current_page(last_seg) if self.probe(last_seg) == "current"
                     else last_seg * self.seg)
        main = self.tail_window(max(idx, 0), last_page)
        first_start = self.seq[0] * self.seg
        verified_from: int | None = None
        if self.scan == "all":
            main = self.verify(first_start, main)
            verified_from = first_start
        beyond = self.beyond(main.eow, last_page)
        # the end of the WAL as written, past any break in the tail, and how many it passed
        written = ((beyond.end_lsn, beyond.last_record_lsn, beyond.breaks + 1) if beyond
                   else (main.eow.lsn, main.last, 0))
        windows, end = [main], main.eow
        checked_from = int(main.first) if main.first is not None else int(end.lsn)
        checked_prev = main.first_prev
        ckpt: Checkpoint | None = None
        commit: Commit | None = None
        low = checked_from
        redo_known = False
        for round_ in range(8):
            ckpt, commit, checked_from, met, low = self.history(end, windows, checked_from,
                                                                checked_prev)
            if self.scan == "recovery" and round_ == 0 and beyond is not None:
                # Valid WAL after this stop may hold a newer checkpoint: the one pg_control
                # names. When its redo point lies after the stop, crash recovery starts there
                # and never reads the damage; the end is where reading from it stops.
                late = self.newest_checkpoint(int(end.lsn), int(beyond.end_lsn))
                if late is not None and late.redo > end.lsn:
                    self.notes.append(
                        f"{end.reason.value} at {end.error_lsn} ({end.message}) lies before the "
                        f"redo point {late.redo} of the last checkpoint ({late.lsn}), where "
                        "crash recovery starts: not on its path")
                    start = int(late.redo)
                    w = self.verify(start, main)
                    # the last commit may lie between the damage and the redo point: decode
                    # from up to tail_bytes before the redo point (not before the damage)
                    lo = max(int(beyond.checked_from), self.floor_page(start) - self.tail_bytes)
                    if w.first is not None and lo < w.first:
                        w2 = self.decode(lo)
                        if (w2.eow.lsn, w2.eow.reason) == (w.eow.lsn, w.eow.reason):
                            w = w2
                    windows, end = [w], w.eow
                    checked_from = int(w.first) if w.first is not None else start
                    checked_prev = w.first_prev
                    beyond = self.beyond(end, last_page) if end.lsn < written[0] else None
                    verified_from = start
                    continue
            if self.scan == "recovery" and round_ == 0:
                # Crash recovery reads every record from the redo point of the last
                # checkpoint; with none found in the files, everything from the first one.
                if ckpt is None:
                    self.notes.append("no checkpoint record found: every record from the "
                                      "first segment was checked")
                start = int(ckpt.redo) if ckpt is not None else first_start
                verified_from = min(start, checked_from)
                if start < checked_from:
                    w = self.verify(start, main)
                    if w is not main:
                        windows, end = [w], w.eow
                        checked_from = int(w.first) if w.first is not None else start
                        checked_prev = w.first_prev
                        if end.lsn < written[0]:
                            beyond = self.beyond(end, last_page)
                        continue
            redo_known = ckpt is not None
            floor = int(ckpt.redo) if ckpt is not None else low
            brk = self.first_break(floor, checked_from, met)
            if brk is None:
                break
            # Reading forward from the redo point stops at this break, before the tail.
            after = checked_from
            if brk.kind == "damage":
                assert brk.window is not None
                w = brk.window
            else:
                prev = brk.segno - 1  # read up to the break from the segment before it
                w = self.decode(prev * self.seg if prev in self.files else brk.lsn)
            windows, end = [w], w.eow
            checked_from = int(w.first) if w.first is not None else brk.lsn
            checked_prev = w.first_prev
            beyond = Beyond(Lsn(after), *written)
        if verified_from is None or verified_from > checked_from:
            verified_from = checked_from  # --quick: the decoded tail only
        return self.result(end, verified_from, ckpt, commit, beyond, redo_known, low)

    def result(self, end: EndOfWal, verified_from: int, ckpt: Checkpoint | None,
               commit: Commit | None, beyond: Beyond | None, redo_known: bool, low: int
               ) -> TimelineEnd:
        seg = self.seg
        last = end.last_record_lsn
        reach = max(int(end.lsn), int(beyond.end_lsn) if beyond else 0)
        stale, empty = [], []
        for s in self.seq:
            if s * seg >= reach:  # files holding nothing of the WAL found
                state = self.probe(s)
                if state == "recycled":
                    stale.append(self.name(s))
                elif state == "empty":
                    empty.append(self.name(s))
                elif state == "invalid":
                    self.notes.append(f"{self.name(s)} beyond the end: not a WAL segment of this "
                                      "cluster (invalid first page header)")
                else:
                    self.notes.append(f"{self.name(s)} beyond the end holds current WAL that "
                                      "could not be reached")
        gaps = []
        seq = self.seq
        redo = int(ckpt.redo) if ckpt is not None else None
        for a, b in zip(seq, seq[1:]):
            if b - a > 1 and (a + 1) * seg < reach:
                on_path = None if redo is None else (b * seg > redo and (a + 1) * seg < reach)
                gaps.append(Gap(self.name(a + 1), self.name(b - 1), b - a - 1, Lsn((a + 1) * seg),
                                Lsn(b * seg), on_path))
        exact = True
        detail = end.message
        if end.reason is EndReason.MISSING_SEGMENT and beyond is not None:
            exact = False
            detail = (f"{end.message}: segment {end.segment} is missing and WAL continues after "
                      f"it ({beyond.describe()}), so the end of WAL cannot be determined "
                      "exactly; this is where reading forward stops")
        elif beyond is not None:
            detail = f"{end.message}; WAL continues after it ({beyond.describe()})"
        elif end.reason is EndReason.MISSING_SEGMENT:
            detail = (f"{end.message}: the next segment is not present, so this is the end of "
                      "the WAL given (it may continue in a segment not given)")
        if not redo_known and any(g.start_lsn < low for g in gaps):
            exact = False
            self.notes.append(f"no checkpoint record found after {Lsn(low)} (searched back "
                              f"{self.ckpt_budget >> 20} MB): gaps before it may be on the "
                              "recovery path")
        if ckpt is None:
            self.notes.append("no checkpoint record found before the end (searched back "
                              f"{self.ckpt_budget >> 20} MB)")
        if commit is None:
            self.notes.append("no commit or abort record found before the end (decoded back "
                              f"{self.commit_budget >> 20} MB)")
        opened = self.src.opened
        return TimelineEnd(
            timeline=self.tli, parent=None, begins_at=None, switched_at=None,
            next_timeline=None, end_lsn=end.lsn, last_record_lsn=last,
            last_segment=self.name(int(last) // seg) if last is not None else None,
            reason=end.reason.value, reason_detail=detail, error_lsn=end.error_lsn,
            error_segment=end.segment, exact=exact,
            verified_from=Lsn(verified_from) if last is not None else None,
            last_checkpoint=ckpt, last_commit=commit, segments=len(seq),
            first_segment=self.name(seq[0]),
            segments_read=sum(1 for s in seq if self.files[s].path.name in opened),
            stale_segments=stale, empty_segments=empty, gaps=gaps, wal_beyond_end=beyond,
            notes=list(dict.fromkeys(self.notes)))

    def first_break(self, floor: int, checked_from: int, met: list[_Break]) -> _Break | None:
        """The earliest gap, unusable segment or damage in [floor, checked_from)."""
        seg = self.seg
        found = [b for b in met if b.lsn < checked_from and (
            b.lsn >= floor if b.kind == "damage" else (b.segno + 1) * seg > floor)]
        seq = self.seq
        for a, b in zip(seq, seq[1:]):
            g = a + 1
            if b > g and b * seg > floor and g * seg < checked_from:
                found.append(_Break(max(g * seg, floor - floor % seg), "gap", max(g, floor // seg)))
        return min(found, key=lambda x: x.lsn) if found else None


def no_segments(tli: int) -> TimelineEnd:
    return TimelineEnd(
        timeline=tli, parent=None, begins_at=None, switched_at=None, next_timeline=None,
        end_lsn=None, last_record_lsn=None, last_segment=None, reason="no_segments",
        reason_detail="no segment file of this timeline was given (known from a history file)",
        error_lsn=None, error_segment=None, exact=False, verified_from=None, last_checkpoint=None,
        last_commit=None,
        segments=0, first_segment=None, segments_read=0)
