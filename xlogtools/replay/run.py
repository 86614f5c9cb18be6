"""A whole replay run, as `xlogtools replay` does it: the catalog from a snapshot file or a
data directory (with the schema history through the WAL, or the files' catalog only), the
row changes written in one of the writers' formats, the warnings handed to the caller as
they come, and a summary of what was read.

    from xlogtools.replay.run import ReplayOptions, write_replay

    summary = write_replay(["pg_wal"], ReplayOptions(catalog="app.json", format="jsonl",
                                                     output="changes.jsonl"), warn=print)
    print(summary)      # "12 row change(s) from 3456 records; WAL read ends at ..."
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import UsageError
from ..lsn import Lsn
from ..parse.api import PathArg
from ..parse.reader import EndOfWal
from .catalog_source import load_catalog
from .engine import Replay


@dataclass(frozen=True)
class ReplayOptions:
    """What `xlogtools replay` takes (see its --help for each option). `catalog` is a snapshot
    file, `pgdata` a data directory to read the catalog from instead (and, with no WAL paths,
    its pg_wal); with `schema_history` each change of a data directory's WAL is decoded with
    the schema in force at its LSN."""

    format: str = "table"
    output: str | None = None
    catalog: PathArg | None = None
    pgdata: PathArg | None = None
    dbname: str | None = None
    schema_history: bool = True
    tables: Iterable[str] = ()
    xids: Iterable[int] = ()
    start: Lsn | None = None
    end: Lsn | None = None
    timeline: int | None = None
    include: str = "committed"  # or "all": aborted and in-progress transactions too
    all_relations: bool = False
    progress: bool | None = None  # None: when stderr is a terminal and the run is long
    timezone: str = "UTC"

    def validate(self) -> None:
        """The checks that need no file: Parquet is written to a file only, and the time zone
        must be one the zone database knows."""
        if self.format == "parquet" and not self.output:
            raise UsageError("--format parquet needs -o/--output")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise UsageError(f"unknown time zone {self.timezone!r}") from None


@dataclass(frozen=True)
class ReplaySummary:
    """What a run wrote (changes, or SQL statements) out of how many records, and where and
    why the WAL read ended (None where it stopped at `end`)."""

    changes: int
    records: int
    end_of_wal: EndOfWal | None

    def __str__(self) -> str:
        eow = self.end_of_wal
        where = f"; WAL read ends at {eow.lsn} ({eow.reason})" if eow is not None else ""
        return f"{self.changes} row change(s) from {self.records} records{where}"


def write_replay(paths: Iterable[PathArg], options: ReplayOptions, *,
                 warn: Callable[[str], None] | None = None) -> ReplaySummary:
    """Replay the WAL in `paths` (none: the data directory `options.pgdata`) and write its
    row changes as `options` say. Warnings go to `warn` (none: dropped): those known before
    the first change (the catalog's, a mismatch of catalog and WAL) before anything is
    written, the others (skipped relations, damaged records) at the end."""
    from .writers import write_changes

    options.validate()
    wal = list(paths) or ([options.pgdata] if options.pgdata else [])
    source: Any
    if options.pgdata and options.schema_history and not options.catalog:
        from .schema_history import SchemaHistory

        source = SchemaHistory.from_datadir(options.pgdata, wal, dbname=options.dbname,
                                            start=options.start, end=options.end,
                                            timeline=options.timeline)
        cat = source.start_catalog  # its problems come with the replay's warnings
    else:
        cat = source = load_catalog(options.catalog, options.pgdata, options.dbname,
                                    warn=warn)
    rp = Replay(wal, source, start=options.start, end=options.end, timeline=options.timeline,
                tables=options.tables, xids=options.xids, include=options.include,
                timezone=options.timezone, all_relations=options.all_relations,
                progress=options.progress)
    shown = _warn(rp.warnings, 0, warn)
    n = write_changes(rp, options.format, options.output, catalog=cat,
                      timezone=options.timezone)
    _warn(rp.warnings, shown, warn)
    return ReplaySummary(n, rp.stats["records"], rp.end_of_wal)


def _warn(warnings: list[str], shown: int, warn: Callable[[str], None] | None) -> int:
    """Hand the warnings from index `shown` on to `warn`; the count handed so far."""
    if warn is not None:
        for w in warnings[shown:]:
            warn(w)
    return len(warnings)


__all__ = ["ReplayOptions", "ReplaySummary", "write_replay"]
