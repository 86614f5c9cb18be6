"""The error of the type output functions (replay/types.py, typenum.py): bytes that no value
of the type has."""
from __future__ import annotations

from ..errors import XlogError


class BadDatum(XlogError, ValueError):
    """Bytes that are not a value of the type: a length, count or range that does not fit."""


def need(b: bytes, n: int, what: str) -> None:
    if len(b) < n:
        raise BadDatum(f"{what} needs {n} bytes, the datum has {len(b)}")
