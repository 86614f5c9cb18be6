"""What the type output functions (replay/types.py, typenum.py) share: the error for bytes
that no value of the type has, the length check that raises it, and the little-endian readers
of fixed-width fields."""
from __future__ import annotations

import struct

from ..errors import XlogError

i16 = struct.Struct("<h").unpack_from
u16 = struct.Struct("<H").unpack_from
i32 = struct.Struct("<i").unpack_from
u32 = struct.Struct("<I").unpack_from
i64 = struct.Struct("<q").unpack_from
u64 = struct.Struct("<Q").unpack_from
f32 = struct.Struct("<f").unpack_from
f64 = struct.Struct("<d").unpack_from


class BadDatum(XlogError, ValueError):
    """Bytes that are not a value of the type: a length, count or range that does not fit."""


def need(b: bytes, n: int, what: str) -> None:
    if len(b) < n:
        raise BadDatum(f"{what} needs {n} bytes, the datum has {len(b)}")
