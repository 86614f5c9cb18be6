"""Helpers shared by the resource manager modules: reading C structs out of a record's main
data and block data, and the small formatting routines pg_waldump's desc functions share
(timestamptz_to_str of its frontend compat code, in parse/pgtime.py; relpathperm of common/relpath.c,
standby_desc_invalidations of standbydesc.c, array_desc of rmgrdesc_utils.c (16+)).

Struct offsets are spelled out where they are read; each module's docstring names the header
the layouts come from.  Short data (a damaged or unusual record) reads as zeros, as the C code
would read whatever follows; describing never raises for want of bytes.  A count read from a
record is never trusted further than the bytes there: arrays and loops stop at the record's
end, and the description then says how many items were missing (`past_end`), where
pg_waldump would print memory beyond the record.  Real WAL never shows that marker.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Sequence

from ..layout import FORK_NAMES
from ..record import Record

_S = {fmt: struct.Struct("<" + fmt) for fmt in ("B", "b", "H", "h", "I", "i", "Q", "q", "d")}
_B, _b, _H, _h, _I, _i, _Q, _q = (_S[f].unpack_from for f in "BbHhIiQq")
_error = struct.error


class Buf:
    """Little-endian reads at fixed offsets of a byte string; reads past the end give zeros.

    Each read tries unpack_from first (a read inside the data is the rule) and only when that
    fails pads what is there with zeros (`_get`).
    """

    __slots__ = ("b",)

    def __init__(self, b: bytes | memoryview) -> None:
        self.b = bytes(b)

    def __len__(self) -> int:
        return len(self.b)

    def _get(self, fmt: str, off: int) -> int:
        s = _S[fmt]
        if off + s.size > len(self.b):
            chunk = self.b[off:off + s.size] if off < len(self.b) else b""
            chunk = chunk + bytes(s.size - len(chunk))
            return s.unpack(chunk)[0]  # type: ignore[no-any-return]
        return s.unpack_from(self.b, off)[0]  # type: ignore[no-any-return]

    def u8(self, off: int) -> int:
        try:
            return _B(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("B", off)

    def i8(self, off: int) -> int:
        try:
            return _b(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("b", off)

    def u16(self, off: int) -> int:
        try:
            return _H(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("H", off)

    def i16(self, off: int) -> int:
        try:
            return _h(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("h", off)

    def u32(self, off: int) -> int:
        try:
            return _I(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("I", off)

    def i32(self, off: int) -> int:
        try:
            return _i(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("i", off)

    def u64(self, off: int) -> int:
        try:
            return _Q(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("Q", off)

    def i64(self, off: int) -> int:
        try:
            return _q(self.b, off)[0]  # type: ignore[no-any-return]
        except _error:
            return self._get("q", off)

    def f64(self, off: int) -> float:
        return float(_S["d"].unpack(self.raw(off, 8))[0])

    def boolean(self, off: int) -> bool:
        return self.u8(off) != 0

    def raw(self, off: int, n: int) -> bytes:
        """n bytes from off, zeros past the end; n is at most what the record has (a length
        read from a record may be anything)."""
        n = min(n, max(len(self.b) - off, 0) + 8)
        chunk = self.b[off:off + n]
        return chunk + bytes(n - len(chunk))

    def fit(self, off: int, n: int, size: int) -> int:
        """How many of n items of `size` bytes from off lie in the data."""
        if n <= 0:
            return 0
        if off < 0 or off + n * size <= len(self.b):
            return n if off >= 0 else 0
        return max(len(self.b) - off, 0) // size

    def past_end(self, off: int, n: int, size: int) -> str:
        """'' when all n items are there, else the marker for those that are not."""
        there = self.fit(off, n, size)
        if there >= n or n <= 0:
            return ""
        return f" <{n - there} of {n} past the end of the record>"

    def cstring(self, off: int, limit: int | None = None) -> str:
        """A NUL-terminated string (bytes decoded as pg_waldump would print them)."""
        end = self.b.find(b"\0", off)
        if end < 0:
            end = len(self.b)
        if limit is not None:
            end = min(end, off + limit)
        return self.b[off:end].decode("utf-8", "surrogateescape")

    def u16_array(self, off: int, n: int) -> list[int]:
        if n <= 0:
            return []
        if 0 <= off and off + 2 * n <= len(self.b):
            return list(struct.unpack_from(f"<{n}H", self.b, off))
        return [self.u16(off + 2 * i) for i in range(self.fit(off, n, 2))]

    def u32_array(self, off: int, n: int) -> list[int]:
        if n <= 0:
            return []
        if 0 <= off and off + 4 * n <= len(self.b):
            return list(struct.unpack_from(f"<{n}I", self.b, off))
        return [self.u32(off + 4 * i) for i in range(self.fit(off, n, 4))]


def unpack_main(rec: Record, st: struct.Struct) -> tuple[Any, ...]:
    """st's fields at the start of the main data; a short main data reads as if padded with
    zeros (as Buf does).  The describe fast paths read their whole struct with this."""
    if rec.main_data_len >= st.size:
        return st.unpack_from(rec.data, rec.main_data_off)
    return st.unpack(rec.main_data.ljust(st.size, b"\0"))


def main(rec: Record) -> Buf:
    return Buf(rec.main_data)


def has_block_data(rec: Record, block_id: int) -> bool:
    """XLogRecHasBlockData()."""
    b = rec.block(block_id)
    return b is not None and b.has_data


def has_block_image(rec: Record, block_id: int) -> bool:
    """XLogRecHasBlockImage()."""
    b = rec.block(block_id)
    return b is not None and b.has_image


def block_image_apply(rec: Record, block_id: int) -> bool:
    """XLogRecBlockImageApply()."""
    b = rec.block(block_id)
    return b is not None and b.apply_image


def block_data(rec: Record, block_id: int) -> Buf:
    """XLogRecGetBlockData() as a Buf (empty when the block has no data)."""
    b = rec.block(block_id)
    if b is None or not b.has_data:
        return Buf(b"")
    return Buf(rec.block_data(b))


def shortalign(n: int) -> int:
    return (n + 1) & ~1


def lsn(v: int) -> str:
    """LSN_FORMAT_ARGS with "%X/%X", as the desc functions of 13-18 print positions."""
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def tf(flag: object) -> str:
    """The 'T'/'F' of `%c` arguments written `x ? 'T' : 'F'`."""
    return "T" if flag else "F"


def cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def cmod(a: int, b: int) -> int:
    """C remainder (sign of the dividend)."""
    return a - b * cdiv(a, b)




GLOBALTABLESPACE_OID = 1664
DEFAULTTABLESPACE_OID = 1663

# TABLESPACE_VERSION_DIRECTORY: "PG_<major>_<CATALOG_VERSION_NO>" of each release.
CATALOG_VERSION = {13: 202007201, 14: 202107181, 15: 202209061, 16: 202307071, 17: 202406281,
                   18: 202506291}


def relpathperm(spc: int, db: int, rel: int, fork: int, major: int) -> str:
    """relpathperm() / GetRelationPath() for a permanent relation."""
    suffix = f"_{FORK_NAMES[fork]}" if 0 < fork < len(FORK_NAMES) else ""
    if spc == GLOBALTABLESPACE_OID:
        return f"global/{rel}{suffix}"
    if spc == DEFAULTTABLESPACE_OID:
        return f"base/{db}/{rel}{suffix}"
    return f"pg_tblspc/{spc}/PG_{major}_{CATALOG_VERSION.get(major, 0)}/{db}/{rel}{suffix}"


def array_desc(items: Iterable[str]) -> str:
    """array_desc() of rmgrdesc_utils.c (16-18): ' [a, b]' (' []' when empty)."""
    return " [" + ", ".join(items) + "]"


def offsets_desc(values: Sequence[int]) -> str:
    return array_desc(str(v) for v in values)


# SharedInvalidationMessage (storage/sinval.h): 16 bytes, int8 id first.
SIZEOF_INVAL_MSG = 16


def invalidations_desc(buf: Buf, off: int, nmsgs: int, db_id: int, ts_id: int,
                       relcache_init_file_inval: bool, major: int) -> str:
    """standby_desc_invalidations(): '; inval msgs: ...' (nothing when there are none)."""
    if nmsgs <= 0:
        return ""
    out = []
    if relcache_init_file_inval:
        out.append(f"; relcache init file inval dbid {db_id} tsid {ts_id}")
    out.append("; inval msgs:")
    for i in range(buf.fit(off, nmsgs, SIZEOF_INVAL_MSG)):
        m = off + i * SIZEOF_INVAL_MSG
        mid = buf.i8(m)
        if mid >= 0:
            out.append(f" catcache {mid}")
        elif mid == -1:
            out.append(f" catalog {buf.u32(m + 8)}")
        elif mid == -2:
            out.append(f" relcache {buf.u32(m + 8)}")
        elif mid == -3:
            out.append(" smgr")
        elif mid == -4:
            out.append(f" relmap db {buf.u32(m + 4)}")
        elif mid == -5:
            out.append(f" snapshot {buf.u32(m + 8)}")
        elif mid == -6 and major >= 18:
            out.append(f" relsync {buf.u32(m + 8)}")
        else:
            out.append(f" unrecognized id {mid}")
    out.append(buf.past_end(off, nmsgs, SIZEOF_INVAL_MSG))
    return "".join(out)


def table_identify(table: dict[int, str], mask: int = 0xF0) -> Callable[[int, int], str | None]:
    """An identify() for rmgrs whose names depend only on the masked info bits."""

    def identify(info: int, major: int) -> str | None:
        return table.get(info & mask)

    return identify
