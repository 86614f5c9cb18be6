"""A progress line on stderr for long reads (dump, replay, gap): a bar over the bytes of WAL
to read, records/s and the LSN reached. Shown only when stderr is a terminal (or when asked),
and only after the first two seconds (XLOGTOOLS_PROGRESS_AFTER), so short runs and pipes stay
quiet."""
from __future__ import annotations

import os
import sys
import time
from typing import IO

from ..lsn import Lsn

BAR = 24


class Progress:
    def __init__(self, label: str, enabled: bool | None, lo: int, hi: int,
                 stream: IO[str] | None = None, delay: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.lo = lo
        self.total = max(hi - lo, 1)
        # XLOGTOOLS_PROGRESS_AFTER: seconds before the first line (default 2; tests use 0)
        self.delay = delay if delay is not None else float(
            os.environ.get("XLOGTOOLS_PROGRESS_AFTER", "2"))
        self.t0 = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, lsn: int, records: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.t0 < self.delay or (self.shown and now - self.last < 0.5):
            return
        self.last = now
        self.shown = True
        done = min(max(lsn - self.lo, 0), self.total)
        frac = done / self.total
        fill = int(BAR * frac)
        bar = "#" * fill + "-" * (BAR - fill)
        rate = records / max(now - self.t0, 1e-6)
        self.stream.write(f"\rxlogtools {self.label}: [{bar}] {100 * frac:5.1f}%  "
                          f"{done / 2**20:,.1f} of {self.total / 2**20:,.1f} MB, at {Lsn(lsn)}, "
                          f"{records:,} records, {rate:,.0f}/s ")
        self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def wal_span(reader) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(first, last) byte positions a reader will cover: from its start (or its first
    segment) to the end of its last segment (or its end LSN)."""
    segs = reader.source.segnos(reader.timeline) or [0]
    lo = max(int(reader.start or 0), min(segs) * reader.seg_size)
    hi = (max(segs) + 1) * reader.seg_size
    if reader.end is not None:
        hi = min(hi, int(reader.end))
    return lo, hi
