"""`xlogtools catalog`: snapshot what replay needs, from a live server or a data directory."""
from __future__ import annotations

import sys

import click

from . import handled


@click.command()
@click.option("-d", "--dbname", "dbname", metavar="CONNSTR|NAME",
              help="Connection string or URI of the database whose tables to decode; with "
                   "--pgdata, the name of the database (needed when there are several).")
@click.option("--pgdata", type=click.Path(file_okay=False),
              help="Read the catalog from the files of this stopped, crashed or copied data "
                   "directory, with no server (it is only read, never written).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the JSON snapshot ('-' for stdout).")
@handled
def catalog(dbname: str | None, pgdata: str | None, output: str) -> None:
    """Snapshot relations, columns and types of one database for `replay`.

    \b
    Examples:
      xlogtools catalog -d "host=/var/run/postgresql dbname=app" -o app-catalog.json
      xlogtools catalog --pgdata /backup/oldprimary/data -d app -o app-catalog.json
    """
    import json

    from ..errors import UsageError

    if pgdata:
        from ..replay.datadir_catalog import catalog_from_datadir

        problems: list[str] = []
        cat = catalog_from_datadir(pgdata, dbname, problems)
        for p in problems:
            click.echo(f"xlogtools: warning: {p}", err=True)
    elif dbname:
        from ..replay.catalog import capture

        cat = capture(dbname)
    else:
        raise UsageError("give -d/--dbname CONNSTR (a live server) or --pgdata DIR")
    if output == "-":
        json.dump(cat.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        cat.save(output)
        click.echo(f"catalog of database {cat.database} ({len(cat.relations)} relations, "
                   f"PostgreSQL {cat.server_version_num}) written to {output}", err=True)
