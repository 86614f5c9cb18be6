"""`xlogtools gap`: what a standby never got from its primary."""
from __future__ import annotations

import sys

import click

from . import handled, load_catalog


@click.command()
@click.option("--primary", "primary", required=True, multiple=True, metavar="PATH|CONNSTR",
              help="The old primary's pg_wal, data directory or archive (repeatable).")
@click.option("--standby", "standby", required=True, multiple=True, metavar="PATH|CONNSTR",
              help="The standby's (new primary's) pg_wal or data directory, or a connection "
                   "string of a live standby.")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False),
              help="Catalog snapshot (xlogtools catalog) to reconstruct the lost rows.")
@click.option("--pgdata", type=click.Path(exists=True, file_okay=False),
              help="Read the catalog from this data directory (e.g. the old primary's, never "
                   "started again) instead of --catalog; never written to.")
@click.option("--dbname", metavar="NAME", help="With --pgdata: the database to decode.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sql", "html"]),
              default="text", show_default=True)
@click.option("-o", "--output", metavar="PATH", help="Write the report to PATH.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal and the run is long).")
@handled
def gap(primary: tuple[str, ...], standby: tuple[str, ...], catalog: str | None,
        pgdata: str | None, dbname: str | None, fmt: str,
        output: str | None, progress: bool | None) -> None:
    """Compare primary and standby after a crash or failover.

    Says where the standby's WAL ends (or where a promoted standby diverged, as pg_rewind
    would), and lists every transaction the primary committed that the standby never got,
    with commit times (the data-loss window) and, with --catalog, the rows and SQL to put
    them back.

    \b
    Examples:
      xlogtools gap --primary /backup/oldprimary/pg_wal --standby /var/lib/postgresql/15/main
      xlogtools gap --primary old/pg_wal --standby 'host=standby1 user=postgres' --format json
      xlogtools gap --primary old/pg_wal --standby new/pg_wal --catalog cat.json --format sql
    """
    from ..gap import gap_report

    cat = load_catalog(catalog, pgdata, dbname, required=False)
    # with --pgdata the lost rows are decoded with the schema in force at their LSN
    # (SchemaHistory over the primary's WAL: DDL among the lost transactions)
    text = gap_report(primary, standby, catalog=cat,
                      history_from=(pgdata, dbname) if pgdata and cat is not None else None,
                      fmt=fmt, progress=progress)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
