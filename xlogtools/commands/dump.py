"""`xlogtools dump`: decode WAL records into readable lines."""
from __future__ import annotations

import sys

import click

from ..lsn import Lsn
from . import LSN, handled


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("-s", "--start", type=LSN, help="First record at or after this LSN.")
@click.option("-e", "--end", type=LSN, help="Stop before records ending after this LSN.")
@click.option("-t", "--timeline", type=int, help="Timeline to read (default: the newest found).")
@click.option("-n", "--limit", type=int, help="Stop after this many records.")
@click.option("-b", "--bkp-details", is_flag=True, help="Show each block reference on its own line.")
@handled
def dump(paths: tuple[str, ...], start: Lsn | None, end: Lsn | None, timeline: int | None,
         limit: int | None, bkp_details: bool) -> None:
    """Decode WAL records into readable lines.

    PATHS are segment files and/or directories (a data directory means its pg_wal; with no
    PATHS, $PGDATA). Reading stops at the end of valid WAL, which is reported on stderr.

    \b
    Example:
      xlogtools dump fixtures/pg15/wal -n 10
    """
    from ..export.text import dump_lines

    status = dump_lines(list(paths), sys.stdout, start=start, end=end, timeline=timeline,
                        limit=limit, bkp_details=bkp_details)
    sys.exit(status)
