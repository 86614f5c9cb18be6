"""Join Parquet files of one schema into one file at the byte level (`dump --jobs N`).

Each part's column-chunk bytes (between its leading "PAR1" and its footer) are copied as they
are; one new footer (a Thrift compact-protocol FileMetaData) lists the row groups of all parts
with every absolute offset shifted by where the part's bytes landed, num_rows summed and the
row-group ordinals renumbered. The schema, key_value_metadata (ARROW:schema), created_by and
column_orders are the first part's. No page is decoded or encoded again.

The Thrift compact protocol is decoded generically, to trees of (field id, type, value), and
encoded back the way the C++ Thrift library writes it, so that an unchanged footer encodes to
the same bytes (tests check this on pyarrow-written footers).

Page indexes hold absolute page offsets inside their own bytes; a part with one has it left
out of the stitched footer (the pages stay, readers just have no page index). Encrypted files
are refused.
"""
from __future__ import annotations

import os
import struct
from typing import IO, Any

from ..errors import XlogError

MAGIC = b"PAR1"

# compact-protocol types
BOOL_TRUE, BOOL_FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)


class ThriftError(XlogError, ValueError):
    pass


# A struct is a list of fields [fid, type, value]; a list/set value is [elem_type, [values]];
# a map value is [key_type, value_type, [(k, v), ...]]; bool fields carry True/False.


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def byte(self) -> int:
        try:
            b = self.buf[self.pos]
        except IndexError:
            raise ThriftError("truncated Thrift data") from None
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ThriftError("truncated Thrift data")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(out)

    def value(self, t: int, depth: int) -> Any:
        if depth > 64:
            raise ThriftError("Thrift data nested too deep")
        if t == BOOL_TRUE or t == BOOL_FALSE:  # in a list: one byte
            return self.byte() == BOOL_TRUE
        if t == BYTE:
            b = self.byte()
            return b - 256 if b > 127 else b
        if t in (I16, I32, I64):
            return self.zigzag()
        if t == DOUBLE:
            return struct.unpack("<d", self.take(8))[0]
        if t == BINARY:
            return self.take(self.varint())
        if t in (LIST, SET):
            h = self.byte()
            size, et = h >> 4, h & 0x0F
            if size == 15:
                size = self.varint()
            return [et, [self.value(et, depth + 1) for _ in range(size)]]
        if t == MAP:
            size = self.varint()
            if not size:
                return [0, 0, []]
            kv = self.byte()
            kt, vt = kv >> 4, kv & 0x0F
            return [kt, vt, [(self.value(kt, depth + 1), self.value(vt, depth + 1))
                             for _ in range(size)]]
        if t == STRUCT:
            return self.struct(depth + 1)
        raise ThriftError(f"unknown Thrift compact type {t}")

    def struct(self, depth: int = 0) -> list[list[Any]]:
        fields: list[list[Any]] = []
        last = 0
        while True:
            h = self.byte()
            if h == 0:
                return fields
            t, delta = h & 0x0F, h >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            if t == BOOL_TRUE or t == BOOL_FALSE:
                fields.append([fid, BOOL_TRUE, t == BOOL_TRUE])
            else:
                fields.append([fid, t, self.value(t, depth)])


def decode(buf: bytes, pos: int = 0) -> tuple[list[list[Any]], int]:
    """The struct encoded at buf[pos:] and the position after it."""
    r = _Reader(buf, pos)
    s = r.struct()
    return s, r.pos


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(out: bytearray, n: int) -> None:
    _varint(out, (n << 1) ^ (n >> 63))


def _value(out: bytearray, t: int, v: Any) -> None:
    if t == BOOL_TRUE or t == BOOL_FALSE:
        out.append(BOOL_TRUE if v else BOOL_FALSE)
    elif t == BYTE:
        out.append(v & 0xFF)
    elif t in (I16, I32, I64):
        _zigzag(out, v)
    elif t == DOUBLE:
        out += struct.pack("<d", v)
    elif t == BINARY:
        _varint(out, len(v))
        out += v
    elif t in (LIST, SET):
        et, items = v
        if len(items) < 15:
            out.append((len(items) << 4) | et)
        else:
            out.append(0xF0 | et)
            _varint(out, len(items))
        for item in items:
            _value(out, et, item)
    elif t == MAP:
        kt, vt, items = v
        _varint(out, len(items))
        if items:
            out.append((kt << 4) | vt)
            for k, x in items:
                _value(out, kt, k)
                _value(out, vt, x)
    elif t == STRUCT:
        _struct(out, v)
    else:
        raise ThriftError(f"unknown Thrift compact type {t}")


