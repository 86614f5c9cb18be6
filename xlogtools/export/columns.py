"""The record schema (rows.py, docs/dump.md) from a WalBatch, column by column: Arrow arrays
over the batch's buffers and vectorised pyarrow compute, with no Python object per record
for the common columns; jsonl and csv lines joined from those columns.

The output is the same, byte for byte (jsonl, csv) and value for value (parquet), as the
Record path of rows.py / writers.py, which stays the definition: what is rare or irregular
(a desc or name that JSON must escape, a CSV field with a carriage return, the time of a
commit record) is made by that code for those records only.

`batch_descriptions` is the one place the desc column of a batch is made.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..parse import layout as L
from ..parse.batch import COMPRESSIONS, WalBatch
from ..parse.rmgr import describer, identify_info
from ..parse.pgtime import PG_EPOCH
from . import rows
from .commitindex import XACT_OPS, CommitIndex, xact_records, xact_time_and_xinfo

# the extension's functions (_walscan.pyi), or None without it
_c_lsn_texts: Callable[[Any], tuple[bytes, bytes]] | None
_c_join_rows: Callable[[int, list[tuple[Any, ...]]], tuple[bytes, bytes]] | None
_c_time_texts: Callable[[Any, Any], tuple[bytes, bytes, bytes]] | None
try:  # LSN texts and text lines in C (the reader's extension)
    from ..parse._walscan import (join_rows as _c_join_rows, lsn_texts as _c_lsn_texts,
                                  time_texts as _c_time_texts)
except ImportError:  # pragma: no cover - without the C extension
    _c_lsn_texts = _c_join_rows = _c_time_texts = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _c_lsn_texts = _c_join_rows = _c_time_texts = None

_FORK_MASK = L.BKPBLOCK_FORK_MASK
_HAS_DATA = L.BKPBLOCK_HAS_DATA
_FORKS = pa.array([L.FORK_NAMES[f] if f < len(L.FORK_NAMES) else str(f)
                   for f in range(_FORK_MASK + 1)], pa.string())
_COMPRESSIONS = pa.array(list(COMPRESSIONS), pa.string())
# TimestampTz (microseconds since 2000-01-01) <-> Unix microseconds; pg_timestamp() makes
# None of what is out of datetime's years 1-9999, and so do we
_EPOCH_US = int(PG_EPOCH.timestamp()) * 1_000_000
_MIN_US = -62135596800_000000 - _EPOCH_US
_MAX_US = 253402300799_999999 - _EPOCH_US
_Y1000_US = -30610224000_000000 - _EPOCH_US  # 1000-01-01 00:00:00 UTC
# (major, rmid << 8 | info) -> (rmgr name, record type)
_KIND_NAMES: dict[tuple[int, int], tuple[str, str]] = {}


def lsn_text(values: Any) -> Any:
    """uint64 LSNs as pg_waldump's %X/%08X texts (a pyarrow string array)."""
    n = len(values)
    if _c_lsn_texts is not None:
        buf = values.buffers()[1]
        width = 8
        raw = buf[values.offset * width:(values.offset + n) * width]
        offsets, data = _c_lsn_texts(raw)
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                      pa.py_buffer(data)])
    return pa.array(["%X/%08X" % (v >> 32, v & 0xFFFFFFFF) for v in values.to_pylist()],
                    pa.string())


def _runs(batch: WalBatch) -> tuple[Any, list[int], list[str]]:
    """The batch's runs (timeline and segment) as each record's run number (int32) and the
    runs' timelines and segment names."""
    bounds = [r.first for r in batch.runs] + [batch.n]
    codes = [pa.repeat(pa.scalar(k, pa.int32()), bounds[k + 1] - r.first)
             for k, r in enumerate(batch.runs)]
    return (pa.concat_arrays(codes) if codes else pa.array([], pa.int32()),
            [r.timeline for r in batch.runs], [r.segment for r in batch.runs])


