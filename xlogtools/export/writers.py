"""Chunk formatters and sinks of `dump`.

Records are formatted in chunks (a list of records -> a str, or an Arrow RecordBatch for
Parquet), so the same code serves one process and `--jobs N` workers, whose chunks the main
process writes in order. Memory is bounded by the chunk size, not by the input.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from typing import IO, Any, Callable, Sequence

from ..errors import InputError
from ..parse.record import Record
from . import rows
from .text import format_record as text_line

CHUNK_RECORDS = 20000
FORMATS = ("text", "waldump", "table", "jsonl", "csv", "parquet")


TABLE_HEADER = (f"{'lsn':>17}  {'prev':>17}  {'xid':>10}  {'rmgr':<17}  {'type':<24}  "
                f"{'tot_len':>8}  {'fpi':>6}  desc")


def line_formatter(fmt: str, bkp_details: bool) -> Callable[[Record], str]:
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
        return lambda r: json.dumps(rows.record_row(r), separators=(",", ":"))
    raise ValueError(fmt)


def format_chunk(records: Sequence[Record], fmt: str, bkp_details: bool = False) -> Any:
    """A chunk of output: text for the line formats, a pyarrow.RecordBatch for parquet."""
    if fmt == "parquet":
        return arrow_batch(records)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in records:
            w.writerow(rows.csv_row(r))
        return buf.getvalue()
    fn = line_formatter(fmt, bkp_details)
    return "".join(fn(r) + "\n" for r in records)


def arrow_batch(records: Sequence[Record]) -> Any:
    """Records as one pyarrow.RecordBatch of the documented schema, built column by column
    (block references as flat child arrays plus list offsets, not per-row dicts)."""
    import pyarrow as pa

    from ..parse.rmgr import describe

    schema = rows.arrow_schema()
    lsn, lsn_int, end_lsn, prev_lsn, tli, seg, xid, top, rmgr, rtype, info = ([] for _ in range(11))
    rec_len, tot_len, fpi_len, desc, origin = ([] for _ in range(5))
    offsets = [0]
    b_id, b_spc, b_db, b_rel, b_fork, b_blk, b_img, b_ilen, b_apply, b_comp, b_hasd, b_dlen = \
        ([] for _ in range(12))
    rtype_of = rows.record_type
    for r in records:
        lsn.append(r.lsn.waldump())
        lsn_int.append(int(r.lsn))
        end_lsn.append(r.end.waldump())
        prev_lsn.append(r.prev.waldump())
        tli.append(r.timeline)
        seg.append(r.segment)
        xid.append(r.xid)
        top.append(r.toplevel_xid)
        rmgr.append(r.rmgr_name)
        rtype.append(rtype_of(r))
        info.append(r.info)
        fpi = 0
        for b in r.blocks:
            b_id.append(b.block_id)
            b_spc.append(b.spc)
            b_db.append(b.db)
            b_rel.append(b.rel)
            b_fork.append(b.fork_name)
            b_blk.append(b.blk)
            b_img.append(b.has_image)
            b_ilen.append(b.image_len)
            b_apply.append(b.apply_image)
            b_comp.append(b.compression)
            b_hasd.append(b.has_data)
            b_dlen.append(b.data_len)
            if b.has_image:
                fpi += b.image_len
        offsets.append(len(b_id))
        rec_len.append(r.tot_len - fpi)
        tot_len.append(r.tot_len)
        fpi_len.append(fpi)
        desc.append(describe(r))
        origin.append(r.origin)
    bt = schema.field("blocks").type.value_type
    children = [b_id, b_spc, b_db, b_rel, b_fork, b_blk, b_img, b_ilen, b_apply, b_comp, b_hasd,
                b_dlen]
    blocks = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays([pa.array(c, bt.field(i).type) for i, c in enumerate(children)],
                                   fields=list(bt)))
    cols = [lsn, lsn_int, end_lsn, prev_lsn, tli, seg, xid, top, rmgr, rtype, info, rec_len,
            tot_len, fpi_len, desc, blocks, origin]
    arrays = [c if isinstance(c, pa.Array) else pa.array(c, schema.field(i).type)
              for i, c in enumerate(cols)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class Sink:
    """Where formatted chunks go, in order; close() leaves a complete file (a valid Parquet
    file even when reading stopped at damage)."""

    def __init__(self, fmt: str, output: str | None, stdout: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.output = output
        self._text: IO[str] | None = None
        self._pq: Any = None
        self._close_text = False
        if fmt == "parquet":
            import pyarrow.parquet as pq

            if output in (None, "-"):
                raise InputError("--format parquet needs -o/--output FILE")
            try:
                self._pq = pq.ParquetWriter(output, rows.arrow_schema(), compression="zstd")
            except OSError as exc:
                raise InputError(f"could not create \"{output}\": {exc}", file=output) from exc
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
            self._text.write(",".join(rows.FIELDS) + "\n")
        elif fmt == "table":
            self._text.write(TABLE_HEADER + "\n")

    def write(self, chunk: Any) -> None:
        if self._pq is not None:
            if chunk.num_rows:
                self._pq.write_batch(chunk)
        elif chunk:
            assert self._text is not None
            self._text.write(chunk)

    def write_text(self, text: str) -> None:
        """Free text (statistics) on the text stream."""
        if self._text is not None:
            self._text.write(text)

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        elif self._text is not None:
            self._text.flush()
            if self._close_text:
                self._text.close()
            self._text = None
