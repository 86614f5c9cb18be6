"""A row change as the replay reports it (DESIGN.md 4.4): `RowChange`, what the engine
(`engine.Replay`) yields and the writers (`writers.py`, `sql.py`) take.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..lsn import Lsn


@dataclass
class RowChange:
    """One row change (DESIGN.md 4.4), plus `relation`, `new_complete`, `notes` and `raw`."""

    lsn: Lsn
    xid: int
    subxid: int | None
    op: str
    schema: str | None
    table: str | None
    old: dict[str, str | None] | None
    new: dict[str, str | None] | None
    old_complete: bool
    new_complete: bool = True
    commit_lsn: Lsn | None = None
    commit_time: str | None = None
    status: str = "in_progress"
    relation: str = ""
    notes: list[str] = field(default_factory=list)
    raw: dict[str, str | None] | None = None
    # decoded with the files' catalog where the schema history could not tell the one in
    # force at its LSN (docs/catalog.md, "Schema as of an LSN")
    schema_uncertain: bool = False
    # not serialized: for SQL rendering
    key: list[str] = field(default_factory=list, repr=False)
    same: set[str] = field(default_factory=set, repr=False)  # columns whose stored bytes
    # are identical in old and new (an unchanged TOAST pointer among them)
    writer_xid: int = field(default=0, repr=False)
    tid: tuple[int, int] = field(default=(0, 0), repr=False)
    hot: bool = field(default=False, repr=False)  # a HOT update: no indexed column changed
    # columns of old/new shown as raw bytes (undecodable): no SQL is written from them
    raw_columns: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lsn": str(self.lsn), "xid": self.xid, "subxid": self.subxid, "op": self.op,
            "schema": self.schema, "table": self.table, "old": self.old, "new": self.new,
            "old_complete": self.old_complete, "new_complete": self.new_complete,
            "commit_lsn": str(self.commit_lsn) if self.commit_lsn is not None else None,
            "commit_time": self.commit_time, "status": self.status,
            "relation": self.relation, "notes": self.notes, "raw": self.raw,
            "schema_uncertain": self.schema_uncertain,
        }


def relstr(rel: tuple[int, int, int]) -> str:
    """A relation's file locator as PostgreSQL writes it: tablespace/database/relfilenode."""
    return f"{rel[0]}/{rel[1]}/{rel[2]}"


__all__ = ["RowChange", "relstr"]
