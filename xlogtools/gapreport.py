"""Renderings of a GapReport: a readable text summary, JSON (DESIGN.md 4.5), SQL that
re-applies the lost changes, and a self-contained HTML page with a timeline chart."""
from __future__ import annotations

import html
import json
from typing import Any

from .gap import GapReport, Transaction
from .lsn import Lsn


def render_json(r: GapReport) -> str:
    return json.dumps(r.as_dict(), indent=2) + "\n"


def render_text(r: GapReport) -> str:
    out = []
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
        out.append(_tx_line(t))
        for c in t.changes:
            out.append("    " + _change_line(c))
    if r.only_on_standby:
        out.append(f"only on the standby (committed after the divergence): "
                   f"{len(r.only_on_standby)} transaction(s)")
        for t in r.only_on_standby:
            out.append(_tx_line(t))
    if r.aborted_after_cut:
        out.append(f"aborted after the cut (not lost data): {', '.join(map(str, r.aborted_after_cut))}")
    for n in r.notes:
        out.append(f"note: {n}")
    out.append(f"inputs: {len(r.inputs)} files (sha256 in --format json); xlogtools {r.tool_version}")
    return "\n".join(out) + "\n"


def _tx_line(t: Transaction) -> str:
    subs = f", subxacts {', '.join(map(str, t.subxids))}" if t.subxids else ""
    gid = f", prepared as '{t.gid}'" if t.gid else ""
    rels = f", relations {', '.join(t.relations)}" if t.relations else ""
    return f"  xid {t.xid}: committed at {t.commit_lsn} {t.commit_time}{subs}{gid}{rels}"


def _change_line(c: dict[str, Any]) -> str:
    op = c.get("op", "?")
    table = f"{c.get('schema')}.{c.get('table')}"
    vals = c.get("new") if op != "delete" else c.get("old")
    return f"{op} {table} {json.dumps(vals, ensure_ascii=False)}"


def render_sql(r: GapReport, sql_for: Any = None) -> str:
    """SQL that re-applies the lost changes in commit order, one transaction per BEGIN/COMMIT
    with a comment naming its xid and commit time. `sql_for(xid)` gives a transaction's redo
    statements (the replay engine's; keyed by primary key / replica identity, so a row that was
    changed on the new primary too makes its statement fail instead of overwriting it);
    without it, only the comments are written."""
    out = [f"-- xlogtools {r.tool_version}: changes the old primary committed that the standby "
           f"never received",
           f"-- cut at {r.cut_lsn}" + (f"; {r.divergence.pg_rewind_text()}" if r.divergence else ""),
           f"-- {r.window['count']} transaction(s), {r.window['first_commit_time']} .. "
           f"{r.window['last_commit_time']}"]
    if sql_for is not None and getattr(sql_for, "header", None):
        out.append(sql_for.header.rstrip("\n"))
    out.append("")
    for t in r.lost_transactions:
        out.append(f"-- xid {t.xid}, committed at {t.commit_lsn} {t.commit_time}")
        body = sql_for(t.xid) if sql_for is not None else ""
        if body:
            out += ["BEGIN;", body.rstrip("\n"), "COMMIT;"]
        else:
            out.append("-- (no row changes known" + ("" if sql_for else
                                                     ": give --catalog to reconstruct them") + ")")
        out.append("")
    return "\n".join(out)


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


