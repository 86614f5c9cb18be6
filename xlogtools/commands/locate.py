"""`xlogtools locate`: the end of valid WAL per timeline, and why it ends there."""
from __future__ import annotations

import json
import sys

import click

from ..errors import XlogError
from . import handled


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True,
              help="Print the result (or an error) as one JSON object (docs/locate.md).")
@click.option("-t", "--timeline", type=int, help="Only this timeline (default: every one found).")
@click.option("--scan", type=click.Choice(["recovery", "all", "tail"]), default=None,
              help="Which records to check: from the last checkpoint's redo point, as crash "
                   "recovery reads (the default); from the first segment, as pg_waldump; or "
                   "only the tail (as --quick).")
@click.option("--quick", is_flag=True,
              help="Check only the last records (about 1 MB), not everything from the redo "
                   "point: damage in the middle of the WAL is not found. Same as --scan tail.")
@handled
def locate(paths: tuple[str, ...], as_json: bool, timeline: int | None, scan: str | None,
           quick: bool) -> None:
    """Find the end of valid WAL in pg_wal, a data directory or an archive.

    PATHS are segment files and/or directories (a data directory means its pg_wal; several
    directories may be given, e.g. an archive and pg_wal; with no PATHS, $PGDATA). Reports
    per timeline where the next record would start, the last record, why the WAL ends there,
    the last checkpoint and commit, recycled segments beyond the end and missing segments.
    Every record from the last checkpoint's redo point on is checked (CRC, prev-link,
    headers), so the end is where crash recovery would stop, damage in the middle included.

    \b
    Example:
      xlogtools locate /var/lib/postgresql/15/main
      xlogtools locate /archive/wal /var/lib/postgresql/15/main/pg_wal --json
    """
    from ..locate import format_summary, locate as locate_wal

    if quick and scan not in (None, "tail"):
        raise click.UsageError("--quick is --scan tail; it cannot go with --scan " + scan)
    scan = "tail" if quick else scan or "recovery"
    try:
        result = locate_wal(list(paths), timeline=timeline, scan=scan)
    except XlogError as exc:
        if as_json:
            click.echo(json.dumps({"error": {
                "type": type(exc).__name__, "message": str(exc), "file": exc.file,
                "offset": exc.offset, "lsn": None if exc.lsn is None else str(exc.lsn)}}))
        raise
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(format_summary(result, paths))
    sys.exit(0)
