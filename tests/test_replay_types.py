"""Type output functions on hand-made datums (no server): the text psql prints."""
from __future__ import annotations

import struct

import pytest

from xlogtools.replay import types as T


@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (1e15, "1e+15"), (1e14, "100000000000000"), (1e-5, "1e-05"),
    (0.0001, "0.0001"), (-2.5e-5, "-2.5e-05"), (1 / 3, "0.3333333333333333"),
    (123456789012345678.0, "1.2345678901234568e+17"), (-0.0, "-0"), (float("nan"), "NaN"),
    (float("-inf"), "-Infinity"), (1e100, "1e+100"), (5e-324, "5e-324")])
def test_float8out_shortest(value: float, text: str) -> None:
    assert T.float8out(struct.pack("<d", value)) == text


@pytest.mark.parametrize("value, text", [
    (1.5, "1.5"), (3.14159, "3.14159"), (1e6, "1e+06"), (123456.7, "123456.7"),
    (0.1, "0.1"), (1e-7, "1e-07"), (100000.0, "100000")])
def test_float4out_shortest(value: float, text: str) -> None:
    assert T.float4out(struct.pack("<f", value)) == text


def _numeric(weight: int, dscale: int, digits: list[int], neg: bool = False) -> bytes:
    return struct.pack(f"<Hh{len(digits)}h", (0x4000 if neg else 0) | dscale, weight, *digits)


def test_numeric_out_long_and_special_forms() -> None:
    assert T.numeric_out(_numeric(0, 4, [123, 4500])) == "123.4500"
    assert T.numeric_out(_numeric(-1, 5, [1, 2000], neg=True)) == "-0.00012"
    assert T.numeric_out(_numeric(5, 0, [1])) == "100000000000000000000"
    assert T.numeric_out(_numeric(0, 0, [])) == "0"
    assert T.numeric_out(struct.pack("<H", 0xC000)) == "NaN"
    assert T.numeric_out(struct.pack("<H", 0xD000)) == "Infinity"


def test_dates_times_intervals() -> None:
    assert T.date_out(struct.pack("<i", 0)) == "2000-01-01"
    assert T.date_out(struct.pack("<i", 1721060 - 2451545)) == "0001-01-01 BC"
    assert T.timestamp_out(struct.pack("<q", 1)) == "2000-01-01 00:00:00.000001"
    assert T.timetz_out(struct.pack("<qi", 3600 * 10**6, -19800)) == "01:00:00+05:30"
    iv = lambda us, d, m: T.interval_out(struct.pack("<qii", us, d, m))  # noqa: E731
    assert iv(0, 0, 0) == "00:00:00"
    assert iv(2 * 3600 * 10**6, -1, 0) == "-1 days +02:00:00"
    assert iv(14706789000, 3, 14) == "1 year 2 mons 3 days 04:05:06.789"
    assert iv(-10**6, 0, -3) == "-3 mons -00:00:01"


def test_network_and_arrays_quoting() -> None:
    v6 = bytes(10) + b"\xff\xff" + bytes([1, 2, 3, 4])
    assert T.network_out(bytes([3, 128]) + v6, False) == "::ffff:1.2.3.4"
    assert T.network_out(bytes([2, 8, 10, 0, 0, 0]), True) == "10.0.0.0/8"
    assert T.network_out(bytes([3, 128]) + bytes(15) + b"\x01", False) == "::1"
    assert T.array_quote("") == '""' and T.array_quote("null") == '"null"'
    assert T.array_quote('a"b') == '"a\\"b"' and T.array_quote("a b") == '"a b"'
    assert T.array_quote(None) == "NULL" and T.array_quote("x") == "x"