def render_html(r: GapReport) -> str:
    """One page, no external resources: summary, an SVG timeline of both nodes' WAL with the
    lost commits, and the transaction table."""
    starts = [int(t.first_lsn) for t in r.lost_transactions] + [int(r.cut_lsn)]
    lo = min(starts) - 1
    p_end = int(r.primary.end_lsn or r.cut_lsn)
    s_end = int(r.standby.end_lsn or r.cut_lsn)
    hi = max(p_end, s_end, lo + 2)
    lo = max(0, lo - (hi - lo) // 10)
    width, left, right = 960, 130, 30

    def x(v: int) -> float:
        return left + (width - left - right) * (v - lo) / (hi - lo)

    svg = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="190" '
           f'role="img" aria-label="WAL timeline of primary and standby">',
           '<style>text{font:12px sans-serif} .lane{fill:#dfe7f1} .wal{fill:#4a78b5} '
           '.standby{fill:#5f9e6e} .lost{fill:#c8423b} .cut{stroke:#c8423b;stroke-dasharray:4 3}</style>',
           f'<text x="10" y="55">primary (tl {r.primary.timeline})</text>',
           f'<rect class="lane" x="{left}" y="40" width="{width - left - right}" height="24"/>',
           f'<rect class="wal" x="{x(lo):.1f}" y="40" width="{max(1.0, x(p_end) - x(lo)):.1f}" height="24"/>',
           f'<text x="10" y="115">standby (tl {r.standby.timeline})</text>',
           f'<rect class="lane" x="{left}" y="100" width="{width - left - right}" height="24"/>',
           f'<rect class="standby" x="{x(lo):.1f}" y="100" width="{max(1.0, x(s_end) - x(lo)):.1f}" height="24"/>',
           f'<line class="cut" x1="{x(int(r.cut_lsn)):.1f}" y1="30" x2="{x(int(r.cut_lsn)):.1f}" y2="135"/>',
           f'<text x="{x(int(r.cut_lsn)) + 4:.1f}" y="150">cut {html.escape(str(r.cut_lsn))}</text>']
    for t in r.lost_transactions:
        cx = x(int(t.commit_lsn))
        svg.append(f'<circle class="lost" cx="{cx:.1f}" cy="52" r="6"><title>xid {t.xid} '
                   f'committed {html.escape(t.commit_time)} at {t.commit_lsn}</title></circle>')
    svg.append(f'<text x="{left}" y="180">{Lsn(lo)}</text>')
    svg.append(f'<text x="{width - right - 120}" y="180">primary end {html.escape(str(r.primary.end_lsn))}</text>')
    svg.append("</svg>")
    rows = "".join(
        f"<tr><td>{t.xid}</td><td>{t.commit_lsn}</td><td>{html.escape(t.commit_time)}</td>"
        f"<td>{html.escape(', '.join(map(str, t.subxids)))}</td>"
        f"<td>{html.escape(', '.join(t.relations))}</td><td>{len(t.changes)}</td></tr>"
        for t in r.lost_transactions)
    inputs = "".join(f"<tr><td>{html.escape(i['path'])}</td><td>{i['size']}</td>"
                     f"<td><code>{i['sha256']}</code></td></tr>" for i in r.inputs)
    div = html.escape(r.divergence.pg_rewind_text()) if r.divergence else "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xlogtools gap report</title>
<style>body{{font:14px sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} h1{{font-size:20px}}</style>
</head><body>
<h1>What the standby never got</h1>
<p id="summary"><b>{r.window['count']}</b> lost committed transaction(s), first commit
{html.escape(str(r.window['first_commit_time']))}, last commit
{html.escape(str(r.window['last_commit_time']))}; {r.window['bytes']} bytes of WAL only on the
primary. Divergence: {div}.</p>
<p>Primary WAL ends at {r.primary.end_lsn} (timeline {r.primary.timeline}); standby at
{r.standby.end_lsn} (timeline {r.standby.timeline}).</p>
{''.join(svg)}
<h2>Lost transactions</h2>
<table id="lost"><tr><th>xid</th><th>commit LSN</th><th>commit time</th><th>subxacts</th>
<th>relations</th><th>row changes</th></tr>{rows}</table>
<h2>Inputs</h2><table id="inputs"><tr><th>file</th><th>size</th><th>sha256</th></tr>{inputs}</table>
<p>xlogtools {html.escape(r.tool_version)}</p>
</body></html>
"""
