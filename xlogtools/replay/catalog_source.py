"""The catalog named the way the commands name one: a snapshot file (`--catalog FILE`, written
by `xlogtools catalog`) or the files of a data directory (`--pgdata DIR`, with `--dbname` for
its database). `dump`, `replay` and `gap` all take these options; this is their one reading.
"""
from __future__ import annotations

from typing import Callable

from ..errors import UsageError
from ..parse.api import PathArg
from .catalog import Catalog


def load_catalog(catalog_path: PathArg | None = None, pgdata: PathArg | None = None,
                 dbname: str | None = None, *, required: bool = True,
                 warn: Callable[[str], None] | None = None) -> Catalog | None:
    """The Catalog of the snapshot file `catalog_path` or of the data directory `pgdata` (one
    of them; `dbname` picks the database of a data directory). What reading a data directory
    skipped or guessed goes to `warn`, one message each. Without either source: None when not
    `required`, else a UsageError."""
    if catalog_path and pgdata:
        raise UsageError("give --catalog FILE or --pgdata DIR, not both")
    if dbname and not pgdata:
        raise UsageError("--dbname picks a database of --pgdata DIR")
    if catalog_path:
        return Catalog.load(catalog_path)
    if pgdata:
        from .datadir_catalog import catalog_from_datadir

        problems: list[str] = []
        cat = catalog_from_datadir(pgdata, dbname, problems)
        if warn is not None:
            for p in problems:
                warn(p)
        return cat
    if required:
        raise UsageError("give --catalog FILE or --pgdata DIR")
    return None


__all__ = ["load_catalog"]
