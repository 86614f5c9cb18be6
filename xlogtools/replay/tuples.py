"""Heap tuple deforming (heap_deform_tuple of access/common/heaptuple.c) and varlena handling
(varatt.h: 1-byte and 4-byte headers, inline compression, TOAST pointers), PostgreSQL 13-18.

A tuple here is the item's bytes as on the page: the 23-byte HeapTupleHeaderData, the null
bitmap, padding to t_hoff, then the attributes, aligned relative to t_hoff (which is itself
MAXALIGNed, so alignment from the data start equals PostgreSQL's).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import XlogError
from ..parse.pglz import pglz_decompress
from . import types as T

if TYPE_CHECKING:
    from .catalog import Catalog, Column
    from .toast import ToastStore

SIZEOF_HEAP_TUPLE_HEADER = 23  # offsetof(HeapTupleHeaderData, t_bits)
HEAP_HASNULL = 0x0001
HEAP_HASVARWIDTH = 0x0002
HEAP_HASEXTERNAL = 0x0004
HEAP_NATTS_MASK = 0x07FF

VARTAG_INDIRECT = 1
VARTAG_EXPANDED_RO = 2
VARTAG_EXPANDED_RW = 3
VARTAG_ONDISK = 18

_HDR = struct.Struct("<IIIHHHHHB").unpack_from  # xmin xmax cid ctid(3xu16) im2 im hoff
_u32 = struct.Struct("<I").unpack_from
_EXTERNAL = struct.Struct("<iIII").unpack_from  # va_rawsize va_extinfo va_valueid va_toastrelid

_ALIGN = {"c": 1, "s": 2, "i": 4, "d": 8}



class _Deformer(Protocol):
    """The extension's functions (its stub: _deform.pyi)."""

    def timestamptz_utc(self, usecs: int, /) -> str | None: ...
    def deform_render(self, tup: Any, plan: CPlan, missing: object, /
                      ) -> tuple[list[Datum], list[str | None]] | None: ...


NATIVE: _Deformer | None
try:  # the optional C deformer (_deform.c): same datums, and the text of common types
    from . import _deform as NATIVE
except ImportError:  # pragma: no cover - exercised by XLOGTOOLS_NO_C=1 test runs
    NATIVE = None
if os.environ.get("XLOGTOOLS_NO_C"):
    NATIVE = None


class TupleError(XlogError, ValueError):
    """A tuple whose bytes do not add up to the relation's columns."""


@dataclass(frozen=True, slots=True)
class ToastPointer:
    """varatt_external: where an out-of-line value lives."""

    rawsize: int  # original size including the varlena header
    extsize: int  # stored size (compressed or not), without header
    method: int  # 0 pglz, 1 lz4 (14+ from va_extinfo), -1 when not compressed
    valueid: int
    toastrelid: int

    @property
    def compressed(self) -> bool:
        return self.extsize < self.rawsize - 4


@dataclass(frozen=True, slots=True)
class Compressed:
    """An inline compressed varlena (varattrib_4b.va_compressed)."""

    rawsize: int
    method: int  # 0 pglz, 1 lz4
    data: bytes


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # attribute beyond the tuple's natts (added later by ALTER TABLE)


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()  # bytes the WAL read does not have (see deform's `unknown`)

Datum = Any  # None | bytes | Compressed | ToastPointer | MISSING


def tuple_header(tup: bytes) -> tuple[int, int, int, int]:
    """(t_infomask2, t_infomask, t_hoff, natts)."""
    if len(tup) < SIZEOF_HEAP_TUPLE_HEADER:
        raise TupleError(f"tuple of {len(tup)} bytes is shorter than its header")
    h = _HDR(tup, 0)
    return h[6], h[7], h[8], h[6] & HEAP_NATTS_MASK


def tuple_xmin_xmax(tup: bytes) -> tuple[int, int]:
    h = _HDR(tup, 0)
    return h[0], h[1]


