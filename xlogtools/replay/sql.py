"""Redo and undo SQL from row changes.

Redo: each committed transaction in commit order, in its own BEGIN/COMMIT, its changes as
INSERT/UPDATE/DELETE keyed by the replica identity or primary key (a table with neither is
matched on every old column, one row at a time via ctid). Undo: the inverse statements, newest
first. Values are the text psql prints, given as quoted literals that PostgreSQL reads back
with the same settings, which the script SETs first. What cannot be written (a value the WAL
read could not reconstruct) becomes a comment that says so; nothing is guessed.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TextIO, cast

from .api import RowChange
from .catalog import Catalog, Relation

if TYPE_CHECKING:
    from .schema_history import SchemaHistory

HEADER = """\
-- {what} written by xlogtools replay from WAL; database {db}
SET client_encoding = '{enc}';
SET standard_conforming_strings = on;
SET TimeZone = '{tz}';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
"""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(v: str | None) -> str:
    if v is None:
        return "NULL"
    return "'" + v.replace("'", "''") + "'"


class SqlWriter:
    """`history` (a SchemaHistory): each change's table as it was at the change's LSN
    (columns, key); else the catalog's table of that name."""

    def __init__(self, catalog: Catalog, timezone: str = "UTC", history: Any = None) -> None:
        self.catalog = catalog
        self.timezone = timezone
        self.history: SchemaHistory | None = history
        self.rels = {(r.schema, r.name): r for r in catalog.relations}

    def header(self, what: str) -> str:
        enc = self.catalog.encoding if self.catalog.encoding != "SQL_ASCII" else "SQL_ASCII"
        return HEADER.format(what=what, db=self.catalog.database, enc=enc, tz=self.timezone)

    # -- statements ---------------------------------------------------------------------------
    def _rel(self, ch: RowChange) -> Relation | None:
        if ch.schema is None or ch.table is None:
            return None
        if self.history is not None and ch.relation.count("/") == 2:
            loc = cast("tuple[int, int, int]", tuple(int(x) for x in ch.relation.split("/")))
            r, _uncertain = self.history.relation_at(loc, ch.lsn, ch.writer_xid)
            if r is not None and (r.schema, r.name) == (ch.schema, ch.table):
                return r
        return self.rels.get((ch.schema, ch.table))

    def _where(self, r: Relation, row: dict[str, str | None], complete: bool
               ) -> str | None:
        """A WHERE clause naming exactly the row, or None when the values are not enough."""
        cols = {c.name: c for c in r.columns if not c.dropped}
        if r.key:
            if not all(k in row for k in r.key):
                return None
            return " AND ".join(f"{ident(k)} = {literal(row[k])}" if row[k] is not None
                                else f"{ident(k)} IS NULL" for k in r.key)
        if not complete:
            return None
        parts = []
        for name, c in cols.items():
            if name not in row:
                return None
            v = row[name]
            if v is None:
                parts.append(f"{ident(name)} IS NULL")
            elif c.type_name == "bpchar":
                parts.append(f"{ident(name)} = {literal(v)}")
            else:
                parts.append(f"{ident(name)}::text = {literal(v)}")
        cond = " AND ".join(parts)
        return (f"ctid = (SELECT ctid FROM {self._qname(r)} WHERE {cond} LIMIT 1)")

    @staticmethod
    def _qname(r: Relation) -> str:
        return f"{ident(r.schema)}.{ident(r.name)}"

    def _insert(self, r: Relation, row: dict[str, str | None]) -> str:
        cols = [c for c in r.columns if not c.dropped and not c.generated and c.name in row]
        over = " OVERRIDING SYSTEM VALUE" if any(c.identity == "a" for c in cols) else ""
        return (f"INSERT INTO {self._qname(r)} ({', '.join(ident(c.name) for c in cols)})"
                f"{over} VALUES ({', '.join(literal(row[c.name]) for c in cols)});")

    def _update(self, r: Relation, ch: RowChange, to: dict[str, str | None],
                frm: dict[str, str | None] | None, where_row: dict[str, str | None],
                where_complete: bool, unknown_ok: set[str]) -> str:
        sets = []
        missing = []
        for c in r.columns:
            if c.dropped or c.generated:
                continue
            if c.name not in to:
                if c.name not in unknown_ok:
                    missing.append(c.name)
                continue
            if frm is not None and c.name in frm and frm[c.name] == to[c.name]:
                continue
            sets.append(f"{ident(c.name)} = {literal(to[c.name])}")
        where = self._where(r, where_row, where_complete)
        if where is None:
            return f"-- cannot write: the row is not identified by the WAL read ({ch.lsn})"
        out = []
        if missing:
            out.append(f"-- columns not known from the WAL read, left as they are: "
                       f"{', '.join(missing)}")
        if not sets:
            out.append(f"-- no column changed ({ch.lsn})")
            return "\n".join(out)
        out.append(f"UPDATE {self._qname(r)} SET {', '.join(sets)} WHERE {where};")
        return "\n".join(out)

    @staticmethod
    def _known(ch: RowChange, which: str) -> tuple[dict[str, str | None] | None, bool]:
        """old or new with the columns shown as raw bytes left out (their text is not a value
        PostgreSQL would read back), and whether what is left is the complete row."""
        row = ch.old if which == "old" else ch.new
        complete = ch.old_complete if which == "old" else ch.new_complete
        raw = ch.raw_columns.get(which)
        if not raw or row is None:
            return row, complete
        return {k: v for k, v in row.items() if k not in raw}, False

    def redo(self, ch: RowChange) -> str:
        old, old_complete = self._known(ch, "old")
        new, new_complete = self._known(ch, "new")
        if old is not ch.old or new is not ch.new:
            ch = replace(ch, old=old, new=new, old_complete=old_complete,
                         new_complete=new_complete, notes=list(ch.notes))
        r = self._rel(ch)
        if ch.op == "truncate" and r is not None:
            return f"TRUNCATE {self._qname(r)};"
        if r is None:
            return f"-- {ch.op} at {ch.lsn} on relation {ch.relation} not in the catalog"
        if ch.op == "insert":
            if not ch.new_complete:
                return (f"-- incomplete insert at {ch.lsn}: " + "; ".join(ch.notes) + "\n"
                        + "-- " + self._insert(r, ch.new or {}))
            return self._insert(r, ch.new or {})
        if ch.op == "delete":
            w = self._where(r, ch.old or {}, ch.old_complete)
            if w is None:
                return f"-- cannot write the delete at {ch.lsn}: the old row is unknown"
            return f"DELETE FROM {self._qname(r)} WHERE {w};"
        if ch.op == "update":
            new = ch.new or {}
            old = ch.old if ch.old else None
            # the row as it was: old key, or (no old row) the new key -- keys do not change in
            # a HOT update, and a changed key is logged as the old key at wal_level=logical
            where_row = old if old and all(k in old for k in r.key) and r.key else new
            if not r.key and old:
                where_row = old
            where_complete = ch.old_complete if where_row is old else ch.new_complete
            stmt = self._update(r, ch, new, old, where_row, where_complete, ch.same)
            if where_row is new and r.key and not ch.hot:
                stmt = ("-- the old row is unknown: assuming its key did not change\n"
                        + stmt)
            return stmt
        return f"-- {ch.op} at {ch.lsn}"

    def undo(self, ch: RowChange) -> str:
        old, old_complete = self._known(ch, "old")
        new, new_complete = self._known(ch, "new")
        if old is not ch.old or new is not ch.new:
            ch = replace(ch, old=old, new=new, old_complete=old_complete,
                         new_complete=new_complete, notes=list(ch.notes))
        r = self._rel(ch)
        if r is None:
            return f"-- {ch.op} at {ch.lsn} on relation {ch.relation} not in the catalog"
        if ch.op == "truncate":
            return f"-- cannot undo TRUNCATE {self._qname(r)} at {ch.lsn}"
        if ch.op == "insert":
            w = self._where(r, ch.new or {}, ch.new_complete)
            if w is None:
                return f"-- cannot undo the insert at {ch.lsn}: the new row is unknown"
            return f"DELETE FROM {self._qname(r)} WHERE {w};"
        if ch.op == "delete":
            if not ch.old_complete:
                return f"-- cannot undo the delete at {ch.lsn}: the old row is not fully known"
            return self._insert(r, ch.old or {})
        if ch.op == "update":
            if not ch.old:
                return f"-- cannot undo the update at {ch.lsn}: the old row is unknown"
            return self._update(r, ch, ch.old, ch.new or {}, ch.new or {}, ch.new_complete,
                                ch.same)
        return f"-- {ch.op} at {ch.lsn}"


