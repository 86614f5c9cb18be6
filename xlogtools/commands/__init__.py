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


def warn(text: str) -> None:
    """A warning of a library function on stderr, as every command writes one."""
    click.echo(f"xlogtools: warning: {text}", err=True)


def load_catalog(catalog_path: str | None, pgdata: str | None, dbname: str | None,
                 required: bool = True) -> Any:
    """The Catalog of `--catalog FILE` or `--pgdata DIR` (replay.catalog_source.load_catalog);
    what reading the files skipped goes to stderr as warnings."""
    from ..replay.catalog_source import load_catalog as load

    return load(catalog_path, pgdata, dbname, required=required, warn=warn)
