"""Row-level replay of heap records on full-page images (the startup process, for forensics):
row changes with old and new values, transaction outcomes, redo/undo SQL.

    from xlogtools.replay import Catalog, Replay, replay_changes, read_transactions
    from xlogtools.replay import SchemaHistory   # the catalog as of any LSN (--pgdata)
"""
from __future__ import annotations

from typing import Any

__all__ = ["Catalog", "Replay", "RowChange", "SchemaHistory", "Transaction", "capture",
           "changes_by_xid", "checkpoint_redo_before", "read_transactions", "replay_changes"]


def __getattr__(name: str) -> Any:
    if name in ("Catalog", "capture"):
        from . import catalog

        return getattr(catalog, name)
    if name in ("Replay", "RowChange", "Transaction", "changes_by_xid", "checkpoint_redo_before",
                "read_transactions", "replay_changes"):
        from . import api

        return getattr(api, name)
    if name == "SchemaHistory":
        from .schema_history import SchemaHistory

        return SchemaHistory
    raise AttributeError(name)