def read_varlena(b: bytes, pos: int, major: int) -> tuple[Datum, int]:
    """The varlena at pos: (value, its total length on disk)."""
    if pos >= len(b):
        raise TupleError(f"varlena at offset {pos} starts past the data's end at {len(b)}")
    first = b[pos]
    if first == 0x01:  # VARATT_IS_1B_E: external
        if pos + 18 > len(b):
            raise TupleError(f"TOAST pointer at offset {pos} runs past the data's end")
        tag = b[pos + 1]
        if tag != VARTAG_ONDISK:
            raise TupleError(f"unexpected TOAST pointer tag {tag} in a tuple on disk")
        rawsize, extinfo, valueid, relid = _EXTERNAL(b, pos + 2)
        if major >= 14:
            extsize = extinfo & 0x3FFFFFFF
            method = extinfo >> 30
        else:
            extsize, method = extinfo, 0
        if extsize >= rawsize - 4:
            method = -1
        return ToastPointer(rawsize, extsize, method, valueid, relid), 18
    if first & 0x01:  # 1-byte header
        n = first >> 1
        if n < 1 or pos + n > len(b):
            raise TupleError(f"bad short varlena length {n} at offset {pos}")
        return bytes(b[pos + 1:pos + n]), n
    if pos + 4 > len(b):
        raise TupleError(f"varlena header at offset {pos} runs past the data's end")
    h = _u32(b, pos)[0]
    n = h >> 2
    if n < 4 or pos + n > len(b):
        raise TupleError(f"bad varlena length {n} at offset {pos}")
    if first & 0x03 == 0x02:  # compressed inline
        if n < 8:
            raise TupleError(f"compressed varlena of {n} bytes at offset {pos}")
        tc = _u32(b, pos + 4)[0]
        rawsize = tc & 0x3FFFFFFF
        method = (tc >> 30) if major >= 14 else 0
        return Compressed(rawsize, method, bytes(b[pos + 8:pos + n])), n
    return bytes(b[pos + 4:pos + n]), n


def align_to(off: int, align: str) -> int:
    a = _ALIGN.get(align, 1)
    return (off + a - 1) & ~(a - 1)


def deform(tup: bytes, columns: list["Column"], major: int,
           unknown: list[tuple[int, int]] | None = None) -> list[Datum]:
    """One datum per column (dropped ones included, so positions match attnums).

    `unknown`: byte ranges of `tup` whose content is not known (an update's prefix or suffix
    taken from an old row the WAL read does not have). Columns overlapping them are UNKNOWN;
    after a variable-length column that starts inside one, positions are lost and every later
    column is UNKNOWN too."""
    im2, im, hoff, natts = tuple_header(tup)
    hasnull = im & HEAP_HASNULL
    if hoff > len(tup) or hoff < SIZEOF_HEAP_TUPLE_HEADER:
        raise TupleError(f"t_hoff {hoff} outside a tuple of {len(tup)} bytes")
    if natts > len(columns):
        raise TupleError(f"tuple has {natts} attributes, the relation {len(columns)}")
    if hasnull and SIZEOF_HEAP_TUPLE_HEADER + (natts + 7) // 8 > hoff:
        raise TupleError(f"null bitmap of {natts} attributes does not fit before t_hoff {hoff}")
    if not unknown:
        return _deform_known(tup if type(tup) is bytes else bytes(tup), _layout(columns),
                             natts, hoff, hasnull, major)
    values: list[Datum] = []
    off = hoff
    n = len(tup)
    lost = False
    for i, col in enumerate(columns):
        if i >= natts:
            values.append(MISSING)
            continue
        if hasnull and not (tup[SIZEOF_HEAP_TUPLE_HEADER + (i >> 3)] >> (i & 7)) & 1:
            values.append(None)
            continue
        attlen = col.attlen
        if unknown:
            if lost:
                values.append(UNKNOWN)
                continue
            start = off if attlen == -1 else align_to(off, col.attalign)
            aligned = align_to(off, col.attalign)
            span = next(((a, b) for a, b in unknown
                         if a <= start < b or (attlen == -1 and a <= aligned < b)), None)
            if span is not None or (attlen > 0 and any(a < start + attlen <= b or
                                                       start < a < start + attlen
                                                       for a, b in unknown)):
                if attlen > 0:
                    off = start + attlen
                else:
                    lost = True
                values.append(UNKNOWN)
                continue
        if attlen == -1:
            if off >= n:
                raise TupleError(f"column {col.attnum} starts beyond the tuple's end")
            if tup[off] == 0:  # a pad byte: aligned 4-byte header follows
                off = align_to(off, col.attalign)
            v, size = read_varlena(tup, off, major)
            if unknown and any(a < off + size and off < b for a, b in unknown):
                v = UNKNOWN  # its header is known, some of its bytes are not
            off += size
        elif attlen == -2:
            off = align_to(off, col.attalign)
            end = tup.find(b"\0", off)
            if end < 0:
                raise TupleError(f"column {col.attnum} (a C string) has no end")
            v = bytes(tup[off:end])
            off = end + 1
        else:
            off = align_to(off, col.attalign)
            if off + attlen > n:
                raise TupleError(f"column {col.attnum} ({attlen} bytes) runs past the tuple's "
                                 f"end at {n}")
            v = bytes(tup[off:off + attlen])
            off += attlen
        values.append(v)
    return values