def _group(changes: Iterable[RowChange]) -> Iterator[list[RowChange]]:
    cur: list[RowChange] = []
    for ch in changes:
        if cur and (ch.xid != cur[0].xid or ch.commit_lsn != cur[0].commit_lsn):
            yield cur
            cur = []
        cur.append(ch)
    if cur:
        yield cur


def _comment(tx: list[RowChange]) -> str:
    c = tx[0]
    when = f"{c.status} at {c.commit_time} (LSN {c.commit_lsn})" if c.commit_lsn is not None \
        else c.status
    return f"-- xid {c.xid}, {when}, {len(tx)} change(s)"


def write_redo(changes: Iterable[RowChange], catalog: Catalog, out: TextIO,
               timezone: str = "UTC") -> int:
    """Redo SQL, transaction by transaction in commit order; returns statements written."""
    w = SqlWriter(catalog, timezone, getattr(changes, "history", None))
    out.write(w.header("redo SQL"))
    n = 0
    for tx in _group(changes):
        out.write("\n" + _comment(tx) + "\n")
        skip = tx[0].status != "committed"
        out.write("-- not committed: left out\n" if skip else "BEGIN;\n")
        if skip:
            continue
        for ch in tx:
            out.write(w.redo(ch) + "\n")
            n += 1
        out.write("COMMIT;\n")
    return n


def write_undo(changes: Iterable[RowChange], catalog: Catalog, out: TextIO,
               timezone: str = "UTC") -> int:
    """Undo SQL: the inverse of every committed change, newest transaction and change first."""
    w = SqlWriter(catalog, timezone, getattr(changes, "history", None))
    txs = [tx for tx in _group(changes) if tx[0].status == "committed"]
    out.write(w.header("undo SQL"))
    n = 0
    for tx in reversed(txs):
        out.write("\n" + _comment(tx) + " (undone)\nBEGIN;\n")
        for ch in reversed(tx):
            out.write(w.undo(ch) + "\n")
            n += 1
        out.write("COMMIT;\n")
    return n
