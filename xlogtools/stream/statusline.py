"""The receiver's status line on a terminal (receive without --verbose on a tty): the
written position, the flushed one, the lag and the rate, rewritten in place every second.
"""
from __future__ import annotations

import logging
from typing import Any, TextIO

from ..lsn import Lsn


class StatusLine:
    """Shown on `out` when `on`; `show()` once a second, `clear()` before other output."""

    def __init__(self, out: TextIO, on: bool) -> None:
        self.out = out
        self.on = on
        self.shown = 0.0  # time.monotonic() of the last show()
        self.pos = 0  # the written position it showed
        self._len = 0

    def show(self, now: float, a: Any, server_end: int) -> None:
        """The line for archive `a` (a WalArchive, or None: nothing to show)."""
        if a is None:
            return
        pos = int(a.written)
        rate = (pos - self.pos) / max(now - self.shown, 1e-6) / (1 << 20)
        lag = max(0, server_end - int(a.flushed))
        line = (f"{Lsn(pos)} (timeline {a.timeline}) flushed {a.flushed} lag "
                f"{size(lag)} {rate:6.1f} MB/s")
        pad = max(0, self._len - len(line))
        self.out.write("\r" + line + " " * pad)
        self.out.flush()
        self._len = len(line)
        self.shown = now
        self.pos = pos

    def end_line(self, record: logging.LogRecord) -> bool:
        self.clear()
        return True

    def clear(self) -> None:
        if self._len:
            self.out.write("\n")
            self.out.flush()
            self._len = 0


def size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 10240 or unit == "GB":
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GB"


__all__ = ["StatusLine", "size"]