def _kinds(batch: WalBatch) -> tuple[Any, list[str], list[str]]:
    """rmgr and record_type: one lookup per kind of record (rmid, info) in the batch; each
    record's kind number (int32) and the kinds' rmgr names and record types."""
    kind = pc.add(pc.shift_left(pc.cast(batch.arrow("rmid"), pa.uint32()), 8),
                  pc.cast(batch.arrow("info"), pa.uint32()))
    uniq = pc.unique(kind)
    major = batch.pg_major
    names, types = [], []
    for k in uniq.to_pylist():
        got = _KIND_NAMES.get((major, k))
        if got is None:
            rmid, info = k >> 8, k & 0xFF
            name = identify_info(rmid, info, major)
            got = _KIND_NAMES[(major, k)] = (
                L.rmgr_name(rmid), name if name is not None else f"UNKNOWN ({info & 0xF0:x})")
        names.append(got[0])
        types.append(got[1])
    return pc.index_in(kind, value_set=uniq), names, types


def _indices(mask: Any) -> list[int]:
    out: list[int] = pc.indices_nonzero(mask).to_pylist()
    return out


def _timestamps(values: Any) -> Any:
    """int64 TimestampTz (nulls allowed) as timestamp[us, UTC], null where out of range."""
    ok = pc.and_(pc.greater_equal(values, _MIN_US), pc.less_equal(values, _MAX_US))
    v = pc.if_else(ok, values, pa.scalar(None, pa.int64()))
    return pc.cast(pc.add(v, _EPOCH_US), pa.timestamp("us", tz="UTC"))


def _times(batch: WalBatch, times: CommitIndex | None) -> tuple[Any, Any]:
    """xact_time and commit_time as int64 TimestampTz (null where there is none)."""
    idx = xact_records(batch, XACT_OPS)
    xact_time = pa.nulls(batch.n, pa.int64())
    if idx:
        when, _xinfo = xact_time_and_xinfo(batch, idx)
        flags = bytearray(batch.n)
        for i in idx:
            flags[i] = 1
        mask = pc.cast(pa.Array.from_buffers(pa.uint8(), batch.n, [None, pa.py_buffer(flags)]),
                       pa.bool_())
        xact_time = pc.replace_with_mask(xact_time, mask, when)
    if not times:
        return xact_time, pa.nulls(batch.n, pa.int64())
    xid, top = batch.arrow("xid"), batch.arrow("toplevel_xid")
    ct = times.lookup(pc.if_else(pc.not_equal(xid, 0), xid, top))
    # no time by xid (or toplevel_xid): by toplevel_xid, when there is one
    has_top = pc.not_equal(top, 0)
    if not pc.any(has_top).as_py():
        return xact_time, ct
    again = pc.if_else(has_top, times.lookup(top), pa.scalar(None, pa.int64()))
    return xact_time, pc.coalesce(ct, again)


def _relations(batch: WalBatch, names: rows.Names) -> Any:
    """schema.name of each record's first block's relation (rows.relation_name)."""
    offs = batch.column("block_offsets")
    spc, db, rel = batch.column("spc"), batch.column("db"), batch.column("rel")
    out = []
    for i in range(batch.n):
        k = offs[i]
        out.append(names.get((spc[k], db[k], rel[k])) if offs[i + 1] > k else None)
    return pa.array(out, pa.string())


def batch_descriptions(batch: WalBatch, select: Sequence[int] | None = None) -> Any:
    """The desc column (pg_waldump's description) of the batch's records, or of the records
    `select` names, as a pyarrow string array: by the native describe
    (parse/native_desc.describe_batch) where it is there and describes the record, else by
    the Python describer of the record's kind."""
    describe_batch = _native_describe()
    idx = range(batch.n) if select is None else select
    major = batch.pg_major
    rmid, info = batch.column("rmid"), batch.column("info")
    if describe_batch is not None:
        offsets, data, fallback = describe_batch(batch.arena, batch.rec_offsets, batch.n,
                                                 major, batch.block_size)
        native = pa.Array.from_buffers(pa.string(), batch.n, [None, pa.py_buffer(offsets),
                                                              pa.py_buffer(data)])
        if select is not None:
            native = native.take(pa.array(select, pa.int64()))
        if not fallback.count(1):
            return native
        redo = [k for k, i in enumerate(idx) if fallback[i]]
        if not redo:
            return native
        out = native.to_pylist()
        for k in redo:
            i = idx[k]
            out[k] = describer(rmid[i], info[i], major)(batch.record(i))
        return pa.array(out, pa.string())
    return pa.array([describer(rmid[i], info[i], major)(rec)
                     for i, rec in zip(idx, batch.iter_records(select))], pa.string())


