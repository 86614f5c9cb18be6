"""LSN value type and WAL segment file names (access/xlog_internal.h, xlogdefs.h)."""
from __future__ import annotations

import re

_LSN_RE = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")
_SEG_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


class Lsn(int):
    """A WAL position (XLogRecPtr): a 64-bit byte offset, written `16/B374D848`."""

    __slots__ = ()

    def __new__(cls, value: int | str | "Lsn" = 0) -> "Lsn":
        if isinstance(value, str):
            m = _LSN_RE.match(value)
            if not m:
                raise ValueError(f"invalid LSN {value!r}: expected X/X in hexadecimal, e.g. 0/16B3748")
            value = (int(m.group(1), 16) << 32) | int(m.group(2), 16)
        if not 0 <= int(value) < 1 << 64:
            raise ValueError(f"LSN out of range: {value}")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, text: str) -> "Lsn":
        return cls(text)

    @property
    def hi(self) -> int:
        return int(self) >> 32

    @property
    def lo(self) -> int:
        return int(self) & 0xFFFFFFFF

    # %-formatting: about twice as fast as f-strings with format specs (records print LSNs)
    def __str__(self) -> str:
        # PostgreSQL's LSN_FORMAT_ARGS with "%X/%X".
        return "%X/%X" % (self >> 32, self & 0xFFFFFFFF)

    def waldump(self) -> str:
        """The form pg_waldump prints for record positions: "%X/%08X"."""
        return "%X/%08X" % (self >> 32, self & 0xFFFFFFFF)

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __add__(self, other: int) -> "Lsn":
        return Lsn(int(self) + int(other))

    def __sub__(self, other: int) -> int:
        # Lsn - Lsn is a byte distance, Lsn - int a position; int covers both.
        return int(self) - int(other)

    def segno(self, seg_size: int) -> int:
        return int(self) // seg_size

    def seg_offset(self, seg_size: int) -> int:
        return int(self) % seg_size


def segments_per_xlogid(seg_size: int) -> int:
    return 0x100000000 // seg_size


def segment_name(tli: int, segno: int, seg_size: int) -> str:
    """XLogFileName(): TTTTTTTTXXXXXXXXYYYYYYYY."""
    per = segments_per_xlogid(seg_size)
    return f"{tli:08X}{segno // per:08X}{segno % per:08X}"


def parse_segment_name(name: str, seg_size: int) -> tuple[int, int]:
    """(timeline, segno) of a segment file name; ValueError if it is not one."""
    m = _SEG_RE.match(name)
    if not m:
        raise ValueError(f"not a WAL segment file name: {name!r}")
    per = segments_per_xlogid(seg_size)
    tli, log, seg = (int(g, 16) for g in m.groups())
    if seg >= per:
        raise ValueError(f"{name}: segment number {seg:08X} too large for {seg_size}-byte segments")
    return tli, log * per + seg


def is_segment_name(name: str) -> bool:
    return bool(_SEG_RE.match(name))


def segment_start(segno: int, seg_size: int) -> Lsn:
    return Lsn(segno * seg_size)