# Per column list: (attlen, alignment mask, attnum) of each column, made once per list (a
# relation's columns); the list is kept in the entry so that its id is not reused.
_LAYOUTS: dict[int, tuple[list["Column"], list[tuple[int, int, int]]]] = {}


def _layout(columns: list["Column"]) -> list[tuple[int, int, int]]:
    entry = _LAYOUTS.get(id(columns))
    if entry is None or entry[0] is not columns:
        entry = (columns, [(c.attlen, _ALIGN.get(c.attalign, 1) - 1, c.attnum) for c in columns])
        if len(_LAYOUTS) > 4096:
            _LAYOUTS.clear()
        _LAYOUTS[id(columns)] = entry
    return entry[1]


# Column kinds _deform.c renders itself: built-in type oid -> (its attlen, kind); a domain or
# any other type is kind 0 (datum only, rendered in Python).
_C_KINDS = {T.BOOL: (1, 1), T.INT2: (2, 2), T.INT4: (4, 3), T.INT8: (8, 4), T.OID: (4, 5),
            T.XID: (4, 5), T.CID: (4, 5), T.TIMESTAMP: (8, 7)}
_C_TEXT = (T.TEXT, T.VARCHAR, T.BPCHAR)
CPlan = tuple[tuple[int, int, int], ...]


def c_plan(columns: list["Column"], utf8: bool, utc: bool) -> CPlan:
    """_deform.c's plan of a column list: (attlen, alignment mask, kind) per column (made
    once per relation by Replay._plan)."""
    plan = []
    for c in columns:
        kind = 0
        k = _C_KINDS.get(c.type_oid)
        if k is not None and k[0] == c.attlen:
            kind = k[1]
        elif c.type_oid in _C_TEXT and c.attlen == -1 and utf8:
            kind = 6
        elif c.type_oid == T.TIMESTAMPTZ and c.attlen == 8 and utc:
            kind = 8
        plan.append((c.attlen, _ALIGN.get(c.attalign, 1) - 1, kind))
    return tuple(plan)


def _deform_known(tup: bytes, layout: list[tuple[int, int, int]], natts: int, hoff: int,
                  hasnull: int, major: int) -> list[Datum]:
    """deform() of a tuple whose bytes are all known: the same values and errors, with the
    per-column work cut to what the layout needs."""
    values: list[Datum] = []
    append = values.append
    off = hoff
    n = len(tup)
    nb = SIZEOF_HEAP_TUPLE_HEADER
    for i, (attlen, amask, attnum) in enumerate(layout):
        if i >= natts:
            append(MISSING)
            continue
        if hasnull and not (tup[nb + (i >> 3)] >> (i & 7)) & 1:
            append(None)
            continue
        if attlen > 0:
            off = (off + amask) & ~amask
            end = off + attlen
            if end > n:
                raise TupleError(f"column {attnum} ({attlen} bytes) runs past the tuple's "
                                 f"end at {n}")
            append(tup[off:end])
            off = end
        elif attlen == -1:
            if off >= n:
                raise TupleError(f"column {attnum} starts beyond the tuple's end")
            first = tup[off]
            if first & 0x01 and first != 0x01:  # short varlena, inline (the common case)
                size = first >> 1
                if off + size > n:
                    raise TupleError(f"bad short varlena length {size} at offset {off}")
                append(tup[off + 1:off + size])
                off += size
                continue
            if first == 0:  # a pad byte: aligned 4-byte header follows
                off = (off + amask) & ~amask
            v, size = read_varlena(tup, off, major)
            append(v)
            off += size
        elif attlen == -2:
            off = (off + amask) & ~amask
            end = tup.find(b"\0", off)
            if end < 0:
                raise TupleError(f"column {attnum} (a C string) has no end")
            append(tup[off:end])
            off = end + 1
        else:
            off = (off + amask) & ~amask
            if off + attlen > n:
                raise TupleError(f"column {attnum} ({attlen} bytes) runs past the tuple's "
                                 f"end at {n}")
            append(tup[off:off + attlen])
            off += attlen
    return values


# --- rendering ---------------------------------------------------------------------------------
class Unresolved(XlogError):
    """A value that cannot be known from the WAL read (e.g. TOAST chunks before the start)."""


class Undecodable(XlogError):
    """A value that is not shown as PostgreSQL's text: a type without an output function here,
    or bytes that are no value of the type. `text` is the raw bytes (`\\x<hex>`) shown in
    its place, `why` says which."""

    def __init__(self, text: str, why: str) -> None:
        super().__init__(why)
        self.text = text
        self.why = why


