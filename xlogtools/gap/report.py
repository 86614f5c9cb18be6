"""Renderings of a GapReport: a readable text summary, JSON (DESIGN.md 4.5), SQL that
re-applies the lost changes (with a conflict guard before each change), and the
self-contained HTML page (htmlpage.py)."""
from __future__ import annotations

import json
from typing import Any

from .analysis import GapReport, Transaction
from ..replay.display import change_parts, wrap


def render_json(r: GapReport) -> str:
    return json.dumps(r.as_dict(), indent=2) + "\n"


Keys = dict[tuple[str, str], list[str]]  # (schema, table) -> key columns, from the catalog


def render_text(r: GapReport, keys: Keys | None = None) -> str:
    """A readable report; lines stay under ~160 characters (long values cut with their
    length and md5, updates as changed columns old -> new, see replay/display.py)."""
    keys = keys or {}
    out: list[str] = []
    p, s = r.primary, r.standby
    out.append(f"primary: WAL ends at {p.end_lsn} on timeline {p.timeline} "
               f"(last record {p.last_record_lsn}; {p.reason})")
    if s.source == "server":
        fn = "pg_last_wal_receive_lsn" if s.reason == "received" else "pg_last_wal_replay_lsn"
        out.append(f"standby: received up to {s.end_lsn} on timeline {s.timeline} "
                   f"(live server, {fn}(): the end of the WAL it "
                   f"{'received and flushed' if s.reason == 'received' else 'replayed'})")
    else:
        out.append(f"standby: WAL ends at {s.end_lsn} on timeline {s.timeline} "
                   f"(last record {s.last_record_lsn}; {s.reason})")
    if r.divergence is not None:
        d = r.divergence
        out.append(f"divergence: {d.pg_rewind_text()} (timeline {d.to_timeline} began there)")
    else:
        out.append("divergence: none (the standby was not promoted, or has not switched timeline)")
    if r.bytes_behind is not None:
        out.append(f"WAL only on the primary: {r.bytes_behind} bytes ({r.cut_lsn} .. {p.end_lsn})")
    w = r.window
    if w["count"]:
        out.append(f"lost: {w['count']} committed transaction(s), first commit "
                   f"{w['first_commit_time']}, last commit {w['last_commit_time']}")
    else:
        out.append("lost: no committed transaction of the primary is missing on the standby")
    for t in r.lost_transactions:
        out += _tx_lines(t)
        for c in t.changes:
            out += _change_lines(c, keys)
    if r.only_on_standby:
        out.append(f"only on the standby (committed after the divergence): "
                   f"{len(r.only_on_standby)} transaction(s)")
        for t in r.only_on_standby:
            out += _tx_lines(t)
    if r.aborted_after_cut:
        out += wrap("aborted after the cut (not lost data): ", list(map(str, r.aborted_after_cut)),
                    "    ")
    if r.in_progress_at_end:
        out += wrap("in progress at the end of the primary's WAL (never committed, not lost "
                    "data): ", list(map(str, r.in_progress_at_end)), "    ")
    for n in r.notes:
        out.append(f"note: {n}")
    out.append(f"inputs: {len(r.inputs)} files (sha256 in --format json); xlogtools {r.tool_version}")
    return "\n".join(out) + "\n"


def _tx_lines(t: Transaction) -> list[str]:
    subs = [f"subxacts {', '.join(map(str, t.subxids))}"] if t.subxids else []
    gid = [f"prepared as '{t.gid}'"] if t.gid else []
    rels = ["relations " + t.relations[0], *t.relations[1:]] if t.relations else []
    return wrap(f"  xid {t.xid}: committed at {t.commit_lsn} {t.commit_time}, ",
                subs + gid + rels, "      ")


def change_head(c: dict[str, Any]) -> str:
    return f"{c.get('op', '?')} {c.get('schema')}.{c.get('table')}"


def _change_lines(c: dict[str, Any], keys: Keys) -> list[str]:
    table: tuple[Any, Any] = (c.get("schema"), c.get("table"))  # (None: not in the change)
    parts = change_parts(c, keys.get(table, []))
    if c.get("old_complete") is False and c.get("op") in ("update", "delete") and c.get("old"):
        parts.append("[old row incomplete]")
    if c.get("schema_uncertain"):
        parts.append("[schema uncertain]")
    return wrap(f"    {change_head(c)} ", parts, "        ")


