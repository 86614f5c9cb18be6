"""Type output functions: a datum's bytes -> the text psql prints (TimeZone UTC by default,
DateStyle ISO, IntervalStyle postgres, bytea_output hex, extra_float_digits 1).

Each function mirrors the PostgreSQL output function named in its docstring
(src/backend/utils/adt/*.c). Inputs are the detoasted, decompressed datum: for varlena types the
bytes *after* the varlena header, for fixed-length types the attlen bytes.
A type without an output function here is rendered `\\x<hex>` and flagged by the caller.

Bytes that no PostgreSQL value has (a damaged tuple, a garbage length) raise BadDatum, a
ValueError: the caller shows such a value raw and says why; an output function never prints
a guess for them, and never loops or allocates by a count it has not checked against the bytes.
"""
from __future__ import annotations

import struct
import uuid as _uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..parse.pgtime import PG_EPOCH
from .typebase import BadDatum as BadDatum, i16 as _i16, i32 as _i32, i64 as _i64, need as need, \
    u32 as _u32
from .typenum import (cash_out as cash_out, float4out as float4out, float8out as float8out,
                      numeric_out as numeric_out)

# Built-in type OIDs (catalog/pg_type.dat; stable across 13-18).
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT2VECTOR, INT4, TEXT, OID, OIDVECTOR = (
    16, 17, 18, 19, 20, 21, 22, 23, 25, 26, 30)
JSON, XML, CIDR, FLOAT4, FLOAT8, MACADDR8, MONEY, MACADDR, INET = (
    114, 142, 650, 700, 701, 774, 790, 829, 869)
BPCHAR, VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = (
    1042, 1043, 1082, 1083, 1114, 1184, 1186, 1266)
BIT, VARBIT, NUMERIC, UUID, JSONB, XID, CID = 1560, 1562, 1700, 2950, 3802, 28, 29

POSTGRES_EPOCH_JDATE = 2451545
USECS_PER_DAY = 86_400_000_000
INT32_MAX, INT32_MIN = 2**31 - 1, -2**31
INT64_MAX, INT64_MIN = 2**63 - 1, -2**63





_EPOCH_UTC = PG_EPOCH
# seconds from 2000-01-01 of 0001-01-02 and 9999-12-30 UTC: inside datetime's range in any zone
_FIRST_DATETIME = int((datetime(1, 1, 2, tzinfo=timezone.utc) - _EPOCH_UTC).total_seconds())
_LAST_DATETIME = int((datetime(9999, 12, 30, tzinfo=timezone.utc) - _EPOCH_UTC).total_seconds())


