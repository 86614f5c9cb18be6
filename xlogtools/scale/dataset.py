"""A hive-partitioned Parquet dataset of WAL records, written range by range
(`xlogtools dump --format parquet --partition-by timeline,segment -o DIR`).

    DIR/timeline=1/segment=000000010000000000000003/part-000000.parquet
    DIR/_SUCCESS

Each segment range (xlogtools.scale.partition) is written by one task, in its own files: a
file is written under a temporary name (`.part-*.tmp`, which readers skip) and renamed when
complete, so a reader never sees half a file; `_SUCCESS` (a JSON summary) is written last, when
every range is done. The files hold every column of the record schema with its own types (the
directory names repeat the partition columns for pruning): DuckDB reads the dataset with
`read_parquet('DIR/**/*.parquet', hive_partitioning=true)`, pyarrow/pandas/Dask with
`partitioning=xlogtools.scale.dataset.partitioning()` (or none), Spark with
`recursiveFileLookup` (see docs/scale.md).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError, UsageError
from ..export import rows
from ..lsn import Lsn
from .partition import (DEFAULT_SEGMENTS_PER_PARTITION, DamagedRange, ReadOptions, WalPartition,
                        plan_partitions, read_partition)

PARTITION_KEYS = ("timeline", "segment")  # the columns a dataset can be partitioned by
ROW_GROUP_ROWS = 20000
SUCCESS = "_SUCCESS"


def parse_partition_by(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if k not in PARTITION_KEYS]
    if not keys or bad or len(set(keys)) != len(keys):
        raise UsageError(f"invalid value {text!r} for option --partition-by: a comma-separated "
                         f"list of {', '.join(PARTITION_KEYS)}")
    return keys


def partitioning(partition_by: Sequence[str] = PARTITION_KEYS) -> Any:
    """The pyarrow hive partitioning of a dataset, typed as the columns in the files are (for
    pyarrow.dataset, pandas.read_parquet(partitioning=...), dask read_parquet)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = rows.arrow_schema()
    return ds.partitioning(pa.schema([schema.field(k) for k in partition_by]), flavor="hive")


@dataclass
class PartWritten:
    """What one range's task wrote."""

    partition: int
    records: int = 0
    files: list[str] = field(default_factory=list)
    skipped: list[DamagedRange] = field(default_factory=list)


@dataclass
class DatasetResult:
    directory: str
    records: int
    partitions: int
    files: int
    skipped: list[DamagedRange]


class _Files:
    """Open Parquet files of one task, by partition key; batches gathered to row groups."""

    def __init__(self, root: Path, partition_by: Sequence[str], index: int) -> None:
        self.root = root
        self.keys = partition_by
        self.index = index
        self.open: dict[tuple[str, ...], tuple[Any, Path, Path, list[Any]]] = {}
        self.written: list[str] = []

    def write(self, batch: Any) -> None:
        if not batch.num_rows:
            return
        if not self.keys:
            self._add((), batch)
            return
        cols = [batch.column(k).to_pylist() for k in self.keys]
        vals = list(zip(*cols))
        # records are in LSN order: each key's rows are runs, mostly the whole batch
        run_start = 0
        for i in range(1, len(vals) + 1):
            if i == len(vals) or vals[i] != vals[run_start]:
                self._add(tuple(str(v) for v in vals[run_start]),
                          batch.slice(run_start, i - run_start))
                run_start = i

    def _add(self, key: tuple[str, ...], batch: Any) -> None:
        import pyarrow.parquet as pq

        entry = self.open.get(key)
        if entry is None:
            d = self.root.joinpath(*[f"{k}={v}" for k, v in zip(self.keys, key)])
            d.mkdir(parents=True, exist_ok=True)
            final = d / f"part-{self.index:06d}.parquet"
            tmp = d / f".part-{self.index:06d}.parquet.tmp"
            w = pq.ParquetWriter(tmp, batch.schema, compression="zstd")
            entry = self.open[key] = (w, tmp, final, [])
        entry[3].append(batch)
        if sum(b.num_rows for b in entry[3]) >= ROW_GROUP_ROWS:
            self._flush(entry)

    @staticmethod
    def _flush(entry: tuple[Any, Path, Path, list[Any]]) -> None:
        import pyarrow as pa

        if entry[3]:
            entry[0].write_table(pa.Table.from_batches(entry[3]))
            entry[3].clear()

    def close(self) -> None:
        for entry in self.open.values():
            self._flush(entry)
            entry[0].close()
            os.replace(entry[1], entry[2])  # complete: now visible to readers
            self.written.append(str(entry[2]))
        self.open.clear()

    def abort(self) -> None:
        for entry in self.open.values():
            entry[0].close()
            entry[1].unlink(missing_ok=True)
        self.open.clear()