# What decoding odd bytes can raise (BadDatum and TupleError are ValueErrors): a value that
# raises one of these is shown raw; any other exception is a bug and is not caught here.
DATA_ERRORS = (ValueError, IndexError, struct.error, OverflowError, RecursionError)


def decompress(method: int, data: bytes, rawsize: int) -> bytes:
    """toast_decompress_datum: 0 pglz, 1 lz4."""
    try:
        if method == 0:
            return pglz_decompress(data, rawsize, True)
        if method == 1:
            import lz4.block

            out: bytes = lz4.block.decompress(data, uncompressed_size=rawsize)
            return out
    except Exception as exc:
        raise TupleError(f"compressed value does not decompress ({exc})") from None
    raise TupleError(f"unknown compression method id {method}")


def detoast(v: Datum, toast: "ToastStore | None") -> bytes:
    if type(v) is bytes:
        return v
    if isinstance(v, ToastPointer):
        if toast is None:
            raise Unresolved("TOAST value without a TOAST store")
        data = toast.fetch(v)
        if v.compressed:
            tc = _u32(data, 0)[0]
            method = v.method if v.method >= 0 else (tc >> 30)
            return decompress(method, data[4:], tc & 0x3FFFFFFF)
        return data
    if isinstance(v, Compressed):
        return decompress(v.method, v.data, v.rawsize)
    return v  # type: ignore[no-any-return]


