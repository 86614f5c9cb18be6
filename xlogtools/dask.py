"""WAL as a Dask DataFrame: one Dask partition per segment range (xlogtools.scale.partition).

    import xlogtools.dask
    df = xlogtools.dask.read_wal(["/archive"], rmgr="Heap", columns=["lsn", "xid", "rmgr"])
    df.groupby("rmgr").size().compute()

Needs `pip install xlogtools[dask]`. Columns are pandas ArrowDtype columns of the record
schema (docs/dump.md): uint32/uint64 stay unsigned, `blocks` stays list<struct>, times are
timestamp[us, UTC]. A column projection (`columns=`, or selecting columns of the result) reaches
the decoder: without commit_time, no task reads ahead for commit records.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Sequence

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa

from .export import rows
from .lsn import Lsn
from .export.filters import record_filter
from .scale.partition import (DEFAULT_COMMIT_LOOKAHEAD, DEFAULT_SEGMENTS_PER_PARTITION,
                              ReadOptions, WalPartition, plan_partitions, read_partition)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def meta(columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The empty frame of the record schema (projected), as read_wal's partitions are."""
    schema = rows.arrow_schema()
    return _frame(schema.empty_table().select(list(columns) if columns else schema.names))


def _read_frame(part: WalPartition, opts: ReadOptions,
                columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The task: one WalPartition -> a pandas frame. `columns`: Dask's projection, passed on
    to the decoder."""
    if columns is not None:
        opts = replace(opts, columns=tuple(columns))
    schema = rows.arrow_schema()
    schema = pa.schema([schema.field(c) for c in opts.columns or rows.FIELDS])
    return _frame(pa.Table.from_batches(list(read_partition(part, opts)), schema=schema))


def read_wal(paths: Sequence[str | os.PathLike[str]] | str, *,
             start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
             timeline: int | None = None, rmgr: str | Sequence[str] | None = None,
             xid: int | None = None, relation: str | tuple[int, int, int] | None = None,
             block: int | None = None, fork: str | None = None, fullpage: bool = False,
             columns: Sequence[str] | None = None,
             segments_per_partition: int = DEFAULT_SEGMENTS_PER_PARTITION,
             commit_lookahead: int = DEFAULT_COMMIT_LOOKAHEAD, on_damage: str = "fail",
             damage_log: str | None = None) -> dd.DataFrame:
    """The records of `paths` (as `xlogtools dump` reads them) as a Dask DataFrame, one
    partition per range of `segments_per_partition` segments, in LSN order.

    Filters as dump's: start/end (LSN), timeline, rmgr (a name or names: -r), xid (-x),
    relation ("T/D/R": -R), block (-B), fork (-F), fullpage (-w). Damage in a range fails the
    computation with WalRangeDamage (LSN, reason); on_damage="skip" keeps the other ranges and
    logs each skipped one (and writes it to damage_log, a directory:
    xlogtools.scale.partition.read_damage_log lists them)."""
    flt = record_filter(rmgr=rmgr, xid=xid, relation=relation, block=block, fork=fork,
                        fullpage=fullpage)
    opts = ReadOptions(filter=flt, columns=tuple(columns) if columns else None,
                       commit_lookahead=commit_lookahead, on_damage=on_damage,
                       damage_log=damage_log)
    parts = plan_partitions(paths, start=start, end=end, timeline=timeline,
                            segments_per_partition=segments_per_partition)
    cols = list(opts.columns or rows.FIELDS)
    frame: dd.DataFrame
    if not parts:
        frame = dd.from_pandas(meta(cols), npartitions=1)
        return frame
    frame = dd.from_map(_read_frame, parts, args=[opts], meta=meta(cols),
                        label="xlogtools-read-wal", enforce_metadata=False)
    return frame


def to_dataset(paths: Sequence[str | os.PathLike[str]] | str, directory: str, *,
               partition_by: Sequence[str] = ("timeline", "segment"),
               start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
               timeline: int | None = None,
               segments_per_partition: int = DEFAULT_SEGMENTS_PER_PARTITION,
               on_damage: str = "fail", **filters: Any) -> Any:
    """The hive-partitioned Parquet dataset of xlogtools.scale.dataset, one Dask task per
    range (each writes its own files, temporary names renamed when complete); `_SUCCESS`
    last, by the client, once every task is done. `directory` must be visible to every worker.
    Returns the DatasetResult."""
    from dask.base import compute
    from dask.delayed import delayed

    from .scale.dataset import finish_dataset, prepare_directory, write_partition

    root = prepare_directory(directory)
    opts = ReadOptions(filter=record_filter(**filters), on_damage=on_damage)
    parts = plan_partitions(paths, start=start, end=end, timeline=timeline,
                            segments_per_partition=segments_per_partition)
    tasks = [delayed(write_partition)(p, str(root), tuple(partition_by), opts) for p in parts]
    done = list(compute(*tasks))
    return finish_dataset(root, len(parts), done, partition_by)
