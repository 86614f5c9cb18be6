"""Shared pieces of the command line: parameter types and error handling.

Each command is a module of this package defining one click command (named like the module),
thin over a library function; `xlogtools.cli` loads a command's module only when it runs.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from ..errors import UsageError, XlogError
from ..lsn import Lsn


class LsnParam(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    name = "LSN"

    def convert(self, value: Any, param: Any, ctx: Any) -> Lsn:
        if isinstance(value, Lsn):
            return value
        try:
            return Lsn(str(value))
        except ValueError:
            self.fail(f"invalid LSN {value!r}: expected X/X in hexadecimal, e.g. 0/16B3748",
                      param, ctx)


LSN = LsnParam()


def handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and exit 1 (2 for UsageError); a closed pipe
    ends quietly; never a traceback for an XlogError."""

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
            try:
                sys.stdout = None
            finally:
                sys.exit(0)
        except KeyboardInterrupt:
            click.echo("xlogtools: interrupted", err=True)
            sys.exit(130)

    return wrapper


def load_catalog(catalog_path: str | None, pgdata: str | None, dbname: str | None,
                 required: bool = True) -> Any:
    """The Catalog of `--catalog FILE` or `--pgdata DIR` (one of them; `--dbname` picks the
    database of a data directory); what reading the files skipped goes to stderr as warnings."""
    if catalog_path and pgdata:
        raise UsageError("give --catalog FILE or --pgdata DIR, not both")
    if dbname and not pgdata:
        raise UsageError("--dbname picks a database of --pgdata DIR")
    if catalog_path:
        from ..replay.catalog import Catalog

        return Catalog.load(catalog_path)
    if pgdata:
        from ..replay.datadir_catalog import catalog_from_datadir

        problems: list[str] = []
        cat = catalog_from_datadir(pgdata, dbname, problems)
        for p in problems:
            click.echo(f"xlogtools: warning: {p}", err=True)
        return cat
    if required:
        raise UsageError("give --catalog FILE or --pgdata DIR")
    return None