class Renderer:
    """Turns datums into text, with the catalog's types and the TOAST store."""

    def __init__(self, catalog: "Catalog", toast: "ToastStore | None",
                 ctx: T.OutputContext) -> None:
        self.catalog = catalog
        self.toast = toast
        self.ctx = ctx
        self._scalar: dict[int, T.Scalar] = {}  # type oid (domains resolved) -> output

    def base_type(self, type_oid: int) -> int:
        seen = 0
        while seen < 10:
            t = self.catalog.types.get(type_oid)
            if t is None or t.kind != "d" or not t.base_type_oid:
                return type_oid
            type_oid = t.base_type_oid
            seen += 1
        return type_oid

    def render(self, v: Datum, type_oid: int, type_name: str,
               element_type_oid: int | None = None) -> str | None:
        """Text of one datum. Raises Unresolved (a TOAST value not in the WAL read) or
        Undecodable (shown raw); never anything else for any bytes."""
        if v is None:
            return None
        if type(v) is bytes:
            body = v
        else:
            try:
                body = detoast(v, self.toast)
            except TupleError as exc:
                raw = v.data if isinstance(v, Compressed) else b""
                raise Undecodable(T.bytea_out(raw), str(exc)) from None
        try:
            fn = self._scalar.get(type_oid)
            if fn is not None:
                return fn(body, self.ctx)
            return self.output(body, type_oid, type_name, element_type_oid)
        except Undecodable as exc:
            if exc.text == T.bytea_out(body):
                raise
            raise Undecodable(T.bytea_out(body), exc.why) from None  # an element's: show all
        except DATA_ERRORS as exc:
            name = self.type_name(type_oid, type_name)
            raise Undecodable(T.bytea_out(body), f"{name} value of {len(body)} bytes cannot be "
                                                 f"decoded ({exc})") from None

    def type_name(self, type_oid: int, type_name: str) -> str:
        t = self.catalog.types.get(type_oid)
        return t.name if t is not None else type_name or str(type_oid)

    def output(self, body: bytes, type_oid: int, type_name: str,
               element_type_oid: int | None = None) -> str:
        oid = self.base_type(type_oid)
        fn = T.SCALAR_OUT.get(oid)
        if fn is not None:
            self._scalar[type_oid] = fn
            return fn(body, self.ctx)
        t = self.catalog.types.get(oid)
        if t is not None:
            if t.kind == "e":
                T.need(body, 4, "enum")
                label = self.catalog.enum_label.get(_u32(body, 0)[0])
                if label is None:
                    raise Undecodable(T.bytea_out(body), f"enum value {_u32(body, 0)[0]} of "
                                                         f"type {t.name} is not in the catalog")
                return label
            if t.element_type_oid and t.length == -1:
                return self.array_out(body, t.element_type_oid, oid)
        # an array by the column's element type (a catalog without the array type's entry) or
        # a built-in array type
        elem = element_type_oid or T.ELEMENT_OF.get(oid)
        if elem and (t is None or t.length == -1):
            return self.array_out(body, elem, oid)
        name = t.name if t is not None else type_name or str(type_oid)
        raise Undecodable(T.bytea_out(body), f"type {name} has no output function here")

    def element_layout(self, elem_oid: int) -> tuple[int, str, str]:
        """(typlen, typalign, name) of an array's element type."""
        et = self.catalog.types.get(elem_oid)
        if et is not None:
            return et.length, et.align, et.name
        base = self.base_type(elem_oid)
        if base in T.SCALAR_OUT or base in T.ELEMENT_OF:
            return (*T.LAYOUT.get(base, T.VARLENA), str(elem_oid))
        raise Undecodable("", f"array element type {elem_oid} is not in the catalog")

    def array_out(self, body: bytes, elem_oid: int, array_oid: int) -> str:
        """array_out: '{1,2}', '{{1,2},{3,4}}', '[0:1]={1,2}'; int2vector/oidvector as '1 2'.
        The header's dimensions, the null bitmap and every element are checked against the
        bytes there before they are used (a damaged array raises T.BadDatum)."""
        T.need(body, 12, "array")
        ndim, dataoffset, _elemtype = struct.unpack_from("<iiI", body, 0)
        if ndim == 0:
            return "{}"
        if not 0 < ndim <= MAXDIM:
            raise T.BadDatum(f"array with {ndim} dimensions")
        hdr = 12 + 8 * ndim  # ARR_OVERHEAD_NONULLS before MAXALIGN
        T.need(body, hdr, f"array of {ndim} dimensions")
        dims = list(struct.unpack_from(f"<{ndim}i", body, 12))
        lbs = list(struct.unpack_from(f"<{ndim}i", body, 12 + 4 * ndim))
        nitems = 1
        for d in dims:
            if d < 0:
                raise T.BadDatum(f"array dimension {d}")
            nitems *= d
        if nitems == 0:
            return "{}"
        # every item takes a bit of the null bitmap or at least a byte of data
        if nitems > 8 * len(body):
            raise T.BadDatum(f"array of {nitems} items in {len(body)} bytes")
        bitmap = None
        if dataoffset:
            nbytes = (nitems + 7) // 8
            if dataoffset - 4 < hdr + nbytes or dataoffset - 4 > len(body):
                raise T.BadDatum(f"array data offset {dataoffset} outside the datum")
            bitmap = body[hdr:hdr + nbytes]
            pos = dataoffset - 4  # dataoffset counts from the varlena header
        elif dataoffset < 0:
            raise T.BadDatum(f"array data offset {dataoffset}")
        else:
            pos = (hdr + 4 + 7 & ~7) - 4
        elen, ealign, ename = self.element_layout(elem_oid)
        n = len(body)
        texts: list[str | None] = []
        for i in range(nitems):
            if bitmap is not None and not (bitmap[i >> 3] >> (i & 7)) & 1:
                texts.append(None)
                continue
            if elen == -1:
                pos = align_to(pos + 4, ealign) - 4  # array elements: nominal alignment
                if pos >= n:
                    raise T.BadDatum(f"array element {i + 1} starts past the datum")
                v, size = read_varlena(body, pos, self.ctx.major)
                if type(v) is not bytes:
                    raise T.BadDatum(f"array element {i + 1} is not a plain value")
                e = self.output(v, elem_oid, ename)
                pos += size
            elif elen == -2:
                end = body.index(b"\0", pos)
                e = self.ctx.text(body[pos:end])
                pos = end + 1
            else:
                pos = align_to(pos + 4, ealign) - 4
                if pos + elen > n:
                    raise T.BadDatum(f"array element {i + 1} runs past the datum")
                e = self.output(body[pos:pos + elen], elem_oid, ename)
                pos += elen
            texts.append(e)
        if array_oid in (T.INT2VECTOR, T.OIDVECTOR):
            return " ".join(t or "" for t in texts)
        delim = ";" if ename == "box" else ","
        quoted = [T.array_quote(t) for t in texts]

        def nest(level: int, start: int) -> tuple[str, int]:
            if level == ndim - 1:
                n = dims[level]
                return "{" + delim.join(quoted[start:start + n]) + "}", start + n
            parts = []
            for _ in range(dims[level]):
                s, start = nest(level + 1, start)
                parts.append(s)
            return "{" + delim.join(parts) + "}", start

        text, _ = nest(0, 0)
        if any(lb != 1 for lb in lbs):
            text = "".join(f"[{lb}:{lb + d - 1}]" for lb, d in zip(lbs, dims)) + "=" + text
        return text


MAXDIM = 6  # utils/array.h
