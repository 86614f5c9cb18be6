"""Command line: a click group whose commands live in xlogtools.commands.<name> and are
imported only when run (so `xlogtools --help` stays fast).

Exit status: 0 success, 1 handled error (message on stderr, no traceback), 2 bad usage.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from . import __version__

# name -> one-line help. The module xlogtools.commands.<name> defines a click command <name>.
COMMANDS: dict[str, str] = {
    "dump": "Decode WAL records (text, pg_waldump text, JSON lines, CSV, Parquet).",
    "locate": "Find the end of valid WAL in pg_wal or an archive, and why it ends there.",
    "receive": "Stream WAL from a server into an archive directory (like pg_receivewal).",
    "serve": "Serve an archive (or relay a live primary) to standbys over replication.",
    "catalog": "Snapshot what replay needs (relations, columns, types) from a live server.",
    "replay": "Reconstruct row changes (old and new values) from WAL, as rows or SQL.",
    "gap": "Compare primary and standby after a failure: divergence, lost transactions.",
}


class _NoPandas:
    """pyarrow, when pandas is installed, imports it at the first pa.array() call, only to
    recognise pandas objects and nulls among the values: about 0.2 s of CPU and 40 MB per
    process that no command uses (pandas serves the Dask reader, xlogtools.dask, which runs in
    processes of its own). The program (run()) refuses it; pyarrow then goes without."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("xlogtools commands do not use pandas")
        return None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if self._available(n)]

    @staticmethod
    def _available(name: str) -> bool:
        return importlib.util.find_spec(f"xlogtools.commands.{name}") is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module = importlib.import_module(f"xlogtools.commands.{name}")
        cmd: click.Command = getattr(module, name)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = [(n, COMMANDS[n]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xlogtools")
def main() -> None:
    """xlogtools: decode, locate, receive, serve and replay PostgreSQL WAL (13-18).

    \b
    Example:
      xlogtools dump /var/lib/postgresql/15/main/pg_wal -n 20
    """


def run() -> None:
    """The program (console script, `python -m xlogtools.cli`): main() without pandas
    (_NoPandas), and numpy's BLAS on one thread."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas())
    # numpy (which pyarrow loads) starts an OpenBLAS thread per core that no command uses and
    # that spins beside the decoder (about 2% of a dump's CPU)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()


if __name__ == "__main__":  # pragma: no cover
    run()
