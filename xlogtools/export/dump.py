"""The library behind `xlogtools dump`: read, filter, format and write records.

    from xlogtools.export.dump import DumpOptions, dump
    result = dump(["pg_wal"], DumpOptions(format="parquet", output="wal.parquet"))
    result.records, result.end_of_wal

One process writes a range record by record or from the reader's batches (sequential.py);
`jobs > 1` splits the segments into ranges decoded by worker processes (parallel.py), with
the same output as one process.
"""
from __future__ import annotations

import sys
from typing import IO, Iterator, Sequence

from ..parse.api import open_wal
from ..parse.reader import WalReader
from ..parse.record import Record
from .parallel import dump_parallel
from .rows import commit_times
from .sequential import (BATCH_FORMATS, DumpOptions, DumpResult, batch_commit_times,
                         dump_batches, dump_sequential, matching, release_arrow_memory)
from .walend import classify_end
from .writers import Sink

__all__ = ["BATCH_FORMATS", "DumpOptions", "DumpResult", "dump"]

# jsonl, csv and parquet are made from the reader's batches (columns; export/columns.py);
# False: from Record objects, one by one (the path that defines the output; tests compare)
_BATCHES = True


def dump(paths: Sequence[str], opts: DumpOptions, stdout: IO[str] | None = None) -> DumpResult:
    """Write the records of `paths` as opts says. For the export formats (all but waldump and
    --stats) the result carries the verdict on the end of WAL (export/walend.py)."""
    reader = open_wal(list(paths) or None, start=opts.start, end=opts.end, timeline=opts.timeline)
    if opts.stats:
        return _dump_stats(reader, opts, stdout)
    parallel = opts.jobs > 1 and opts.limit is None and not opts.follow
    batches = _BATCHES and opts.format in BATCH_FORMATS and not opts.follow
    # --jobs parquet: the workers' Parquet parts are stitched into the output (no writer here)
    sink = Sink(opts.format, opts.output, stdout, opts.relation_names is not None,
                lazy=parallel and batches and opts.format == "parquet")
    try:
        times = None
        need_times = opts.format in ("jsonl", "csv", "parquet") and not opts.follow
        if need_times and not (parallel and batches):
            # commit_time of every record's transaction: a first pass over the same range
            # (a transaction's records come before its commit record); --jobs on batches
            # makes it in the workers too (dump_parallel)
            first = open_wal(list(paths) or None, start=opts.start, end=opts.end,
                             timeline=reader.timeline)
            times = batch_commit_times(first) if batches else commit_times(first)
        if batches and (opts.jobs <= 1 or opts.limit is not None):
            result = dump_batches(reader, opts, sink, times)
        elif parallel:
            result = dump_parallel(paths, reader, opts, sink, times,
                                   need_times=need_times and batches, batches=batches)
        else:
            result = dump_sequential(paths, reader, opts, sink, times=times)
    finally:
        sink.close()
    if opts.format != "waldump":
        del times, sink
        release_arrow_memory()  # before the verdict's locate maps segments of its own
        result.verdict = classify_end(list(paths) or None, result.end_of_wal, reader.timeline)
    return result


# --- statistics ------------------------------------------------------------------------------

def _dump_stats(reader: WalReader, opts: DumpOptions, stdout: IO[str] | None) -> DumpResult:
    from .waldump import format_stats

    counted = 0

    def counting() -> Iterator[Record]:
        nonlocal counted
        for rec in matching(reader, opts.filter):
            counted += 1
            yield rec
            if opts.limit is not None and counted >= opts.limit:
                return

    major = reader.source.cluster.pg_major if reader.source.cluster else 15
    text = format_stats(counting(), major, per_record=opts.stats == "record")
    out = stdout or sys.stdout
    if opts.output not in (None, "-"):
        with open(opts.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        out.write(text)
    eow = reader.end_of_wal if opts.limit is None or counted < opts.limit else None
    return DumpResult(counted, eow)