def write_partition(part: WalPartition, directory: str | os.PathLike[str],
                    partition_by: Sequence[str] = PARTITION_KEYS,
                    opts: ReadOptions | None = None) -> PartWritten:
    """One range's records into the dataset at `directory` (any engine can run this per
    partition; every file appears complete or not at all). Raises WalRangeDamage on damage
    unless opts.on_damage is "skip"."""
    out = PartWritten(part.index)
    files = _Files(Path(directory), partition_by, part.index)
    try:
        for batch in read_partition(part, opts, out.skipped):
            files.write(batch)
            out.records += batch.num_rows
    except BaseException:
        files.abort()
        raise
    files.close()
    out.files = files.written
    return out


def write_dataset(paths: Sequence[str | os.PathLike[str]] | str, directory: str | os.PathLike[str],
                  *, partition_by: Sequence[str] = PARTITION_KEYS, jobs: int = 1,
                  start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
                  timeline: int | None = None, opts: ReadOptions | None = None,
                  segments_per_partition: int | None = None) -> DatasetResult:
    """The records of `paths` (as dump reads them) as a hive-partitioned Parquet dataset in
    `directory` (absent or empty), range by range in `jobs` processes; `_SUCCESS` last.
    segments_per_partition: default 4, fewer when that would leave fewer than 4 ranges per
    job (as dump --jobs cuts its ranges)."""
    opts = opts or ReadOptions()
    if opts.columns is not None:
        raise UsageError("a dataset holds every column of the record schema")
    for k in partition_by:
        if k not in PARTITION_KEYS:
            raise UsageError(f"cannot partition by {k!r}: one of {', '.join(PARTITION_KEYS)}")
    root = prepare_directory(directory)
    per = segments_per_partition
    parts = plan_partitions(paths, start=start, end=end, timeline=timeline,
                            segments_per_partition=per or 1)
    if per is None:
        per = max(1, min(DEFAULT_SEGMENTS_PER_PARTITION, len(parts) // (max(jobs, 1) * 4)))
        if per > 1:
            parts = plan_partitions(paths, start=start, end=end, timeline=timeline,
                                    segments_per_partition=per)
    done: list[PartWritten] = []
    if jobs <= 1 or len(parts) < 2:
        for p in parts:
            done.append(write_partition(p, root, partition_by, opts))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(write_partition, p, str(root), tuple(partition_by), opts)
                       for p in parts]
            wait(futures, return_when=FIRST_EXCEPTION)
            for f in futures:
                if f.done() and f.exception() is not None:
                    for g in futures:
                        g.cancel()
                    raise f.exception()  # type: ignore[misc]
            done = [f.result() for f in futures]
    return finish_dataset(root, len(parts), done, partition_by)


def prepare_directory(directory: str | os.PathLike[str]) -> Path:
    """The dataset's directory, created; refused when it exists and is not empty."""
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"output directory \"{root}\" exists and is not empty", file=str(root))
    root.mkdir(parents=True, exist_ok=True)
    return root


def finish_dataset(directory: str | os.PathLike[str], partitions: int, done: list[PartWritten],
                   partition_by: Sequence[str]) -> DatasetResult:
    """After every range is written (by write_partition, in any engine): `_SUCCESS`, with
    what was written and the ranges skipped, written last (temporary name, then renamed)."""
    root = Path(directory)
    done = sorted(done, key=lambda w: w.partition)
    if len(done) != partitions:
        raise InputError(f"{len(done)} of {partitions} ranges written: no {SUCCESS}",
                         file=str(root))
    skipped = [d for w in done for d in w.skipped]
    result = DatasetResult(str(root), sum(w.records for w in done), partitions,
                           sum(len(w.files) for w in done), skipped)
    summary = {"format": "xlogtools-dataset/1", "records": result.records,
               "partitions": result.partitions, "files": result.files,
               "partition_by": list(partition_by),
               "skipped": [d.as_dict() for d in skipped]}
    tmp = root / f".{SUCCESS}.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, root / SUCCESS)
    return result