class OutputContext:
    """Settings that change how values print: the time zone, the server's encoding and major."""

    def __init__(self, tz: str = "UTC", encoding: str = "UTF8", major: int = 15) -> None:
        self.tz_name = tz
        self.major = major
        self.codec = _codec(encoding)
        self._zone = None
        if tz.upper() not in ("UTC", "GMT", "Z", "ETC/UTC"):
            from zoneinfo import ZoneInfo

            self._zone = ZoneInfo(tz)

    def text(self, b: bytes) -> str:
        return b.decode(self.codec)

    def utc_offset(self, usecs: int) -> int:
        """Seconds east of UTC at this instant in the chosen zone. Python's datetime covers the
        years 1-9999; PostgreSQL's range is wider. After 9999 the zone's rules repeat every 400
        Gregorian years (as PostgreSQL's localtime extrapolates them), so the instant is moved
        back by whole cycles; before year 1 the zone's earliest offset applies (its first
        local time type, usually LMT), as PostgreSQL uses it before the first transition."""
        if self._zone is None:
            return 0
        secs = usecs // 1_000_000
        cycle = 146097 * 86400  # 400 Gregorian years
        if secs > _LAST_DATETIME:
            secs -= ((secs - _LAST_DATETIME) // cycle + 1) * cycle
        secs = max(secs, _FIRST_DATETIME)
        dt = _EPOCH_UTC + timedelta(seconds=secs)
        off = dt.astimezone(self._zone).utcoffset()
        return int(off.total_seconds()) if off is not None else 0


_CODECS = {"UTF8": "utf-8", "SQL_ASCII": "latin-1", "LATIN1": "latin-1", "LATIN9": "iso8859-15",
           "WIN1252": "cp1252", "EUC_JP": "euc_jp", "SJIS": "shift_jis", "WIN1251": "cp1251",
           "KOI8R": "koi8_r", "LATIN2": "iso8859-2", "EUC_KR": "euc_kr", "GBK": "gbk",
           "UHC": "cp949", "BIG5": "big5", "EUC_CN": "gb2312", "WIN1250": "cp1250"}


def _codec(encoding: str) -> str:
    return _CODECS.get(encoding.upper(), "utf-8")


# --- date and time (utils/adt/datetime.c, date.c, timestamp.c) -----------------------------
def j2date(jd: int) -> tuple[int, int, int]:
    """j2date() of utils/adt/datetime.c: Julian day -> (year, month, day) of the proleptic
    Gregorian calendar, year <= 0 meaning BC (0 = 1 BC). Its arithmetic is unsigned 32-bit;
    for the Julian days PostgreSQL accepts (0 .. 2**31) that is plain integer division."""
    julian = jd + 32044
    quad = julian // 146097
    extra = (julian - quad * 146097) * 4 + 3
    julian += 60 + quad * 3 + extra // 146097
    quad = julian // 1461
    julian -= quad * 1461
    y = julian * 4 // 1461
    julian = ((julian + 305) % 365 if y != 0 else (julian + 306) % 366) + 123
    y += quad * 4
    quad = julian * 2141 // 65536
    return y - 4800, (quad + 10) % 12 + 1, julian - 7834 * quad // 256


# The ranges of datatype/timestamp.h: Julian day 0 (4714-11-24 BC) up to, not including,
# 5874898-01-01 for dates and 294277-01-01 for timestamps.
DATE_MIN, DATE_END = -POSTGRES_EPOCH_JDATE, 2147483494 - POSTGRES_EPOCH_JDATE
MIN_TIMESTAMP, END_TIMESTAMP = -211813488000000000, 9223371331200000000


def _year(y: int) -> tuple[str, bool]:
    if y > 0:
        return f"{y:04d}", False
    return f"{-(y - 1):04d}", True


def _seconds(sec: int, fsec: int) -> str:
    """AppendSeconds(..., fillzeros=true): SS[.ffffff without trailing zeros]."""
    s = f"{abs(sec):02d}"
    if fsec:
        s += "." + f"{abs(fsec):06d}".rstrip("0")
    return s


def date_out(b: bytes) -> str:
    need(b, 4, "date")
    v = _i32(b, 0)[0]
    if v == INT32_MIN:
        return "-infinity"
    if v == INT32_MAX:
        return "infinity"
    if not DATE_MIN <= v < DATE_END:
        raise BadDatum(f"date {v} outside PostgreSQL's range")
    y, m, d = j2date(v + POSTGRES_EPOCH_JDATE)
    ys, bc = _year(y)
    return f"{ys}-{m:02d}-{d:02d}" + (" BC" if bc else "")


def _time_str(t: int) -> str:
    hour, t = divmod(t, 3_600_000_000)
    minute, t = divmod(t, 60_000_000)
    sec, fsec = divmod(t, 1_000_000)
    return f"{hour:02d}:{minute:02d}:" + _seconds(sec, fsec)


def _time_of_day(b: bytes, what: str) -> int:
    need(b, 8, what)
    t: int = _i64(b, 0)[0]
    if not 0 <= t <= USECS_PER_DAY:  # 24:00:00 is allowed
        raise BadDatum(f"{what} {t} outside 00:00:00..24:00:00")
    return t


def time_out(b: bytes) -> str:
    return _time_str(_time_of_day(b, "time"))


def encode_timezone(tz: int) -> str:
    """EncodeTimezone(): tz is seconds *west* of UTC, as PostgreSQL stores it."""
    sec = abs(tz)
    minute, sec = divmod(sec, 60)
    hour, minute = divmod(minute, 60)
    s = "+" if tz <= 0 else "-"
    if sec:
        return f"{s}{hour:02d}:{minute:02d}:{sec:02d}"
    if minute:
        return f"{s}{hour:02d}:{minute:02d}"
    return f"{s}{hour:02d}"


def timetz_out(b: bytes) -> str:
    need(b, 12, "timetz")
    t = _time_of_day(b, "timetz")
    zone = _i32(b, 8)[0]
    return _time_str(t) + encode_timezone(zone)


def _timestamp(v: int, tz_west: int | None) -> str:
    if v == INT64_MIN:
        return "-infinity"
    if v == INT64_MAX:
        return "infinity"
    if not MIN_TIMESTAMP <= v < END_TIMESTAMP:
        raise BadDatum(f"timestamp {v} out of range")  # timestamp_out's error
    local = v - (tz_west or 0) * 1_000_000
    date, t = divmod(local, USECS_PER_DAY)
    y, m, d = j2date(date + POSTGRES_EPOCH_JDATE)
    ys, bc = _year(y)
    s = f"{ys}-{m:02d}-{d:02d} {_time_str(t)}"
    if tz_west is not None:
        s += encode_timezone(tz_west)
    return s + (" BC" if bc else "")


def timestamp_out(b: bytes) -> str:
    need(b, 8, "timestamp")
    return _timestamp(_i64(b, 0)[0], None)


def timestamptz_usecs_out(v: int, ctx: OutputContext | None = None) -> str:
    off = ctx.utc_offset(v) if ctx is not None else 0
    return _timestamp(v, -off)


def timestamptz_out(b: bytes, ctx: OutputContext) -> str:
    need(b, 8, "timestamptz")
    return timestamptz_usecs_out(_i64(b, 0)[0], ctx)


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def interval_out(b: bytes) -> str:
    """interval_out with IntervalStyle postgres (EncodeInterval, AddPostgresIntPart)."""
    need(b, 16, "interval")
    t = _i64(b, 0)[0]
    day = _i32(b, 8)[0]
    month = _i32(b, 12)[0]
    if month == INT32_MAX and day == INT32_MAX and t == INT64_MAX:
        return "infinity"
    if month == INT32_MIN and day == INT32_MIN and t == INT64_MIN:
        return "-infinity"
    year = _c_div(month, 12)
    mon = month - year * 12
    hour = _c_div(t, 3_600_000_000)
    t -= hour * 3_600_000_000
    minute = _c_div(t, 60_000_000)
    t -= minute * 60_000_000
    sec = _c_div(t, 1_000_000)
    fsec = t - sec * 1_000_000
    out = []
    is_zero = True
    is_before = False
    for value, unit in ((year, "year"), (mon, "mon"), (day, "day")):
        if value == 0:
            continue
        out.append(("" if is_zero else " ") + ("+" if is_before and value > 0 else "")
                   + f"{value} {unit}" + ("" if value == 1 else "s"))
        is_before = value < 0
        is_zero = False
    if is_zero or hour or minute or sec or fsec:
        minus = hour < 0 or minute < 0 or sec < 0 or fsec < 0
        out.append(("" if is_zero else " ") + ("-" if minus else ("+" if is_before else ""))
                   + f"{abs(hour):02d}:{abs(minute):02d}:" + _seconds(sec, fsec))
    return "".join(out)


# --- network and misc ------------------------------------------------------------------------
def _ipv6(addr: bytes) -> str:
    """inet_net_ntop_ipv6 of PostgreSQL's inet_net_ntop.c (address part)."""
    words = [(addr[2 * i] << 8) | addr[2 * i + 1] for i in range(8)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = []
    i = 0
    while i < 8:
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            i += 1
            continue
        if i != 0:
            out.append(":")
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 7 and words[7] != 1)
                                          or (best_len == 5 and words[5] == 0xFFFF)):
            out.append(".".join(str(x) for x in addr[12:16]))
            break
        out.append(f"{words[i]:x}")
        i += 1
    if best_base != -1 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def network_out(b: bytes, is_cidr: bool) -> str:
    need(b, 2, "inet")
    family, bits = b[0], b[1]
    addr = b[2:]
    size = {2: 4, 3: 16}.get(family)
    if size is None or bits > 8 * size or len(addr) < size:
        raise BadDatum(f"inet family {family} with {bits} bits and {len(addr)} address bytes")
    if family == 2:  # PGSQL_AF_INET
        s = ".".join(str(x) for x in addr[:4])
        if bits != 32:
            s += f"/{bits}"
    else:
        s = _ipv6(addr[:16])
        if bits != 128:
            s += f"/{bits}"
    if is_cidr and "/" not in s:
        s += f"/{bits}"
    return s


