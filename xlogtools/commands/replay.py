"""`xlogtools replay`: row changes with old and new values, reconstructed from WAL."""
from __future__ import annotations

import click

from ..lsn import Lsn
from . import LSN, handled, warn


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--catalog", "catalog_path", type=click.Path(dir_okay=False),
              help="Catalog snapshot written by `xlogtools catalog`.")
@click.option("--pgdata", type=click.Path(file_okay=False),
              help="Read the catalog from this (stopped, crashed or copied) data directory "
                   "instead of --catalog; never written to.")
@click.option("--dbname", metavar="NAME",
              help="With --pgdata: the database whose tables to decode (needed when there "
                   "are several).")
@click.option("--schema-history/--no-schema-history", default=True, show_default=True,
              help="With --pgdata: decode each change with the schema in force at its LSN, "
                   "following the system catalogs through the WAL (docs/catalog.md); "
                   "--no-schema-history decodes everything with the files' catalog.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "jsonl", "csv", "sql", "undo-sql", "parquet"]))
@click.option("--table", "tables", multiple=True, metavar="NAME",
              help="Only this table (schema.name or name); repeatable.")
@click.option("-x", "--xid", "xids", type=int, multiple=True,
              help="Only this transaction (top-level or subtransaction xid); repeatable.")
@click.option("-s", "--start", type=LSN, help="First record at or after this LSN.")
@click.option("-e", "--end", type=LSN, help="Stop before records ending after this LSN.")
@click.option("-t", "--timeline", type=int, help="Timeline to read (default: the newest).")
@click.option("--all", "include_all", is_flag=True,
              help="Also aborted and in-progress transactions, marked by status.")
@click.option("--all-relations", is_flag=True,
              help="Also changes to relations the catalog does not have (system catalogs, "
                   "tables made after the snapshot), as raw tuples; by default they are "
                   "skipped and counted on stderr.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal and the run is long).")
@click.option("--timezone", default="UTC", show_default=True,
              help="Time zone for timestamptz values (an IANA name).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output file (needed for parquet; default stdout).")
@handled
def replay(paths: tuple[str, ...], catalog_path: str | None, pgdata: str | None,
           dbname: str | None, schema_history: bool, fmt: str, tables: tuple[str, ...],
           xids: tuple[int, ...], start: Lsn | None, end: Lsn | None, timeline: int | None,
           include_all: bool, all_relations: bool, progress: bool | None, timezone: str,
           output: str | None) -> None:
    """Reconstruct row changes (old and new values) from WAL.

    PATHS are segment files and/or directories (a data directory means its pg_wal). Heap
    records are replayed on the full-page images in the WAL; where an old row cannot be known
    (no image of its block since the start) it says so (old_complete false). Committed
    transactions in commit order; --all adds aborted and in-progress ones.

    \b
    Examples:
      xlogtools replay /var/lib/postgresql/15/main --catalog app.json --format jsonl
      xlogtools replay pg_wal --catalog app.json --format sql -o redo.sql
      xlogtools replay pg_wal --catalog app.json --format undo-sql --table public.orders
      xlogtools replay --pgdata /evidence/oldprimary/data --dbname app --format jsonl
      xlogtools replay --pgdata /evidence/data --no-schema-history   # the files' schema only
    """
    from ..replay.run import ReplayOptions, write_replay

    opts = ReplayOptions(format=fmt, output=output, catalog=catalog_path, pgdata=pgdata,
                         dbname=dbname, schema_history=schema_history, tables=tables,
                         xids=xids, start=start, end=end, timeline=timeline,
                         include="all" if include_all else "committed",
                         all_relations=all_relations, progress=progress, timezone=timezone)
    summary = write_replay(paths, opts, warn=warn)
    click.echo(f"xlogtools: {summary}", err=True)
