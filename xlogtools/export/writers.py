"""Chunk formatters and sinks of `dump`.

Records are formatted in chunks (a list of records -> a str, or an Arrow RecordBatch for
Parquet), so the same code serves one process and `--jobs N` workers, whose chunks the main
process writes in order. Memory is bounded by the chunk size (and, for Parquet, by the row
group Sink gathers), not by the input.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from typing import TYPE_CHECKING, IO, Any, Callable, Sequence

from ..errors import InputError
from ..parse import layout as L
from ..parse.pgtime import pg_timestamp
from ..parse.record import Record
from . import rows
from .text import format_record as text_line

if TYPE_CHECKING:
    from .commitindex import CommitIndex

# Records per chunk. Small enough that a chunk's records (three objects each that the cyclic
# garbage collector tracks) mostly die young: with 20000, collections of the older generations
# over the records held cost about a fifth of `dump --format waldump`'s time.
CHUNK_RECORDS = 1000
# Bytes of text decoded at a time for a text stream without a binary buffer (Sink.write_utf8)
TEXT_PIECE = 8 << 20
# Rows per Parquet row group: Sink gathers chunks to at least this many.
ROW_GROUP_ROWS = 20000
FORMATS = ("text", "waldump", "table", "jsonl", "csv", "parquet")


TABLE_HEADER = (f"{'lsn':>17}  {'prev':>17}  {'xid':>10}  {'rmgr':<17}  {'type':<24}  "
                f"{'tot_len':>8}  {'fpi':>6}  desc")


def line_formatter(fmt: str, bkp_details: bool, times: rows.CommitTimes | None = None,
                   names: rows.Names | None = None) -> Callable[[Record], str]:
    if names is not None and fmt in ("text", "table"):
        plain = line_formatter(fmt, bkp_details, times)

        def named(r: Record) -> str:  # the relation's name ends the record's (first) line
            line = plain(r)
            name = rows.relation_name(r, names)
            if name is None:
                return line
            head, nl, rest = line.partition("\n")
            return f"{head}  relation {name}{nl}{rest}"

        return named
    if fmt == "text":
        return lambda r: text_line(r, bkp_details)
    if fmt == "waldump":
        from .waldump import format_record

        return lambda r: format_record(r, bkp_details)
    if fmt == "table":
        from ..parse.rmgr import describe

        return lambda r: (f"{r.lsn.waldump():>17}  {r.prev.waldump():>17}  {r.xid:>10}  "
                          f"{r.rmgr_name:<17}  {rows.record_type(r):<24}  {r.tot_len:>8}  "
                          f"{r.fpi_len:>6}  {describe(r)}")
    if fmt == "jsonl":
        return lambda r: json.dumps(rows.record_row(r, times=times, names=names),
                                    separators=(",", ":"))
    raise ValueError(fmt)


def format_chunk(records: Sequence[Record], fmt: str, bkp_details: bool = False,
                 times: rows.CommitTimes | None = None, names: rows.Names | None = None) -> Any:
    """A chunk of output: text for the line formats, a pyarrow.RecordBatch for parquet.
    `times`: commit times by xid, for the commit_time column (jsonl, csv, parquet); `names`:
    relation names by file, for the relation column (all formats but waldump)."""
    if fmt == "parquet":
        return arrow_batch(records, times, names)
    if fmt == "waldump":
        from ..parse import native_desc

        if native_desc.AVAILABLE:  # the C lines (and descriptions but for the fallbacks)
            return native_desc.describe_records(records, bkp_details)
        from .waldump import format_records

        return format_records(records, bkp_details)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in records:
            w.writerow(rows.csv_row(r, times, names))
        return buf.getvalue()
    fn = line_formatter(fmt, bkp_details, times, names)
    return "".join(fn(r) + "\n" for r in records)


_SCHEMA: dict[bool, Any] = {}  # with a relation column or not -> pyarrow schema
# Per (major << 16 | rmid << 8 | info): rmgr name, record type and describe function, which
# depend on nothing else.
_KINDS: dict[int, tuple[str, str, Callable[[Record], str]]] = {}
_LO = 0xFFFFFFFF
# BlockRef.fork_name and .has_data from the fork_flags (without a property call per block)
_FORK_MASK = L.BKPBLOCK_FORK_MASK
_FORK_NAMES = tuple(L.FORK_NAMES[f] if f < len(L.FORK_NAMES) else str(f)
                    for f in range(_FORK_MASK + 1))
_HAS_DATA = L.BKPBLOCK_HAS_DATA
# Columns whose values repeat (Parquet dictionary encoding pays off); the LSN, length and
# description columns are mostly distinct, and trying a dictionary on them only costs time.
# Columns with min/max statistics in each row group (what readers prune row groups by); the
# description, block and LSN-text columns get none: costly to compute, of no use to a filter.
_STATISTICS_COLUMNS = ["lsn_int", "timeline", "segment", "xid", "toplevel_xid", "rmgr",
                       "record_type", "info", "rec_len", "tot_len", "fpi_len", "origin",
                       "xact_time", "commit_time", "relation"]
_DICTIONARY_COLUMNS = ["timeline", "segment", "rmgr", "record_type", "info", "origin",
                       "toplevel_xid", "blocks.list.element.spc", "blocks.list.element.db",
                       "blocks.list.element.rel", "blocks.list.element.fork",
                       "blocks.list.element.compression"]


# How every Parquet file of dump is written (one process, and each --jobs part, which are then
# stitched byte for byte: export/pqstitch.py).
PARQUET_OPTIONS = dict(compression="zstd", use_dictionary=_DICTIONARY_COLUMNS,
                       write_statistics=_STATISTICS_COLUMNS)


def _schema(with_relation: bool = False) -> Any:
    if with_relation not in _SCHEMA:
        _SCHEMA[with_relation] = rows.arrow_schema(with_relation)
    return _SCHEMA[with_relation]


def _kind(r: Record) -> tuple[str, str, Callable[[Record], str]]:
    from ..parse.rmgr import describer

    kind = (r.rmgr_name, rows.record_type(r), describer(r.rmid, r.info, r.pg_major))
    if 0 <= r.rmid <= 255 and 0 <= r.info <= 255:
        _KINDS[(r.pg_major << 16) | (r.rmid << 8) | r.info] = kind
    return kind


def arrow_batch(records: Sequence[Record], times: rows.CommitTimes | None = None,
                names: rows.Names | None = None) -> Any:
    """Records as one pyarrow.RecordBatch of the documented schema, built column by column
    (block references as flat child arrays plus list offsets, not per-row dicts).

    Per record, one loop makes what needs work (kind, description, LSN texts, blocks); the
    plain columns are list comprehensions.  The rmgr name, type and describe function come
    from a cache per kind of record; an LSN that is the previous record's (prev) or the next
    record's (end) reuses that record's text."""
    import pyarrow as pa

    schema = _schema(names is not None)
    kinds = _KINDS
    knd: list[tuple[str, str, Callable[[Record], str]]] = []
    desc: list[str] = []
    lsn: list[str] = []
    prev_lsn: list[str] = []
    fpi_len: list[int] = []
    offsets = [0]
    blks: list[Any] = []
    last_int = -1
    last_text = ""
    for r in records:
        k = kinds.get((r.pg_major << 16) | (r.rmid << 8) | r.info) or _kind(r)
        knd.append(k)
        desc.append(k[2](r))
        p = r.prev
        prev_lsn.append(last_text if p == last_int else "%X/%08X" % (p >> 32, p & _LO))
        last_int = r.lsn
        last_text = "%X/%08X" % (last_int >> 32, last_int & _LO)
        lsn.append(last_text)
        bl = r.blocks
        if bl:
            blks += bl
            offsets.append(len(blks))
            if len(bl) == 1:
                fpi_len.append(bl[0].image_len if bl[0].has_image else 0)
            else:
                fpi_len.append(sum([b.image_len for b in bl if b.has_image]))
        else:
            offsets.append(offsets[-1])
            fpi_len.append(0)
    n = len(records)
    # end_lsn: usually the next record's lsn (whose text is made already)
    end_lsn = [lsn[i + 1] if i + 1 < n and r.end == records[i + 1].lsn
               else "%X/%08X" % (r.end >> 32, r.end & _LO) for i, r in enumerate(records)]
    rmgr = [k[0] for k in knd]
    rtype = [k[1] for k in knd]
    tot_len = [r.tot_len for r in records]
    bt = schema.field("blocks").type.value_type
    flags = [b.fork_flags for b in blks]
    children = [[b.block_id for b in blks], [b.spc for b in blks], [b.db for b in blks],
                [b.rel for b in blks], [_FORK_NAMES[f & _FORK_MASK] for f in flags],
                [b.blk for b in blks], [b.has_image for b in blks], [b.image_len for b in blks],
                [b.apply_image for b in blks], [b.compression for b in blks],
                [f & _HAS_DATA != 0 for f in flags], [b.data_len for b in blks]]
    blocks = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays([pa.array(c, bt.field(i).type) for i, c in enumerate(children)],
                                   fields=list(bt)))
    cols = [lsn, [r.lsn for r in records], end_lsn, prev_lsn, [r.timeline for r in records],
            [r.segment for r in records], [r.xid for r in records],
            [r.toplevel_xid for r in records], rmgr, rtype, [r.info for r in records],
            [t - f for t, f in zip(tot_len, fpi_len)], tot_len, fpi_len, desc, blocks,
            [r.origin for r in records]]
    stamps = [rows.record_times(r, times) for r in records]
    cols += [[pg_timestamp(x) for x, _c in stamps], [pg_timestamp(c) for _x, c in stamps]]
    if names is not None:
        cols.append([rows.relation_name(r, names) for r in records])
    arrays = [c if isinstance(c, pa.Array) else pa.array(c, schema.field(i).type)
              for i, c in enumerate(cols)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def format_batch(batch: Any, fmt: str, times: CommitIndex | None = None,
                 names: rows.Names | None = None, select: Sequence[int] | None = None,
                 bkp_details: bool = False) -> Any:
    """format_chunk() of a WalBatch's records (or of those `select` names), for jsonl, csv
    and parquet: built from the batch's columns (export/columns.py), the same output; for
    waldump (when the native describe is built): pg_waldump's lines made in C from the
    batch's arena (waldump_batch)."""
    if fmt == "waldump":
        return waldump_batch(batch, bkp_details, select)
    from .columns import Columns

    cols = Columns(batch, times, names, select)
    if fmt == "parquet":
        return cols.record_batch(_schema(names is not None))
    if fmt == "jsonl":
        return cols.jsonl()
    if fmt == "csv":
        return cols.csv()
    raise ValueError(fmt)


