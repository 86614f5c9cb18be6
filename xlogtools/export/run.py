"""A whole `xlogtools dump` run: the checks of options that do not go together, the relation
names of a catalog, the records written (`dump.dump`, or with `partition_by` a partitioned
Parquet dataset, `scale.dataset.write_dataset`), and what the run says at its end with the
exit status that goes with it.

    from xlogtools.export.dump import DumpOptions
    from xlogtools.export.run import run_dump

    ended = run_dump(["pg_wal"], DumpOptions(format="jsonl", output="wal.jsonl"),
                     catalog="app.json")
    ended.message, ended.exit_status    # e.g. None, 0: the WAL ends at its written tail
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import UsageError
from ..parse.api import PathArg
from .dump import DumpOptions, DumpResult, dump


@dataclass(frozen=True)
class DumpEnd:
    """The line a dump run ends with on stderr (None: nothing to say) and its exit status
    (DumpResult.exit_status; 0 for a dataset written)."""

    message: str | None
    exit_status: int


def run_dump(paths: Sequence[str], options: DumpOptions, *, partition_by: str | None = None,
             catalog: PathArg | None = None, pgdata: PathArg | None = None,
             dbname: str | None = None, warn: Callable[[str], None] | None = None) -> DumpEnd:
    """Dump the records of `paths` as `options` say. `catalog` (a snapshot file) or `pgdata`
    (a data directory, `dbname` its database) adds each record's relation name; what reading
    the data directory skipped goes to `warn`. `partition_by` (keys, e.g. "timeline,segment")
    writes a hive-partitioned Parquet dataset into the directory `options.output` instead."""
    if options.format == "parquet" and not options.output:
        raise UsageError("--format parquet needs -o/--output FILE")
    if partition_by is not None:
        return _dataset(paths, options, partition_by, bool(catalog or pgdata))
    if catalog or pgdata or dbname:
        if options.format == "waldump" or options.stats:
            raise UsageError("--format waldump and --stats are pg_waldump's own output: "
                             "they have no relation names (drop --catalog/--pgdata)")
        from ..replay.catalog_source import load_catalog

        cat = load_catalog(catalog, pgdata, dbname, warn=warn)
        assert cat is not None  # (required: a UsageError otherwise)
        options = dataclasses.replace(options, relation_names=cat.file_names())
    result = dump(list(paths), options)
    return DumpEnd(end_message(result), result.exit_status)


def end_message(result: DumpResult) -> str | None:
    """What a dump says about where its WAL ended: the exports' verdict (walend.py) where it
    has one, else pg_waldump's message for an end of valid WAL that is damage."""
    if result.verdict is not None:
        return result.verdict.message or None
    eow = result.end_of_wal
    if eow is not None and eow.is_damage:
        return f"end of WAL: {eow.waldump_message()} [{eow.reason}]"
    return None


def _dataset(paths: Sequence[str], options: DumpOptions, partition_by: str,
             with_catalog: bool) -> DumpEnd:
    """--partition-by: the Parquet dataset of the range, range by range in options.jobs
    processes; a limit, --follow, --stats and relation names are not for a dataset."""
    from ..scale.dataset import parse_partition_by, write_dataset
    from ..scale.partition import ReadOptions

    if options.format != "parquet" or not options.output or options.limit is not None \
            or options.follow or options.stats or with_catalog:
        raise UsageError("--partition-by needs --format parquet and -o DIR, and takes "
                         "no --limit, --follow, --stats, --catalog or --pgdata")
    res = write_dataset(list(paths), options.output,
                        partition_by=parse_partition_by(partition_by), jobs=options.jobs,
                        start=options.start, end=options.end, timeline=options.timeline,
                        opts=ReadOptions(filter=options.filter))
    return DumpEnd(f"{res.records} records in {res.files} files of {res.partitions} "
                   f"segment ranges in {res.directory}", 0)


__all__ = ["DumpEnd", "end_message", "run_dump"]
