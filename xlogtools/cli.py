"""Command line: a click group, each command thin over a library function.

Exit status: 0 success, 1 handled error (message on stderr, no traceback), 2 bad usage.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from . import __version__
from .errors import UsageError, XlogError
from .lsn import Lsn


class LsnParam(click.ParamType):
    name = "LSN"

    def convert(self, value: Any, param: Any, ctx: Any) -> Lsn:
        if isinstance(value, Lsn):
            return value
        try:
            return Lsn(str(value))
        except ValueError:
            self.fail(f"invalid LSN {value!r}: expected X/X in hexadecimal, e.g. 0/16B3748", param, ctx)


LSN = LsnParam()


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and exit 1; a broken pipe ends quietly."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
        except XlogError as exc:
            click.echo(f"xlogtools: error: {exc}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("xlogtools: interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xlogtools")
def main() -> None:
    """xlogtools: decode, locate, receive, serve and replay PostgreSQL WAL (13-18).

    \b
    Example:
      xlogtools dump /var/lib/postgresql/15/main/pg_wal -n 20
    """


@main.command()
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
    from .export.text import dump_lines

    status = dump_lines(list(paths), sys.stdout, start=start, end=end, timeline=timeline,
                        limit=limit, bkp_details=bkp_details)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
