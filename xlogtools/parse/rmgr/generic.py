"""Generic (RM_GENERIC_ID): generic WAL records (access/generic_xlog.h), PostgreSQL 13-18.
Their main data, when there is any, is a list of (offset, length, bytes) fragments."""
from __future__ import annotations

from ..record import Record
from ._util import main


def identify(info: int, major: int) -> str | None:
    return "Generic"


def describe(rec: Record) -> str:
    d = main(rec)
    end = len(d)
    pos = 0
    out = []
    while pos < end:
        offset, length = d.u16(pos), d.u16(pos + 2)
        pos += 4 + length
        out.append(f"offset {offset}, length {length}" + ("; " if pos < end else ""))
    return "".join(out)
