"""pg_waldump's record types, descriptions and lines made in C for a batch of records
(the optional extension `xlogtools.parse._waldesc`), with the Python describer for the records
the C code leaves alone.

The C code covers every built-in resource manager and the custom ones; a record whose payload
does not add up (a struct shorter than what is read, a count running past the data, a string
that is not plain ASCII) is a "fallback": the C leaves its slot empty and `parse.rmgr.describe`
fills it (with its `<N of M past the end of the record>` texts).  The texts are those of parse/rmgr (the
differential tests in tests/test_native_desc.py keep them equal).

    >>> from xlogtools.parse.native_desc import AVAILABLE, describe_records
    >>> describe_records(records, bkp_details=False)   # doctest: +SKIP
    'rmgr: Heap        len (rec/tot): ...\\n'

Records go to C as an arena: the records' bytes one after another, `rec_offsets` (uint64 each)
saying where each starts.  Without the extension, or with XLOGTOOLS_NO_C=1, AVAILABLE is False
and `describe_records` is export.waldump.format_records.
"""
from __future__ import annotations

import os
import sys
from array import array
from itertools import accumulate
from operator import attrgetter
from typing import Any, Protocol, Sequence

from .record import Record



class _Waldesc(Protocol):
    """What this module calls of the extension (its stub: _waldesc.pyi)."""

    def describe_batch(self, arena: Any, rec_offsets: Any, n: int, major: int, blcksz: int, /
                       ) -> tuple[bytes, bytes, bytes]: ...
    def identify_batch(self, arena: Any, rec_offsets: Any, n: int, major: int, /
                       ) -> tuple[bytes, bytes, bytes]: ...
    def waldump_lines(self, arena: Any, rec_offsets: Any, lsns: Any, n: int, major: int,
                      blcksz: int, bkp_details: bool, desc_offsets: Any, desc_data: Any, /
                      ) -> bytes: ...
    def splice(self, desc_offsets: Any, desc_data: Any, n: int, indexes: Sequence[int],
               texts: Sequence[bytes], /) -> tuple[bytes, bytes]: ...


_c: _Waldesc | None
try:
    from . import _waldesc as _c
except ImportError:  # pragma: no cover - exercised by XLOGTOOLS_NO_C=1 test runs
    _c = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _c = None

if array("Q").itemsize != 8 or sys.byteorder != "little":  # pragma: no cover
    _c = None  # the arenas' offsets and LSNs are made as little-endian uint64 arrays

AVAILABLE = _c is not None

__all__ = ["AVAILABLE", "arena", "describe_batch", "describe_records", "describe_texts",
           "identify_batch", "splice", "waldump_lines"]


# map() with attrgetter: about half the time of a generator over the records
_data, _lsn = attrgetter("data"), attrgetter("lsn")
_kind = attrgetter("pg_major", "block_size")


def arena(records: Sequence[Record]) -> tuple[bytes, bytes]:
    """(arena, rec_offsets) of the records: their bytes joined, and where each starts."""
    datas = list(map(_data, records))
    offsets = array("Q", accumulate(map(len, datas), initial=0))
    offsets.pop()
    return b"".join(datas), offsets.tobytes()


def describe_batch(arena: Any, rec_offsets: Any, n: int, major: int, blcksz: int
                   ) -> tuple[bytes, bytes, bytes]:
    """(desc_offsets: n + 1 int32, desc_data: UTF-8, fallback: n uint8; 1 = left to Python)."""
    assert _c is not None
    return _c.describe_batch(arena, rec_offsets, n, major, blcksz)


def identify_batch(arena: Any, rec_offsets: Any, n: int, major: int
                   ) -> tuple[bytes, bytes, bytes]:
    """The record type texts (record_type(): 'INSERT+INIT', 'UNKNOWN (30)'), same layout."""
    assert _c is not None
    return _c.identify_batch(arena, rec_offsets, n, major)


def waldump_lines(arena: Any, rec_offsets: Any, lsns: Any, n: int, major: int, blcksz: int,
                  bkp_details: bool, desc_offsets: Any, desc_data: Any) -> bytes:
    """pg_waldump's lines of the records (each ended by a newline), with the given final
    descriptions; `lsns`: n uint64 record start LSNs."""
    assert _c is not None
    return _c.waldump_lines(arena, rec_offsets, lsns, n, major, blcksz,
                            bkp_details, desc_offsets, desc_data)


def splice(desc_offsets: Any, desc_data: Any, n: int, indexes: Sequence[int],
           texts: Sequence[bytes]) -> tuple[bytes, bytes]:
    """describe_batch's result with the texts of `indexes` put in (the fallbacks)."""
    assert _c is not None
    return _c.splice(desc_offsets, desc_data, n, list(indexes), list(texts))


def describe_texts(records: Sequence[Record], arena_: bytes, rec_offsets: bytes,
                   major: int, blcksz: int) -> tuple[bytes, bytes, int]:
    """describe_batch with the fallbacks filled by the Python describer:
    (desc_offsets, desc_data, number of fallbacks)."""
    from .rmgr import describe

    assert _c is not None
    n = len(records)
    offs, data, fallback = _c.describe_batch(arena_, rec_offsets, n, major, blcksz)
    if fallback.count(1) == 0:
        return offs, data, 0
    idx = [i for i, f in enumerate(fallback) if f]
    texts = [describe(records[i]).encode("utf-8", "surrogateescape") for i in idx]
    offs, data = _c.splice(offs, data, n, idx, texts)
    return offs, data, len(idx)


def describe_records(records: Sequence[Record], bkp_details: bool = False) -> str:
    """export.waldump.format_records(records, bkp_details), made in C but for the fallbacks."""
    if not records:
        return ""
    first = records[0]
    major, blcksz = first.pg_major, first.block_size
    if _c is None or len(set(map(_kind, records))) != 1:
        from ..export.waldump import format_records

        return format_records(records, bkp_details)
    arena_, rec_offsets = arena(records)
    offs, data, _ = describe_texts(records, arena_, rec_offsets, major, blcksz)
    lsns = array("Q", map(_lsn, records)).tobytes()
    out = _c.waldump_lines(arena_, rec_offsets, lsns, len(records), major, blcksz, bkp_details,
                           offs, data)
    return out.decode("utf-8", "surrogateescape")