def batch_formats() -> tuple[str, ...]:
    """The formats format_batch() makes: waldump only with the native describe."""
    from ..parse import native_desc

    return ("jsonl", "csv", "parquet") + (("waldump",) if native_desc.AVAILABLE else ())


def waldump_batch(batch: Any, bkp_details: bool = False,
                  select: Sequence[int] | None = None) -> bytes:
    """pg_waldump's lines (UTF-8, each ended by a newline) of a WalBatch's records, or of
    those `select` names: descriptions and lines in C (parse/native_desc) from the batch's
    arena, with the Python describer for the records the C code leaves to it. The same text
    as format_chunk(records, "waldump")."""
    from array import array

    from ..parse import native_desc
    from ..parse.rmgr import describe

    n = batch.n if select is None else len(select)
    if not n:
        return b""
    offsets, lsns = batch.rec_offsets, batch.buffers["lsn"]
    if select is not None:
        off_col, lsn_col = batch.column("rec_off"), batch.column("lsn")
        offsets = array("Q", [off_col[i] for i in select]).tobytes()
        lsns = array("Q", [lsn_col[i] for i in select]).tobytes()
    major, blcksz = batch.pg_major, batch.block_size
    d_offs, d_data, fallback = native_desc.describe_batch(batch.arena, offsets, n, major, blcksz)
    if fallback.count(1):
        idx = [k for k, f in enumerate(fallback) if f]
        texts = [describe(batch.record(k if select is None else select[k]))
                 .encode("utf-8", "surrogateescape") for k in idx]
        d_offs, d_data = native_desc.splice(d_offs, d_data, n, idx, texts)
    return native_desc.waldump_lines(batch.arena, offsets, lsns, n, major, blcksz, bkp_details,
                                     d_offs, d_data)


