"""`xlogtools dump`: decode WAL records as text, pg_waldump text, JSON lines, CSV or Parquet."""
from __future__ import annotations

import sys

import click

from ..lsn import Lsn
from . import LSN, handled, warn

FORMATS = ("text", "waldump", "table", "jsonl", "csv", "parquet")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-s", "--start", type=LSN, help="First record at or after this LSN.")
@click.option("-e", "--end", type=LSN, help="Stop before records ending after this LSN.")
@click.option("-t", "--timeline", type=int, help="Timeline to read (default: the newest found; "
              "earlier segments are read from its ancestors, per its history file).")
@click.option("-r", "--rmgr", "rmgrs", multiple=True, metavar="NAME",
              help="Only records of this resource manager (repeatable), e.g. Heap, Btree.")
@click.option("-x", "--xid", type=int, help="Only records of this transaction id.")
@click.option("-R", "--relation", metavar="T/D/R",
              help="Only records touching blocks of this relation (tablespace/db/relfilenode).")
@click.option("-B", "--block", type=int, help="... only this block of it (with -R).")
@click.option("-F", "--fork", metavar="FORK", help="... only blocks of this fork: main, fsm, vm, init.")
@click.option("-w", "--fullpage", is_flag=True, help="Only records with a full-page image.")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="waldump: exactly pg_waldump's text for the WAL's major version.")
@click.option("-o", "--output", metavar="PATH", help="Write to PATH (required for parquet).")
@click.option("-b", "--bkp-details", is_flag=True, help="Block references one per line, with image details.")
@click.option("-z", "--stats", type=click.Choice(["rmgr", "record"]), is_flag=False,
              flag_value="rmgr", default=None,
              help="Print statistics instead of records (--stats=record: per record type).")
@click.option("-f", "--follow", is_flag=True, help="At the end of valid WAL, wait for more.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Decode segment ranges in this many processes (same output, same order).")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal and the run is long).")
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
              help="Catalog snapshot (xlogtools catalog): adds the relation column, the "
                   "schema.name of each record's first block (not with --format waldump).")
@click.option("--pgdata", type=click.Path(file_okay=False),
              help="... or read the catalog from this data directory (never written to).")
@click.option("--dbname", metavar="NAME", help="With --pgdata: the database to name.")
@click.option("--partition-by", "partition_by", metavar="KEYS",
              help="With --format parquet: -o is a directory, written as a hive-partitioned "
                   "dataset by KEYS (timeline,segment), range by range (docs/scale.md).")
@handled
def dump(paths: tuple[str, ...], start: Lsn | None, end: Lsn | None, timeline: int | None,
         rmgrs: tuple[str, ...], xid: int | None, relation: str | None, block: int | None,
         fork: str | None, fullpage: bool, limit: int | None, fmt: str, output: str | None,
         bkp_details: bool, stats: str | None, follow: bool, jobs: int,
         progress: bool | None, catalog_path: str | None, pgdata: str | None,
         dbname: str | None, partition_by: str | None) -> None:
    """Decode WAL records.

    PATHS are segment files and/or directories (a data directory means its pg_wal; archives of
    Barman, pgBackRest and WAL-G; .partial, .gz, .zst, .lz4 segments); with no PATHS,
    $PGDATA. Reading stops at the end of valid WAL, which is reported on stderr, or at --end /
    --limit (exit 0). Exit status at the end of valid WAL: with --format waldump or --stats 1,
    as pg_waldump; for the other formats 0 where the WAL ends at its written tail (a zeroed
    or recycled page, a zero length, a torn last record: where crash recovery stops too) and
    1 where valid WAL of the timeline lies beyond the stop (damage or a missing segment in the
    middle).

    \b
    Examples:
      xlogtools dump fixtures/pg15/wal -n 10
      xlogtools dump $PGDATA --format waldump -r Heap -r Heap2 -s 0/3000000
      xlogtools dump /archive --format parquet -o wal.parquet --jobs 2
      xlogtools dump pg_wal --stats=record
      xlogtools dump pg_wal --format jsonl --catalog app.json
    """
    from ..export.dump import DumpOptions
    from ..export.filters import record_filter
    from ..export.run import run_dump

    flt = record_filter(rmgrs, xid, relation, block, fork, fullpage)
    opts = DumpOptions(format=fmt, output=output, start=start, end=end, timeline=timeline,
                       limit=limit, filter=flt, bkp_details=bkp_details, stats=stats, jobs=jobs,
                       follow=follow, progress=progress)
    ended = run_dump(paths, opts, partition_by=partition_by, catalog=catalog_path,
                     pgdata=pgdata, dbname=dbname, warn=warn)
    if ended.message is not None:
        sys.stdout.flush()
        click.echo(f"xlogtools: {ended.message}", err=True)
    sys.exit(ended.exit_status)
