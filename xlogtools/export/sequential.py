"""Dump in one process: the options and result of a dump, and its two ways of writing a
range: record by record (the path that defines the output) and from the reader's batches
(the columns of export/columns.py, for the formats that have them)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ..lsn import Lsn
from ..parse.api import open_wal
from ..parse.endofwal import EndOfWal, EndReason
from ..parse.reader import WalReader
from ..parse.record import Record
from .filters import RecordFilter
from .progress import Progress, wal_span
from .rows import CommitTimes
from .walend import EndVerdict
from .writers import CHUNK_RECORDS, Sink, batch_formats, format_batch, format_chunk

BATCH_FORMATS = batch_formats()  # and waldump, when the native describe is built


@dataclass(frozen=True)
class DumpOptions:
    format: str = "text"
    output: str | None = None
    start: Lsn | None = None
    end: Lsn | None = None
    timeline: int | None = None
    limit: int | None = None
    filter: RecordFilter = field(default_factory=RecordFilter)
    bkp_details: bool = False
    stats: str | None = None  # None | "rmgr" | "record"
    jobs: int = 1
    follow: bool = False
    progress: bool | None = None  # None: when stderr is a terminal and the run is long
    # relation names by file (Catalog.file_names): adds the relation column; None: no column
    relation_names: dict[tuple[int, int, int], str] | None = None


@dataclass
class DumpResult:
    records: int
    end_of_wal: EndOfWal | None
    verdict: EndVerdict | None = None  # exports: what the end of WAL means (walend.py)

    @property
    def exit_status(self) -> int:
        """Exports: 0 when the range or limit was read or the WAL ends at its written tail, 1
        when valid WAL lies beyond the stop (verdict). waldump and --stats: 0 when the range
        or limit was read, 1 at any end of valid WAL (as pg_waldump)."""
        if self.verdict is not None:
            return self.verdict.status
        eow = self.end_of_wal
        return 1 if eow is not None and eow.is_damage else 0


def chunk_output(chunk: list[Record], opts: DumpOptions, times: CommitTimes | None) -> Any:
    return format_chunk(chunk, opts.format, opts.bkp_details, times, opts.relation_names)


def matching(reader: WalReader, flt: RecordFilter) -> Iterator[Record]:
    if not flt.active:
        yield from reader
    else:
        yield from (r for r in reader if flt(r))


def release_arrow_memory() -> None:
    """Give back what pyarrow's allocator keeps of freed buffers (the export's batches and
    row groups), so that the process's peak memory is the export's, not the export's plus
    what runs after it."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


def dump_sequential(paths: Sequence[str], reader: WalReader, opts: DumpOptions, sink: Sink,
                     skip_first: bool = False, done: int = 0,
                     times: CommitTimes | None = None) -> DumpResult:
    lo, hi = wal_span(reader)
    progress = Progress("dump", opts.progress, lo, hi)
    n = done
    chunk: list[Record] = []
    try:
        while True:
            for rec in matching(reader, opts.filter):
                if skip_first:
                    skip_first = False
                    continue
                chunk.append(rec)
                n += 1
                if len(chunk) >= CHUNK_RECORDS or opts.follow:
                    sink.write(chunk_output(chunk, opts, times))
                    chunk = []
                    progress.update(int(rec.lsn), n)
                if opts.limit is not None and n >= opts.limit:
                    sink.write(chunk_output(chunk, opts, times))
                    return DumpResult(n, None)
            eow = reader.end_of_wal
            if not opts.follow or eow is None or eow.reason is EndReason.END_LSN_REACHED:
                break
            # --follow: wait for more WAL at the end, as pg_waldump -f does.
            sink.write(chunk_output(chunk, opts, times))
            chunk = []
            if sink._text is not None:
                sink._text.flush()
            time.sleep(1.0)
            last = reader.last_record_lsn
            reader = open_wal(list(paths) or None, start=last if last is not None else eow.lsn,
                              end=opts.end, timeline=reader.timeline)
            skip_first = last is not None
        sink.write(chunk_output(chunk, opts, times))
        return DumpResult(n, reader.end_of_wal)
    finally:
        progress.finish()


def batch_commit_times(reader: WalReader) -> Any:
    """The commit times of the range, for the batch path (a columns.CommitIndex)."""
    from ..parse.rmgr.ids import RM_XACT_ID
    from .commitindex import commit_index

    return commit_index(reader.batches(rmgr=RM_XACT_ID))


def selection(batch: Any, flt: RecordFilter) -> list[int] | None:
    """The indexes of the batch's records the filter keeps (None: all of them)."""
    if not flt.active:
        return None
    from .batchfilter import filter_mask
    import pyarrow.compute as pc

    picked: list[int] = pc.indices_nonzero(filter_mask(batch, flt)).to_pylist()
    return picked


def dump_batches(reader: WalReader, opts: DumpOptions, sink: Sink, times: Any,
                  skip_first: bool = False, done: int = 0) -> DumpResult:
    """dump_sequential for the batch formats: the reader's batches, formatted by columns.
    skip_first: leave out the first record read (written already); done: records written
    before."""
    lo, hi = wal_span(reader)
    progress = Progress("dump", opts.progress, lo, hi)
    n = done
    try:
        for batch in reader.batches():
            select = selection(batch, opts.filter)
            if skip_first:
                skip_first = False
                select = [i for i in (range(batch.n) if select is None else select) if i]
            count = batch.n if select is None else len(select)
            if opts.limit is not None and n + count >= opts.limit:
                select = list(select if select is not None else range(batch.n))[:opts.limit - n]
                if select:
                    sink.write(format_batch(batch, opts.format, times, opts.relation_names,
                                            select, opts.bkp_details))
                return DumpResult(n + len(select), None)
            if count:
                sink.write(format_batch(batch, opts.format, times, opts.relation_names, select,
                                        opts.bkp_details))
                n += count
            progress.update(int(batch.column("lsn")[batch.n - 1]), n)
        return DumpResult(n, reader.end_of_wal)
    finally:
        progress.finish()
