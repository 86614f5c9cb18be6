"""xlogtools: a toolkit for PostgreSQL's write-ahead log (13-18).

The public library surface is small and importable without heavy dependencies:

    from xlogtools import Lsn, read_records, open_wal

    for rec in read_records(["/var/lib/postgresql/15/main/pg_wal"]):
        print(rec.lsn, rec.rmgr_name, rec.tot_len)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lsn import Lsn
from .errors import XlogError

__version__ = "0.1.0"
__all__ = ["Lsn", "XlogError", "read_records", "open_wal", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .parse.api import open_wal, read_records


def __getattr__(name: str) -> Any:
    # Keep `import xlogtools` cheap: the reader is imported on first use.
    if name in ("read_records", "open_wal"):
        from .parse import api

        return getattr(api, name)
    raise AttributeError(name)