class Sink:
    """Where formatted chunks go, in order; close() leaves a complete file (a valid Parquet
    file even when reading stopped at damage)."""

    def __init__(self, fmt: str, output: str | None, stdout: IO[str] | None = None,
                 with_relation: bool = False, lazy: bool = False) -> None:
        """lazy (Parquet): the file is created by the first write() or by close(), unless
        detach() hands it to the caller first (dump --jobs stitches its parts into it)."""
        self.fmt = fmt
        self.output = output
        self._text: IO[str] | None = None
        self._pq: Any = None
        self._batches: list[Any] = []  # Arrow batches not yet written (Parquet)
        self._rows = 0
        self._close_text = False
        self._writer: _ParquetThread | None = None
        self._with_relation = with_relation
        self._pending = False  # a lazy Parquet writer not opened yet
        if fmt == "parquet":
            if output in (None, "-"):
                raise InputError("--format parquet needs -o/--output FILE")
            if lazy:
                self._pending = True
            else:
                self._open_parquet()
            return
        if output in (None, "-"):
            self._text = stdout or sys.stdout
        else:
            try:
                self._text = open(output, "w", encoding="utf-8", newline="")
            except OSError as exc:
                raise InputError(f"could not create \"{output}\": {exc.strerror}", file=output) from exc
            self._close_text = True
        if fmt == "csv":
            self._text.write(",".join(rows.FIELDS + (("relation",) if with_relation else ()))
                             + "\n")
        elif fmt == "table":
            self._text.write(TABLE_HEADER + "\n")

    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        self._pending = False
        output = self.output
        try:
            self._pq = pq.ParquetWriter(output, _schema(self._with_relation), **PARQUET_OPTIONS)
        except OSError as exc:
            raise InputError(f"could not create \"{output}\": {exc}", file=output) from exc
        self._writer = _ParquetThread(self._pq, output)

    def detach(self) -> None:
        """A lazy Parquet sink not written to: the caller makes the file; close() leaves it."""
        assert self._pq is None
        self._pending = False

    def write(self, chunk: Any) -> None:
        if self._pending:
            self._open_parquet()
        if self._pq is not None:
            if chunk.num_rows:
                # Batches are gathered into row groups of ROW_GROUP_ROWS or more rows: the
                # chunks are smaller than a good row group (see CHUNK_RECORDS).
                self._batches.append(chunk)
                self._rows += chunk.num_rows
                if self._rows >= ROW_GROUP_ROWS:
                    self._flush()
        elif chunk:
            assert self._text is not None
            if isinstance(chunk, bytes):  # UTF-8 text of the batch path (export/columns.py)
                raw = getattr(self._text, "buffer", None)
                if raw is not None:
                    self._text.flush()
                    raw.write(chunk)
                    return
                chunk = chunk.decode("utf-8")
            self._text.write(chunk)

    def binary_stream(self) -> Any:
        """The text stream's binary file, flushed, when it has a file descriptor (else None):
        for bytes copied to it by the kernel."""
        raw = getattr(self._text, "buffer", None)
        if raw is None:
            return None
        try:
            raw.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        assert self._text is not None
        self._text.flush()
        raw.flush()
        return raw

    def write_utf8(self, data: Any) -> None:
        """UTF-8 text in a buffer (bytes, a memoryview) of whole lines, on the text stream."""
        assert self._text is not None
        raw = getattr(self._text, "buffer", None)
        if raw is not None:
            self._text.flush()
            raw.write(data)
            return
        view = memoryview(data)
        pos = 0
        while pos < len(view):  # decoded in pieces that end at a newline (never in a character)
            end = min(len(view), pos + TEXT_PIECE)
            if end < len(view):
                cut = bytes(view[pos:end]).rfind(b"\n")
                if cut >= 0:
                    end = pos + cut + 1
                else:  # a line longer than a piece: on, piece by piece, to its end
                    while end < len(view):
                        nl = bytes(view[end:end + TEXT_PIECE]).find(b"\n")
                        if nl >= 0:
                            end += nl + 1
                            break
                        end = min(len(view), end + TEXT_PIECE)
            self._text.write(str(view[pos:end], "utf-8"))
            pos = end

    def write_text(self, text: str) -> None:
        """Free text (statistics) on the text stream."""
        if self._text is not None:
            self._text.write(text)

    def _flush(self) -> None:
        if self._batches:
            import pyarrow as pa

            assert self._writer is not None
            self._writer.put(pa.Table.from_batches(self._batches), self._rows)
            self._batches = []
            self._rows = 0

    def close(self) -> None:
        if self._pending:  # nothing written: an empty file of the schema
            self._open_parquet()
        if self._pq is not None:
            assert self._writer is not None
            try:
                self._flush()
            finally:
                self._writer.finish()  # every row group written (or the writer's error raised)
                self._pq.close()
                self._pq = None
        elif self._text is not None:
            self._text.flush()
            if self._close_text:
                self._text.close()
            self._text = None


class _ParquetThread:
    """Row groups are encoded and compressed by a thread of their own (pyarrow releases the
    GIL while it writes), so that the next batches are decoded meanwhile: a Parquet export
    takes about the time of the slower of the two, not of both. At most two row groups wait
    (memory stays bounded); an error of the writer is raised by the next put() or finish()."""

    def __init__(self, pq_writer: Any, output: str | None) -> None:
        import queue
        import threading

        self._pq = pq_writer
        self._output = output
        self._queue: Any = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xlogtools-parquet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._pq.write_table(item[0], row_group_size=item[1])
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self._error = exc

    def _raise(self) -> None:
        exc = self._error
        if exc is not None:
            self._error = None
            if isinstance(exc, OSError):
                raise InputError(f"could not write \"{self._output}\": {exc}",
                                 file=self._output) from exc
            raise exc

    def put(self, table: Any, rows: int) -> None:
        self._raise()
        self._queue.put((table, rows))

    def finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()
