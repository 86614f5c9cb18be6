"""`xlogtools catalog`: snapshot what replay needs from a live server."""
from __future__ import annotations

import sys

import click

from . import handled


@click.command()
@click.option("-d", "--dbname", "conninfo", required=True, metavar="CONNSTR",
              help="Connection string or URI of the database whose tables to decode.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the JSON snapshot ('-' for stdout).")
@handled
def catalog(conninfo: str, output: str) -> None:
    """Snapshot relations, columns and types of one database for `replay`.

    \b
    Example:
      xlogtools catalog -d "host=/var/run/postgresql dbname=app" -o app-catalog.json
    """
    import json

    from ..replay.catalog import capture

    cat = capture(conninfo)
    if output == "-":
        json.dump(cat.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        cat.save(output)
        click.echo(f"catalog of database {cat.database} ({len(cat.relations)} relations, "
                   f"PostgreSQL {cat.server_version_num}) written to {output}", err=True)