def charout(b: bytes, major: int) -> str:
    need(b, 1, '"char"')
    c = b[0]
    if c >= 0x80:
        if major >= 15:
            return "\\" + f"{c:03o}"
        return bytes([c]).decode("latin-1")
    return "" if c == 0 else chr(c)


def bit_out(b: bytes) -> str:
    need(b, 4, "bit")
    nbits = _i32(b, 0)[0]
    data = b[4:]
    if not 0 <= nbits <= 8 * len(data):
        raise BadDatum(f"bit string of {nbits} bits in {len(data)} bytes")
    bits = "".join(f"{x:08b}" for x in data)
    return bits[:nbits]


def bytea_out(b: bytes) -> str:
    return "\\x" + b.hex()


def escape_json(s: str) -> str:
    """escape_json() of utils/adt/json.c."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# jsonb (utils/jsonb.h): container header and JEntry bits.
JB_CMASK = 0x0FFFFFFF
JB_FSCALAR = 0x10000000
JB_FOBJECT = 0x20000000
JB_FARRAY = 0x40000000
JENTRY_OFFLENMASK = 0x0FFFFFFF
JENTRY_TYPEMASK = 0x70000000
JENTRY_HAS_OFF = 0x80000000


JENTRY_ISSTRING, JENTRY_ISNUMERIC, JENTRY_ISBOOL_FALSE, JENTRY_ISBOOL_TRUE = (
    0x00000000, 0x10000000, 0x20000000, 0x30000000)
JENTRY_ISNULL, JENTRY_ISCONTAINER = 0x40000000, 0x50000000


def _varsize_any(b: bytes, pos: int, end: int) -> tuple[int, int]:
    """(header length, total size) of a varlena at pos that must end by `end` (VARSIZE_ANY,
    inline only)."""
    if pos >= end:
        raise BadDatum("jsonb numeric starts past its container")
    first = b[pos]
    if first & 0x01:
        hl, size = 1, first >> 1
    else:
        if pos + 4 > end:
            raise BadDatum("jsonb numeric header runs past its container")
        hl, size = 4, _u32(b, pos)[0] >> 2
    if size < hl or pos + size > end:
        raise BadDatum(f"jsonb numeric of {size} bytes runs past its container")
    return hl, size


def _jsonb_container(b: bytes, pos: int, end: int, ctx: OutputContext, out: list[str],
                     depth: int = 0) -> None:
    """One container (JsonbContainer) in b[pos:end]: its header, JEntries, then the data;
    every offset and length is checked against `end` before it is used."""
    if depth > 1000:
        raise BadDatum("jsonb nested deeper than 1000 containers")
    if pos + 4 > end:
        raise BadDatum("jsonb container header runs past the datum")
    header = _u32(b, pos)[0]
    count = header & JB_CMASK
    is_object = bool(header & JB_FOBJECT)
    if bool(is_object) == bool(header & JB_FARRAY) or (
            header & JB_FSCALAR and (is_object or count != 1)):
        raise BadDatum(f"jsonb container header {header:#x} is neither object nor array")
    nentries = count * 2 if is_object else count
    base = pos + 4 + 4 * nentries
    if base > end:
        raise BadDatum(f"jsonb container of {count} entries runs past the datum")
    entries = struct.unpack_from(f"<{nentries}I", b, pos + 4) if nentries else ()
    # each entry's end offset from the data start (JBE_ENDPOS, found as getJsonbOffset does)
    ends: list[int] = []
    off = 0
    for e in entries:
        if e & JENTRY_HAS_OFF:
            off = e & JENTRY_OFFLENMASK
        else:
            off += e & JENTRY_OFFLENMASK
        ends.append(off)
    if ends and base + max(ends) > end:
        raise BadDatum("jsonb entry runs past its container")

    def value(i: int) -> None:
        e = entries[i]
        kind = e & JENTRY_TYPEMASK
        start = ends[i - 1] if i else 0
        length = ends[i] - start
        if length < 0:
            raise BadDatum("jsonb entry with a negative length")
        if kind == JENTRY_ISSTRING:
            out.append(escape_json(ctx.text(b[base + start:base + start + length])))
        elif kind == JENTRY_ISNUMERIC:
            p = base + ((start + 3) & ~3)
            hl, size = _varsize_any(b, p, base + ends[i])
            out.append(numeric_out(b[p + hl:p + size]))
        elif kind == JENTRY_ISBOOL_FALSE:
            out.append("false")
        elif kind == JENTRY_ISBOOL_TRUE:
            out.append("true")
        elif kind == JENTRY_ISNULL:
            out.append("null")
        elif kind == JENTRY_ISCONTAINER:
            _jsonb_container(b, base + ((start + 3) & ~3), base + ends[i], ctx, out, depth + 1)
        else:
            raise BadDatum(f"jsonb entry of unknown kind {kind >> 28}")

    if header & JB_FSCALAR:
        value(0)
        return
    if is_object:
        out.append("{")
        for k in range(count):
            if k:
                out.append(", ")
            value(k)
            out.append(": ")
            value(k + count)
        out.append("}")
    else:
        out.append("[")
        for k in range(count):
            if k:
                out.append(", ")
            value(k)
        out.append("]")


def jsonb_out(b: bytes, ctx: OutputContext) -> str:
    """jsonb_out / JsonbToCString without indentation."""
    out: list[str] = []
    _jsonb_container(b, 0, len(b), ctx, out)
    return "".join(out)


def uuid_out(b: bytes) -> str:
    need(b, 16, "uuid")
    return str(_uuid.UUID(bytes=bytes(b[:16])))


def macaddr_out(b: bytes) -> str:
    need(b, 6, "macaddr")
    return ":".join(f"{x:02x}" for x in b[:6])


def macaddr8_out(b: bytes) -> str:
    need(b, 8, "macaddr8")
    return ":".join(f"{x:02x}" for x in b[:8])


# --- dispatch ----------------------------------------------------------------------------------
Scalar = Callable[[bytes, OutputContext], str]

SCALAR_OUT: dict[int, Scalar] = {
    BOOL: lambda b, c: "t" if b[0] else "f",
    INT2: lambda b, c: str(_i16(b, 0)[0]),
    INT4: lambda b, c: str(_i32(b, 0)[0]),
    INT8: lambda b, c: str(_i64(b, 0)[0]),
    OID: lambda b, c: str(_u32(b, 0)[0]),
    XID: lambda b, c: str(_u32(b, 0)[0]),
    CID: lambda b, c: str(_u32(b, 0)[0]),
    FLOAT4: lambda b, c: float4out(b),
    FLOAT8: lambda b, c: float8out(b),
    NUMERIC: lambda b, c: numeric_out(b),
    MONEY: lambda b, c: cash_out(b),
    TEXT: lambda b, c: c.text(b),
    VARCHAR: lambda b, c: c.text(b),
    BPCHAR: lambda b, c: c.text(b),
    JSON: lambda b, c: c.text(b),
    XML: lambda b, c: c.text(b),
    NAME: lambda b, c: c.text(bytes(b).split(b"\0", 1)[0]),
    CHAR: lambda b, c: charout(b, c.major),
    BYTEA: lambda b, c: bytea_out(b),
    DATE: lambda b, c: date_out(b),
    TIME: lambda b, c: time_out(b),
    TIMETZ: lambda b, c: timetz_out(b),
    TIMESTAMP: lambda b, c: timestamp_out(b),
    TIMESTAMPTZ: timestamptz_out,
    INTERVAL: lambda b, c: interval_out(b),
    UUID: lambda b, c: uuid_out(b),
    JSONB: jsonb_out,
    INET: lambda b, c: network_out(b, False),
    CIDR: lambda b, c: network_out(b, True),
    MACADDR: lambda b, c: macaddr_out(b),
    MACADDR8: lambda b, c: macaddr8_out(b),
    BIT: lambda b, c: bit_out(b),
    VARBIT: lambda b, c: bit_out(b),
}


# Storage of the built-in types above (typlen, typalign of pg_type.dat), for array elements
# whose type has no entry in the catalog snapshot; every other one is a varlena ('i').
LAYOUT: dict[int, tuple[int, str]] = {
    BOOL: (1, "c"), CHAR: (1, "c"), NAME: (64, "c"), INT8: (8, "d"), INT2: (2, "s"),
    INT4: (4, "i"), OID: (4, "i"), XID: (4, "i"), CID: (4, "i"), FLOAT4: (4, "i"),
    FLOAT8: (8, "d"), MACADDR8: (8, "i"), MONEY: (8, "d"), MACADDR: (6, "i"),
    DATE: (4, "i"), TIME: (8, "d"), TIMESTAMP: (8, "d"), TIMESTAMPTZ: (8, "d"),
    INTERVAL: (16, "d"), TIMETZ: (12, "d"), UUID: (16, "c")}
VARLENA = (-1, "i")

# The built-in array types of the scalars above (pg_type.dat: typarray), by array type OID,
# and int2vector/oidvector, whose elements are int2/oid.
ELEMENT_OF: dict[int, int] = {
    1000: BOOL, 1001: BYTEA, 1002: CHAR, 1003: NAME, 1016: INT8, 1005: INT2, 1006: INT2VECTOR,
    1007: INT4, 1009: TEXT, 1028: OID, 1013: OIDVECTOR, 199: JSON, 143: XML, 651: CIDR,
    1021: FLOAT4, 1022: FLOAT8, 775: MACADDR8, 791: MONEY, 1040: MACADDR, 1041: INET,
    1014: BPCHAR, 1015: VARCHAR, 1182: DATE, 1183: TIME, 1115: TIMESTAMP, 1185: TIMESTAMPTZ,
    1187: INTERVAL, 1270: TIMETZ, 1561: BIT, 1563: VARBIT, 1231: NUMERIC, 2951: UUID,
    3807: JSONB, 1011: XID, 1012: CID, INT2VECTOR: INT2, OIDVECTOR: OID}


def array_quote(s: str | None) -> str:
    """array_out's element quoting: NULL, "" and elements with special characters quoted."""
    if s is None:
        return "NULL"
    if s == "" or s.upper() == "NULL" or any(ch in s for ch in '"\\{}, \t\n\r\v\f'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s