class LostRows:
    """The replay engine's part of a gap report, with a catalog: the row changes of the lost
    transactions (`changes`, the hook `gap.analyze` calls) and, per transaction, the redo SQL
    with its conflict guards (`sql_for`)."""

    def __init__(self, catalog: Any, timezone: str = "UTC", progress: bool | None = False,
                 history_from: tuple[Any, str | None] | None = None) -> None:
        """`history_from`: (data directory, database name) to follow the schema through the
        primary's WAL (replay/schema_history.py); `catalog` is then that directory's."""
        from ..replay.sql import SqlWriter

        self.catalog = catalog
        self.timezone = timezone
        self.kept: dict[int, list[Any]] = {}
        self.writer = SqlWriter(catalog, timezone)
        self.keys: Keys = {(r.schema, r.name): list(r.key) for r in catalog.relations}
        self.header = self.writer.header("redo SQL of the lost transactions")
        self.progress = progress
        self.history_from = history_from
        self.warnings: list[str] = []

    def changes(self, paths: Any, xids: list[int], start: Any) -> dict[int, list[dict[str, Any]]]:
        """{xid: [row change dicts]} of the given transactions. Read from the first WAL there
        is, not from `start`: page images from before the lost transactions are what let the
        old values be known."""
        from ..replay.api import Replay

        wanted = set(xids)
        source: Any = self.catalog
        if self.history_from is not None:
            from ..replay.api import checkpoint_redo_before
            from ..replay.schema_history import SchemaHistory

            # from the redo point before the lost transactions: every catalog page they
            # change has its image from there on
            pgdata, dbname = self.history_from
            source = SchemaHistory.from_datadir(pgdata, paths, dbname=dbname,
                                                start=checkpoint_redo_before(paths, start))
            self.writer.history = source
        rp = Replay(paths, source, xids=wanted, timezone=self.timezone,
                    progress=self.progress)
        for ch in rp:
            if ch.xid in wanted:
                self.kept.setdefault(ch.xid, []).append(ch)
        self.warnings = rp.warnings
        if self.history_from is not None:  # keys of the tables as they were (made in the gap)
            for ch in (c for v in self.kept.values() for c in v):
                r = self.writer._rel(ch)
                if r is not None:
                    self.keys.setdefault((r.schema, r.name), list(r.key))
        return {x: [c.to_dict() for c in v] for x, v in self.kept.items()}

    def sql_for(self, xid: int) -> str:
        out = []
        for ch in self.kept.get(xid, []):
            qname = f'"{ch.schema}"."{ch.table}"' if ch.schema and ch.table else None
            r = self.writer._rel(ch)
            key = list(r.key) if r is not None else self.keys.get((ch.schema, ch.table), [])
            guard = conflict_guard(ch, key, qname) if qname else None
            if guard:
                out.append(guard)
            out.append(self.writer.redo(ch))
        return "\n".join(out)


def sql_parts(r: GapReport, rows: LostRows | None = None) -> tuple[str, list[tuple[Transaction, str]]]:
    """The redo SQL script in pieces: its preamble, then one block per lost transaction
    (comment, BEGIN, guards and statements, COMMIT); preamble + the blocks joined is exactly
    render_sql's text (the HTML report shows the blocks one by one)."""
    head = [f"-- xlogtools {r.tool_version}: changes the old primary committed that the standby "
            f"never received",
            f"-- cut at {r.cut_lsn}" + (f"; {r.divergence.pg_rewind_text()}" if r.divergence else ""),
            f"-- {r.window['count']} transaction(s), {r.window['first_commit_time']} .. "
            f"{r.window['last_commit_time']}"]
    if rows is not None:
        head.append(rows.header.rstrip("\n"))
    blocks = []
    for t in r.lost_transactions:
        out = [f"-- xid {t.xid}, committed at {t.commit_lsn} {t.commit_time}"]
        body = rows.sql_for(t.xid) if rows is not None else ""
        if body:
            out += ["BEGIN;", body.rstrip("\n"), "COMMIT;"]
        else:
            out.append("-- (no row changes known" + ("" if rows else
                                                     ": give --catalog to reconstruct them") + ")")
        blocks.append((t, "\n".join(out) + "\n\n"))
    return "\n".join(head) + "\n\n", blocks


def render_sql(r: GapReport, rows: LostRows | None = None) -> str:
    """SQL that re-applies the lost changes in commit order, one transaction per BEGIN/COMMIT
    with a comment naming its xid and commit time. With `rows` (a catalog), each transaction's
    redo statements come from the replay engine, keyed by primary key / replica identity and
    each preceded by its conflict guard, so a row that was changed on the new primary too stops
    the script instead of being overwritten; without it, only the comments are written."""
    head, blocks = sql_parts(r, rows)
    return (head + "".join(b for _t, b in blocks)).rstrip("\n") + "\n"


def conflict_guard(change: Any, key: list[str], qname: str) -> str | None:
    """A statement that stops the re-application of one change when the new primary changed
    the same row too: an UPDATE or DELETE needs the row exactly as the old primary had it
    before the change (compared as text, as psql prints it); an INSERT needs its key free."""
    def lit(v: str | None) -> str:
        return "NULL" if v is None else "'" + v.replace("'", "''") + "'"

    def cols(names: list[str]) -> str:
        return ", ".join('"' + n.replace('"', '""') + '"::text' for n in names)

    op = change.op
    if op in ("update", "delete") and change.old:
        names = list(change.old)
        cond = f"ROW({cols(names)}) IS NOT DISTINCT FROM ROW({', '.join(lit(change.old[n]) for n in names)})"
        test = f"NOT EXISTS (SELECT FROM {qname} WHERE {cond})"
    elif op == "insert" and change.new and key and all(k in change.new for k in key):
        cond = f"ROW({cols(key)}) IS NOT DISTINCT FROM ROW({', '.join(lit(change.new[k]) for k in key)})"
        test = f"EXISTS (SELECT FROM {qname} WHERE {cond})"
    else:
        return None
    what = f"{op} of xid {change.xid} at {change.lsn}"
    msg = f"xlogtools gap: conflict: {qname} changed on the new primary too ({what})"
    return (f"DO $xlogtools$ BEGIN IF {test} THEN RAISE EXCEPTION '%', "
            f"{lit(msg)}; END IF; END $xlogtools$;")