_NATIVE_DESC: list[Any] = []  # [describe_batch or None], once looked for


def _native_describe() -> Any:
    if not _NATIVE_DESC:
        from ..parse import native_desc  # the C extension when built (and not XLOGTOOLS_NO_C)

        _NATIVE_DESC.append(native_desc.describe_batch if native_desc.AVAILABLE else None)
    return _NATIVE_DESC[0]


class Columns:
    """The schema's columns of a batch's records (all of them, or those `select` keeps)."""

    def __init__(self, batch: WalBatch, times: CommitIndex | None,
                 names: rows.Names | None, select: Sequence[int] | None = None) -> None:
        self.batch = batch
        self.select = select
        take: Callable[..., Any] = (lambda a: a) if select is None else \
            (lambda a, _i=pa.array(select, pa.int64()): a.take(_i))
        self.n = batch.n if select is None else len(select)
        b = batch
        self.lsn_int = take(b.arrow("lsn"))
        self.end_int, self.prev_int = take(b.arrow("end")), take(b.arrow("prev"))
        # timeline and segment by run, rmgr and record_type by kind: a code per record and a
        # table of values (the string columns are made from them when asked for; the text
        # formats write the table's entries, escaped once)
        run_codes, timelines, self.segments = _runs(b)
        self.run_codes = take(run_codes)
        self.timeline = pa.array(timelines, pa.uint32()).take(self.run_codes)
        self.xid, self.toplevel_xid = take(b.arrow("xid")), take(b.arrow("toplevel_xid"))
        kind_codes, self.rmgr_names, self.type_names = _kinds(b)
        self.kind_codes = take(kind_codes)
        self.info = take(b.arrow("info"))
        self.tot_len, self.fpi_len = take(b.arrow("tot_len")), take(b.arrow("fpi_len"))
        self.rec_len = pc.subtract(self.tot_len, self.fpi_len)
        self.desc = batch_descriptions(b, select)
        self.origin = take(b.arrow("origin"))
        xt, ct = _times(b, times)
        self.xact_time, self.commit_time = take(xt), take(ct)
        self.relation = take(_relations(b, names)) if names is not None else None
        # blocks: child arrays over the block buffers, list offsets
        ff = b.arrow("fork_flags")
        self.block_children = {
            "block_id": b.arrow("block_id"), "spc": b.arrow("spc"), "db": b.arrow("db"),
            "rel": b.arrow("rel"),
            "fork": _FORKS.take(pc.bit_wise_and(ff, pa.scalar(_FORK_MASK, pa.uint8()))),
            "blk": b.arrow("blk"), "has_image": pc.cast(b.arrow("has_image"), pa.bool_()),
            "image_len": b.arrow("image_len"),
            "apply_image": pc.cast(b.arrow("apply_image"), pa.bool_()),
            "compression": _COMPRESSIONS.take(b.arrow("compression")),
            "has_data": pc.not_equal(pc.bit_wise_and(ff, pa.scalar(_HAS_DATA, pa.uint8())),
                                     pa.scalar(0, pa.uint8())),
            "data_len": b.arrow("data_len"),
        }
        self._offsets = b.arrow("block_offsets")

    @functools.cached_property
    def lsn(self) -> Any:
        return lsn_text(self.lsn_int)

    @functools.cached_property
    def end_lsn(self) -> Any:
        return lsn_text(self.end_int)

    @functools.cached_property
    def prev_lsn(self) -> Any:
        return lsn_text(self.prev_int)

    @functools.cached_property
    def segment(self) -> Any:
        return pa.array(self.segments, pa.string()).take(self.run_codes)

    @functools.cached_property
    def rmgr(self) -> Any:
        return pa.array(self.rmgr_names, pa.string()).take(self.kind_codes)

    @functools.cached_property
    def record_type(self) -> Any:
        return pa.array(self.type_names, pa.string()).take(self.kind_codes)

    def blocks(self, values: Any) -> Any:
        """A list array of per-block values (in block order), one list per kept record."""
        lists = pa.ListArray.from_arrays(self._offsets, values)
        return lists if self.select is None else lists.take(pa.array(self.select, pa.int64()))

    def record_batch(self, schema: Any) -> Any:
        """The documented schema as a pyarrow.RecordBatch (Parquet)."""
        bt = schema.field("blocks").type.value_type
        struct = pa.StructArray.from_arrays(
            [pc.cast(self.block_children[f.name], f.type) for f in bt], fields=list(bt))
        cols = [self.lsn, self.lsn_int, self.end_lsn, self.prev_lsn, self.timeline,
                self.segment, self.xid, self.toplevel_xid, self.rmgr, self.record_type,
                self.info, self.rec_len, self.tot_len, self.fpi_len, self.desc,
                self.blocks(struct), self.origin, _timestamps(self.xact_time),
                _timestamps(self.commit_time)]
        if self.relation is not None:
            cols.append(self.relation)
        return pa.RecordBatch.from_arrays(
            [c if c.type == schema.field(i).type else pc.cast(c, schema.field(i).type)
             for i, c in enumerate(cols)], schema=schema)

    # -- text ------------------------------------------------------------------------------
    def _blocks_json(self) -> Any:
        """Each record's blocks as the JSON list text of jsonl (and of csv's blocks field),
        with pyarrow's string functions (the way without the C join)."""
        ch = self.block_children
        s = _str
        block = _join(['{"block_id":', s(ch["block_id"]), ',"spc":', s(ch["spc"]), ',"db":',
                       s(ch["db"]), ',"rel":', s(ch["rel"]), ',"fork":', _json_str(ch["fork"]),
                       ',"blk":', s(ch["blk"]), ',"has_image":', _json_bool(ch["has_image"]),
                       ',"image_len":', s(ch["image_len"]), ',"apply_image":',
                       _json_bool(ch["apply_image"]), ',"compression":',
                       _json_str(ch["compression"]), ',"has_data":', _json_bool(ch["has_data"]),
                       ',"data_len":', s(ch["data_len"]), '}'])
        return _join(["[", pc.binary_join(self.blocks(block), ","), "]"])

    def jsonl(self) -> bytes:
        """The lines of `--format jsonl` (json.dumps of rows.record_row, compact), UTF-8."""
        if self.n == 0:
            return b""
        if _c_join_rows is not None:
            try:
                return self._jsonl_c()
            except UnicodeError:  # a string that is not UTF-8: the pyarrow way below
                pass
        s = _str
        blocks = self._blocks_json()
        parts = ['{"lsn":"', self.lsn, '","lsn_int":', s(self.lsn_int), ',"end_lsn":"',
                 self.end_lsn, '","prev_lsn":"', self.prev_lsn, '","timeline":',
                 s(self.timeline), ',"segment":', _json_str(self.segment), ',"xid":', s(self.xid),
                 ',"toplevel_xid":', s(self.toplevel_xid), ',"rmgr":', _json_str(self.rmgr),
                 ',"record_type":', _json_str(self.record_type), ',"info":', s(self.info),
                 ',"rec_len":', s(self.rec_len), ',"tot_len":', s(self.tot_len),
                 ',"fpi_len":', s(self.fpi_len), ',"desc":', _json_str(self.desc),
                 ',"blocks":', blocks, ',"origin":', s(self.origin), ',"xact_time":',
                 _json_str(time_text_array(self.xact_time)), ',"commit_time":',
                 _json_str(time_text_array(self.commit_time))]
        if self.relation is not None:
            parts += [',"relation":', _json_str(self.relation)]
        parts.append("}\n")
        return _text(_join(parts))

    def _block_strings(self) -> Any:
        """Each block reference as its JSON object text (a string array, block order)."""
        assert _c_join_rows is not None  # the C paths of jsonl() and csv() come here
        ch = self.block_children
        nb = self.batch.nblocks
        parts = [_L('{"block_id":'), _U(ch["block_id"]), _L(',"spc":'), _U(ch["spc"]),
                 _L(',"db":'), _U(ch["db"]), _L(',"rel":'), _U(ch["rel"]), _L(',"fork":'),
                 _S(ch["fork"], 1), _L(',"blk":'), _U(ch["blk"]), _L(',"has_image":'),
                 _B(ch["has_image"]), _L(',"image_len":'), _U(ch["image_len"]),
                 _L(',"apply_image":'), _B(ch["apply_image"]), _L(',"compression":'),
                 _S(ch["compression"], 1), _L(',"has_data":'), _B(ch["has_data"]),
                 _L(',"data_len":'), _U(ch["data_len"]), _L("}")]
        offs, data = _c_join_rows(nb, parts)
        return pa.Array.from_buffers(pa.string(), nb, [None, pa.py_buffer(offs),
                                                       pa.py_buffer(data)])

    def _blocks_part(self) -> tuple[Any, ...]:
        """join_rows' part for the blocks column: the JSON list of each record's blocks."""
        lists = self.blocks(self._block_strings())
        values = lists.values
        return (4, _buf(lists.offsets, 4, len(lists) + 1), _buf(values, 4, len(values) + 1),
                values.buffers()[2] or b"")

    def _jsonl_c(self) -> bytes:
        assert _c_join_rows is not None  # jsonl() checked it
        dumps = json.dumps
        parts = [_L('{"lsn":"'), _LSN(self.lsn_int), _L('","lsn_int":'), _U(self.lsn_int),
                 _L(',"end_lsn":"'), _LSN(self.end_int), _L('","prev_lsn":"'),
                 _LSN(self.prev_int), _L('","timeline":'), _U(self.timeline),
                 _L(',"segment":'), _D(self.run_codes, [dumps(g) for g in self.segments]),
                 _L(',"xid":'), _U(self.xid), _L(',"toplevel_xid":'), _U(self.toplevel_xid),
                 _L(',"rmgr":'), _D(self.kind_codes, [dumps(r) for r in self.rmgr_names]),
                 _L(',"record_type":'), _D(self.kind_codes, [dumps(t) for t in self.type_names]),
                 _L(',"info":'), _U(self.info), _L(',"rec_len":'), _U(self.rec_len),
                 _L(',"tot_len":'), _U(self.tot_len), _L(',"fpi_len":'), _U(self.fpi_len),
                 _L(',"desc":'), _S(self.desc, 1), _L(',"blocks":'), self._blocks_part(),
                 _L(',"origin":'), _U(self.origin), _L(',"xact_time":'),
                 _time_part(self.xact_time, 1), _L(',"commit_time":'),
                 _time_part(self.commit_time, 1)]
        if self.relation is not None:
            parts += [_L(',"relation":'), _S(self.relation, 1)]
        parts.append(_L("}\n"))
        return _c_join_rows(self.n, parts)[1]

    def _csv_c(self) -> bytes:
        assert _c_join_rows is not None  # csv() checked it
        u = _U
        offs, data = _c_join_rows(self.n, [self._blocks_part()])
        blocks = pa.Array.from_buffers(pa.string(), self.n, [None, pa.py_buffer(offs),
                                                             pa.py_buffer(data)])
        parts = [_LSN(self.lsn_int), u(self.lsn_int), _LSN(self.end_int), _LSN(self.prev_int),
                 u(self.timeline), _D(self.run_codes, [_csv_text(g) for g in self.segments]),
                 u(self.xid), u(self.toplevel_xid),
                 _D(self.kind_codes, [_csv_text(r) for r in self.rmgr_names]),
                 _D(self.kind_codes, [_csv_text(t) for t in self.type_names]), u(self.info),
                 u(self.rec_len), u(self.tot_len), u(self.fpi_len), _S(self.desc, 2),
                 _S(blocks, 2), u(self.origin), _time_part(self.xact_time, 2),
                 _time_part(self.commit_time, 2)]
        if self.relation is not None:
            parts.append(_S(self.relation, 2))
        out: list[Any] = []
        for p in parts:
            out += [p, _L(",")]
        out[-1] = _L("\n")
        return _c_join_rows(self.n, out)[1]

    def csv(self) -> bytes:
        """The lines of `--format csv` (csv.writer of rows.csv_row), UTF-8."""
        if self.n == 0:
            return b""
        if _c_join_rows is not None:
            # a carriage return (see below) is looked for in the free-text columns only
            cr = [self.desc] + ([self.relation] if self.relation is not None else [])
            if not any("\r" in g for g in self.segments) and \
                    not any(pc.any(pc.match_substring(c, "\r")).as_py() for c in cr):
                try:
                    return self._csv_c()
                except UnicodeError:
                    pass
        s = _str
        blocks = self._blocks_json()
        fields = [self.lsn, s(self.lsn_int), self.end_lsn, self.prev_lsn, s(self.timeline),
                  self.segment, s(self.xid), s(self.toplevel_xid), self.rmgr, self.record_type,
                  s(self.info), s(self.rec_len), s(self.tot_len), s(self.fpi_len), self.desc,
                  blocks, s(self.origin), time_text_array(self.xact_time),
                  time_text_array(self.commit_time)]
        if self.relation is not None:
            fields.append(self.relation)
        quoted = [_csv_field(f) for f in fields]
        parts: list[Any] = []
        for q in quoted:
            parts += [q, ","]
        parts[-1] = "\n"
        lines = _join(parts)
        # A carriage return in a field: csv.writer's quoting of it differs between Python
        # versions; those rows are written by csv.writer itself.
        odd = None
        for f in fields:
            if pa.types.is_string(f.type):
                m = pc.fill_null(pc.match_substring(f, "\r"), False)
                odd = m if odd is None else pc.or_(odd, m)
        redo = _indices(odd) if odd is not None else []
        if redo:
            values = [f.to_pylist() for f in fields]
            out = lines.to_pylist()
            for i in redo:
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerow([v[i] for v in values])
                out[i] = buf.getvalue()
            return "".join(out).encode("utf-8")
        return _text(lines)