def _struct(out: bytearray, fields: list[list[Any]]) -> None:
    last = 0
    for fid, t, v in fields:
        wt = (BOOL_TRUE if v else BOOL_FALSE) if t in (BOOL_TRUE, BOOL_FALSE) else t
        delta = fid - last
        if 0 < delta <= 15:
            out.append((delta << 4) | wt)
        else:
            out.append(wt)
            _zigzag(out, fid)
        last = fid
        if t not in (BOOL_TRUE, BOOL_FALSE):
            _value(out, t, v)
    out.append(0)


def encode(fields: list[list[Any]]) -> bytes:
    out = bytearray()
    _struct(out, fields)
    return bytes(out)


def get(fields: list[list[Any]], fid: int, default: Any = None) -> Any:
    for f in fields:
        if f[0] == fid:
            return f[2]
    return default


def put(fields: list[list[Any]], fid: int, t: int, value: Any) -> None:
    """Set field fid (kept in field-id order, as writers write them)."""
    for f in fields:
        if f[0] == fid:
            f[1], f[2] = t, value
            return
    fields.append([fid, t, value])
    fields.sort(key=lambda f: f[0])


def drop(fields: list[list[Any]], *fids: int) -> None:
    fields[:] = [f for f in fields if f[0] not in fids]


# --- Parquet ---------------------------------------------------------------------------------

# FileMetaData
FMD_NUM_ROWS, FMD_ROW_GROUPS, FMD_ENCRYPTION = 3, 4, 8
# RowGroup
RG_COLUMNS, RG_NUM_ROWS, RG_FILE_OFFSET, RG_ORDINAL = 1, 3, 5, 7
# ColumnChunk
CC_FILE_PATH, CC_FILE_OFFSET, CC_META = 1, 2, 3
CC_PAGE_INDEX = (4, 5, 6, 7)  # offset_index_offset/length, column_index_offset/length
CC_CRYPTO, CC_ENCRYPTED_META = 8, 9
# ColumnMetaData: the absolute offsets
CMD_OFFSETS = (9, 10, 11, 14)  # data_page, index_page, dictionary_page, bloom_filter


def read_footer(f: IO[bytes]) -> tuple[list[list[Any]], int]:
    """A Parquet file's decoded FileMetaData and where the footer starts (the end of the
    column-chunk bytes)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size < 12:
        raise ThriftError("not a Parquet file (too short)")
    f.seek(0)
    head = f.read(4)
    f.seek(size - 8)
    tail = f.read(8)
    if head != MAGIC or tail[4:] != MAGIC:
        raise ThriftError("not a Parquet file (no PAR1)" if tail[4:] != b"PARE"
                          else "encrypted Parquet files are not stitched")
    n = struct.unpack("<I", tail[:4])[0]
    start = size - 8 - n
    if start < 4:
        raise ThriftError("Parquet footer length out of range")
    f.seek(start)
    raw = f.read(n)
    meta, end = decode(raw)
    if end != n:
        raise ThriftError("Parquet footer length does not match its content")
    return meta, start


def shift_row_group(rg: list[list[Any]], delta: int) -> None:
    """Move a RowGroup's absolute offsets by delta bytes (and leave out its page index)."""
    if get(rg, RG_FILE_OFFSET) is not None:
        put(rg, RG_FILE_OFFSET, I64, get(rg, RG_FILE_OFFSET) + delta)
    for cc in get(rg, RG_COLUMNS)[1]:
        if get(cc, CC_FILE_PATH) is not None:
            raise ThriftError("column chunks in other files are not stitched")
        if get(cc, CC_CRYPTO) is not None or get(cc, CC_ENCRYPTED_META) is not None:
            raise ThriftError("encrypted column chunks are not stitched")
        off = get(cc, CC_FILE_OFFSET)
        if off:  # 0: no ColumnMetaData written outside the footer
            put(cc, CC_FILE_OFFSET, I64, off + delta)
        drop(cc, *CC_PAGE_INDEX)
        md = get(cc, CC_META)
        if md is None:
            raise ThriftError("a column chunk without metadata")
        for fid in CMD_OFFSETS:
            v = get(md, fid)
            if v is not None:
                put(md, fid, I64, v + delta)


