"""The library calls behind the CLI: open WAL from paths and iterate over its records."""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from ..lsn import Lsn
from .reader import EndOfWal, WalReader
from .record import Record
from .source import WalSource

PathArg = str | os.PathLike[str]


def open_wal(paths: Sequence[PathArg] | PathArg | WalSource | None = None, *,
             start: Lsn | str | int | None = None,
             end: Lsn | str | int | None = None, timeline: int | None = None,
             verify_crc: bool = True, until: Lsn | int | None = None) -> WalReader:
    """A WalReader over segment files and/or directories (a data directory means its pg_wal;
    no paths: $PGDATA). Iterate it for records; afterwards `reader.end_of_wal` says why it
    stopped. Raises xlogtools.errors.InputError for inputs that are not WAL at all.
    `paths` may also be a WalSource already opened (e.g. a MemorySource of segments held in
    memory)."""
    if isinstance(paths, WalSource):
        source = paths
    else:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        source = WalSource.open(list(paths) if paths else None)
    if isinstance(start, str):
        start = Lsn(start)
    if isinstance(end, str):
        end = Lsn(end)
    return WalReader(source, start=start, end=end, timeline=timeline, verify_crc=verify_crc,
                     until=until)


def read_records(paths: Sequence[PathArg] | PathArg | None = None, **kwargs: object) -> Iterator[Record]:
    """Records of the WAL in `paths` (see open_wal for the options), in LSN order."""
    reader = open_wal(paths, **kwargs)  # type: ignore[arg-type]
    yield from reader


__all__ = ["open_wal", "read_records", "EndOfWal", "Record", "WalReader", "WalSource"]