def time_text_array(values: Any) -> Any:
    """rows.time_text of each value (null for null): in C, or by pyarrow's strftime, for
    years 1000-9999 (the same text); by time_text itself for the rest."""
    if _c_time_texts is not None:
        valid = pc.is_valid(values) if values.null_count else None
        offs, data, odd_flags = _c_time_texts(
            _buf(pc.fill_null(values, 0), 8, len(values)),
            pc.cast(valid, pa.uint8()).buffers()[1] if valid is not None else None)
        out = pa.Array.from_buffers(pa.string(), len(values), [
            valid.buffers()[1] if valid is not None else None, pa.py_buffer(offs),
            pa.py_buffer(data)], null_count=values.null_count)
        if not any(odd_flags):
            return out
        return _patched(out, [i for i, flag in enumerate(odd_flags) if flag], values,
                        rows.time_text)
    ok = pc.fill_null(pc.and_(pc.greater_equal(values, _Y1000_US),
                              pc.less_equal(values, _MAX_US)), False)
    ts = pc.cast(pc.add(pc.if_else(ok, values, pa.scalar(None, pa.int64())), _EPOCH_US),
                 pa.timestamp("us", tz="UTC"))
    out = _join([pc.strftime(ts, format="%Y-%m-%d %H:%M:%S"), "+00"])
    odd = _indices(pc.and_(pc.invert(ok), pc.is_valid(values)))
    return _patched(out, odd, values, rows.time_text) if odd else out


