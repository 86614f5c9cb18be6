"""Writers for row changes: a readable table, JSON lines (DESIGN.md 4.4), CSV, Parquet, and
redo/undo SQL (replay/sql.py); write_changes() is the one dispatch of them (replay's command,
library callers).

    from xlogtools.replay.writers import write_changes
    n = write_changes(Replay(wal, catalog), "undo-sql", "undo.sql", catalog=catalog)
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable, Iterable, TextIO

from ..errors import InputError, UsageError
from .api import RowChange
from .catalog import Catalog
from .display import change_parts, cut, wrap


def write_jsonl(changes: Iterable[RowChange], out: TextIO) -> int:
    n = 0
    for ch in changes:
        out.write(json.dumps(ch.to_dict(), ensure_ascii=False) + "\n")
        n += 1
    return n


CSV_COLUMNS = ("lsn", "xid", "subxid", "op", "schema", "table", "old", "new", "old_complete",
               "new_complete", "commit_lsn", "commit_time", "status", "relation", "notes",
               "schema_uncertain")


def write_csv(changes: Iterable[RowChange], out: TextIO) -> int:
    """One CSV row per change (DESIGN.md 4.4's fields, a header first): `old`, `new` and
    `notes` as JSON text, booleans as true/false, null as an empty field."""
    import csv

    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    n = 0
    for ch in changes:
        d = ch.to_dict()
        row = []
        for k in CSV_COLUMNS:
            v = d[k]
            if k in ("old", "new", "notes"):
                row.append("" if v is None else json.dumps(v, ensure_ascii=False))
            elif isinstance(v, bool):
                row.append("true" if v else "false")
            else:
                row.append("" if v is None else str(v))
        w.writerow(row)
        n += 1
    return n


def _summary(ch: RowChange) -> str:
    """The change column: values cut (replay/display.py), an update as its key and changed
    columns old -> new, wrapped onto more lines of the cell when long."""
    parts = change_parts(ch.to_dict(), ch.key)
    if ch.raw is not None:
        parts.append("raw " + cut(ch.raw.get("new") or ch.raw.get("old"), 60))
    flags = []
    if not ch.old_complete:
        flags.append("old incomplete")
    if not ch.new_complete:
        flags.append("new incomplete")
    if ch.schema_uncertain:
        flags.append("schema uncertain")
    if flags:
        parts.append(f"[{'; '.join(flags)}]")
    return "\n".join(wrap("", parts, "  ", width=100))


def write_table(changes: Iterable[RowChange], out: TextIO, batch: int = 1000) -> int:
    from tabulate import tabulate

    headers = ["commit time", "xid", "lsn", "op", "table", "status", "change"]
    n = 0
    rows: list[list[Any]] = []
    first = True

    def flush() -> None:
        nonlocal first, rows
        if rows:
            text = tabulate(rows, headers=headers if first else (), tablefmt="plain")
            out.write(text + "\n")
            first = False
            rows = []

    for ch in changes:
        table = f"{ch.schema}.{ch.table}" if ch.table else f"?{ch.relation}"
        rows.append([ch.commit_time or "", ch.xid, str(ch.lsn), ch.op, table, ch.status,
                     _summary(ch)])
        n += 1
        if len(rows) >= batch:
            flush()
    flush()
    return n


def arrow_schema() -> Any:
    import pyarrow as pa

    values = pa.map_(pa.string(), pa.string())
    return pa.schema([
        ("lsn", pa.string()), ("lsn_int", pa.uint64()), ("xid", pa.uint32()),
        ("subxid", pa.uint32()), ("op", pa.string()), ("schema", pa.string()),
        ("table", pa.string()), ("old", values), ("new", values),
        ("old_complete", pa.bool_()), ("new_complete", pa.bool_()),
        ("commit_lsn", pa.string()), ("commit_time", pa.string()), ("status", pa.string()),
        ("relation", pa.string()), ("notes", pa.list_(pa.string())),
        ("schema_uncertain", pa.bool_()),
    ])


def write_parquet(changes: Iterable[RowChange], path: str, batch: int = 20000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    n = 0
    with pq.ParquetWriter(path, schema) as w:
        cols: dict[str, list[Any]] = {f.name: [] for f in schema}

        def flush() -> None:
            if cols["lsn"]:
                w.write_table(pa.table(cols, schema=schema))
                for v in cols.values():
                    v.clear()

        for ch in changes:
            d = ch.to_dict()
            for k in ("lsn", "xid", "subxid", "op", "schema", "table", "old_complete",
                      "new_complete", "commit_lsn", "commit_time", "status", "relation",
                      "notes", "schema_uncertain"):
                cols[k].append(d[k])
            cols["lsn_int"].append(int(ch.lsn))
            cols["old"].append(list(ch.old.items()) if ch.old is not None else None)
            cols["new"].append(list(ch.new.items()) if ch.new is not None else None)
            n += 1
            if len(cols["lsn"]) >= batch:
                flush()
        flush()
    return n


# format -> how its text is written: (changes, out, catalog, timezone) -> the count written
def _redo(changes: Iterable[RowChange], out: TextIO, catalog: Catalog | None, tz: str) -> int:
    from .sql import write_redo

    return write_redo(changes, _needs(catalog), out, tz)


def _undo(changes: Iterable[RowChange], out: TextIO, catalog: Catalog | None, tz: str) -> int:
    from .sql import write_undo

    return write_undo(changes, _needs(catalog), out, tz)


def _needs(catalog: Catalog | None) -> Catalog:
    if catalog is None:
        raise UsageError("SQL output needs the catalog the changes were decoded with")
    return catalog


_TEXT_WRITERS: dict[str, Callable[[Iterable[RowChange], TextIO, Catalog | None, str], int]] = {
    "table": lambda ch, out, _c, _tz: write_table(ch, out),
    "jsonl": lambda ch, out, _c, _tz: write_jsonl(ch, out),
    "csv": lambda ch, out, _c, _tz: write_csv(ch, out),
    "sql": _redo,
    "undo-sql": _undo,
}
FORMATS = (*_TEXT_WRITERS, "parquet")


def write_changes(changes: Iterable[RowChange], fmt: str, output: str | None = None, *,
                  catalog: Catalog | None = None, timezone: str = "UTC",
                  stdout: TextIO | None = None) -> int:
    """Write row changes in one of FORMATS to the file `output` (None: stdout; Parquet needs a
    file); SQL needs the catalog. Returns how many changes (SQL: statements) were written."""
    if fmt == "parquet":
        if not output:
            raise UsageError("--format parquet needs -o/--output")
        return write_parquet(changes, output)
    if fmt not in _TEXT_WRITERS:
        raise UsageError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if not output:
        return _TEXT_WRITERS[fmt](changes, stdout or sys.stdout, catalog, timezone)
    try:
        out = open(output, "w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"could not create \"{output}\": {exc.strerror}", file=output) from exc
    with out:
        return _TEXT_WRITERS[fmt](changes, out, catalog, timezone)