class Stitcher:
    """Parquet parts appended, in order, to one output file; finish() writes the footer.

        st = Stitcher("out.parquet")
        for part in parts:
            st.add(part)
        st.finish()
    """

    def __init__(self, output: str) -> None:
        self.output = output
        self._f: IO[bytes] | None = open(output, "wb", buffering=0)
        self._f.write(MAGIC)
        self._pos = len(MAGIC)
        self._meta: list[list[Any]] | None = None
        self._schema: bytes | None = None
        self._groups: list[list[list[Any]]] = []
        self._rows = 0

    def add(self, path: str) -> int:
        """Append a part file's row groups; the rows it held."""
        assert self._f is not None
        with open(path, "rb") as part:
            meta, body_end = read_footer(part)
            if get(meta, FMD_ENCRYPTION) is not None:
                raise ThriftError("encrypted Parquet files are not stitched")
            schema = encode([f for f in meta if f[0] == 2])
            if self._meta is None:
                self._meta, self._schema = meta, schema
            elif schema != self._schema:
                raise ThriftError(f"{path}: a schema other than the first part's")
            # (a writer given no rows may write a row group of none: left out)
            groups = [rg for rg in get(meta, FMD_ROW_GROUPS)[1] if get(rg, RG_NUM_ROWS)]
            if not groups:
                return 0
            delta = self._pos - len(MAGIC)
            for rg in groups:
                shift_row_group(rg, delta)
            self._groups += groups
            rows: int = get(meta, FMD_NUM_ROWS)
            self._rows += rows
            if copy_range(part, self._f, len(MAGIC), body_end - len(MAGIC)) < body_end - len(MAGIC):
                raise ThriftError("a Parquet part shorter than its footer says")
            self._pos += body_end - len(MAGIC)
            return rows

    def finish(self) -> None:
        """Write the footer and close the file (no part added: a part is needed for the
        schema, ThriftError)."""
        f = self._f
        if f is None:
            return
        self._f = None
        try:
            if self._meta is None:
                raise ThriftError("no Parquet part to take the schema from")
            meta = self._meta
            ordinals = any(get(rg, RG_ORDINAL) is not None for rg in self._groups)
            for i, rg in enumerate(self._groups):
                if ordinals and len(self._groups) <= 0x8000:
                    put(rg, RG_ORDINAL, I16, i)
                else:  # an i16 cannot number them all
                    drop(rg, RG_ORDINAL)
            put(meta, FMD_NUM_ROWS, I64, self._rows)
            put(meta, FMD_ROW_GROUPS, LIST, [STRUCT, self._groups])
            raw = encode(meta)
            f.write(raw)
            f.write(struct.pack("<I", len(raw)))
            f.write(MAGIC)
        finally:
            f.close()

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def copy_range(src: IO[bytes], dst: IO[bytes], offset: int, count: int) -> int:
    """count bytes of src from offset to dst's position, in the kernel where it can; the bytes
    copied (fewer: src ended). dst is an unbuffered (or flushed) binary file."""
    out = dst.fileno()
    inp = src.fileno()
    pos = offset
    end = offset + count
    try:
        while pos < end:
            sent = os.sendfile(out, inp, pos, min(end - pos, 1 << 30))
            if sent <= 0:
                break
            pos += sent
    except OSError:
        pass
    if pos < end:
        src.seek(pos)
        while pos < end:
            piece = src.read(min(end - pos, 8 << 20))
            if not piece:
                break
            dst.write(piece)
            pos += len(piece)
    return pos - offset


def stitch(parts: list[str], output: str) -> int:
    """Join the Parquet files `parts` (one schema) into `output`; the rows written."""
    st = Stitcher(output)
    try:
        for p in parts:
            st.add(p)
    except BaseException:
        st.abort()
        raise
    st.finish()
    return st._rows