def _time_part(values: Any, mode: int) -> tuple[Any, ...]:
    """join_rows' part for a time column, JSON (mode 1: quoted, null as null) or CSV
    (mode 2: as it is, null empty): the C text itself when every value is within the
    years it writes (1000-9999), else the texts of time_text_array."""
    if _in_text_years(values):
        return _T(values, b"null" if mode == 1 else b"", mode == 1)
    return _S(time_text_array(values), mode)


def _L(text: str) -> tuple[Any, ...]:
    return (0, text.encode())


_CODES = {8: "Q", 4: "I", 2: "H", 1: "B"}


def _buf(a: Any, width: int, count: int) -> memoryview:
    """The values buffer of a fixed-width array, from its offset, `count` values."""
    return memoryview(a.buffers()[1])[a.offset * width:(a.offset + count) * width]


def _U(a: Any) -> tuple[Any, ...]:
    """join_rows' part for an unsigned integer column (no nulls)."""
    width = a.type.bit_width // 8
    if a.null_count or not pa.types.is_unsigned_integer(a.type):
        raise TypeError(a.type)
    return (1, _CODES[width], _buf(a, width, len(a)))


def _S(a: Any, mode: int) -> tuple[Any, ...]:
    """join_rows' part for a string column: raw (0), JSON (1) or a CSV field (2)."""
    valid = pc.cast(pc.is_valid(a), pa.uint8()).buffers()[1] if a.null_count else None
    return (2, _buf(a, 4, len(a) + 1), a.buffers()[2] or b"", valid, mode)


def _B(a: Any) -> tuple[Any, ...]:
    """join_rows' part for a boolean column: true / false."""
    return (3, pc.cast(a, pa.uint8()).buffers()[1], b"true", b"false")


def _LSN(a: Any) -> tuple[Any, ...]:
    """join_rows' part for a uint64 LSN column (no nulls): %X/%08X."""
    if a.null_count or a.type != pa.uint64():
        raise TypeError(a.type)
    return (5, _buf(a, 8, len(a)))


def _D(codes: Any, texts: list[str]) -> tuple[Any, ...]:
    """join_rows' part for a column given as int32 codes (no nulls) into `texts`, which are
    written as they are (escaped already)."""
    table = pa.array(texts, pa.string())
    return (6, _buf(codes, 4, len(codes)), _buf(table, 4, len(table) + 1),
            table.buffers()[2] or b"")


def _T(values: Any, null_text: bytes, quoted: bool) -> tuple[Any, ...]:
    """join_rows' part for an int64 TimestampTz column (nulls allowed; every value within the
    years 1000-9999: _in_text_years) as rows.time_text writes it."""
    valid = pc.cast(pc.is_valid(values), pa.uint8()).buffers()[1] if values.null_count else None
    filled = pc.fill_null(values, 0) if values.null_count else values
    return (7, _buf(filled, 8, len(filled)), valid, null_text, quoted)


def _in_text_years(values: Any) -> bool:
    """Every non-null TimestampTz value of the column is within 1000-01-01 .. 9999-12-31."""
    if values.null_count == len(values):
        return True
    lo, hi = pc.min_max(values).values()
    return bool(lo.as_py() >= _Y1000_US and hi.as_py() <= _MAX_US)


def _csv_text(text: str) -> str:
    """A CSV field as csv.writer (QUOTE_MINIMAL) writes one without a carriage return:
    quoted when it holds a comma, a quote or a newline."""
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _str(a: Any) -> Any:
    return pc.cast(a, pa.string())


def _json_bool(a: Any) -> Any:
    return pc.if_else(a, "true", "false")


def _json_str(a: Any) -> Any:
    """json.dumps of each string (null: null): escaped in bulk; what needs more than \\\\ and
    \\" (control and non-ASCII characters) by json.dumps itself."""
    esc = pc.replace_substring(pc.replace_substring(a, "\\", "\\\\"), '"', '\\"')
    out = _join(['"', esc, '"'])
    odd = pc.fill_null(pc.match_substring_regex(a, "[^\\x20-\\x7e]"), False)
    redo = _indices(odd)
    if redo:
        out = _patched(out, redo, a, json.dumps)
    return pc.fill_null(out, "null")


def _patched(texts: Any, idx: list[int], values: Any, make: Callable[[Any], Any]) -> Any:
    """The string array `texts` with entry i (for i in idx) made anew by make(values[i]): the
    rare values the bulk path does not write as the record path does."""
    out = texts.to_pylist()
    src = values.to_pylist()
    for i in idx:
        out[i] = make(src[i])
    return pa.array(out, pa.string())


def _csv_field(a: Any) -> Any:
    """A CSV field as csv.writer (QUOTE_MINIMAL, lineterminator \\n) writes it: quoted when
    it holds a comma, a quote or a newline; null is empty."""
    if not pa.types.is_string(a.type):
        return pc.fill_null(a, "")
    need = pc.match_substring_regex(a, '[,"\\n]')
    quoted = _join(['"', pc.replace_substring(a, '"', '""'), '"'])
    return pc.fill_null(pc.if_else(need, quoted, a), "")


def _join(parts: list[Any]) -> Any:
    """Element-wise concatenation of string arrays and literal strings."""
    return pc.binary_join_element_wise(*parts, "")


def _text(lines: Any) -> bytes:
    """The lines of a string array as one UTF-8 text (its data buffer holds them in order)."""
    if len(lines) == 0:
        return b""
    offs = lines.buffers()[1]
    data = lines.buffers()[2]
    o = memoryview(offs).cast("i")
    lo, hi = o[lines.offset], o[lines.offset + len(lines)]
    out: bytes = data.slice(lo, hi - lo).to_pybytes()
    return out
