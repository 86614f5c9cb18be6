"""The HTML gap report: one self-contained page (no external resources) a DBA can forward.

Summary and an SVG timeline of both nodes' WAL on top; then each lost transaction with its
rows (old -> new, changed columns marked), its redo SQL with the conflict guards and a copy
button; aborted and in-progress transactions apart; the notes; the inputs with their sha256.
The SQL shown is exactly `--format sql`'s text: the whole script at the end, and each
transaction's block of it in its section.
"""
from __future__ import annotations

import html
from typing import Any

from .analysis import GapReport, Transaction
from .report import LostRows, render_sql, sql_parts
from ..lsn import Lsn
from ..replay.display import changed_columns, cut

HTML_VALUE_WIDTH = 80

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:1150px}
h1{font-size:22px;margin:0 0 .4em} h2{font-size:18px;margin:1.4em 0 .5em;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:0 0 .4em}
table{border-collapse:collapse;margin:.3em 0} td,th{border:1px solid #ccc;padding:2px 7px;
text-align:left;vertical-align:top} th{background:#f3f5f8}
#summary{background:#fbeeed;border:1px solid #e4b9b5;padding:.6em 1em;border-radius:4px}
#summary b{color:#a3312a}
.tx{border:1px solid #d5dbe3;border-radius:4px;padding:.6em 1em;margin:.8em 0}
.meta{color:#555;font-size:13px}
.change{margin:.5em 0 .2em} .op{font-weight:600;text-transform:uppercase;font-size:12px;
padding:1px 5px;border-radius:3px;color:#fff} .op-insert{background:#3c8d4f}
.op-update{background:#b7791f} .op-delete{background:#b83a33} .op-truncate{background:#555}
tr.changed td{background:#fff4cc} tr.changed td.col::after{content:" \\2190 changed";color:#a66b00;font-size:11px}
td.col{font-weight:600} code,pre{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace}
pre.sql{background:#f6f8fa;border:1px solid #d8dee4;padding:.5em;overflow:auto;white-space:pre;
max-height:14em;margin:.3em 0}
button.copy{font-size:12px;padding:2px 10px;cursor:pointer}
.copied{color:#3c8d4f;font-size:12px;margin-left:.5em}
.void{color:#555}
"""

SCRIPT = """
document.querySelectorAll('button.copy').forEach(function (b) {
  b.addEventListener('click', function () {
    var text = document.getElementById(b.dataset.target).textContent;
    var done = function () {
      var s = b.nextElementSibling; if (s) { s.textContent = 'copied'; }
    };
    var fallback = function () {
      var t = document.createElement('textarea'); t.value = text;
      document.body.appendChild(t); t.select();
      try { document.execCommand('copy'); done(); } catch (e) { }
      document.body.removeChild(t);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else { fallback(); }
  });
});
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _timeline(r: GapReport) -> str:
    """An SVG of both nodes' WAL: the primary's and the standby's bar, the cut, a dot per
    lost commit."""
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
           f'<text x="{x(int(r.cut_lsn)) + 4:.1f}" y="150">cut {_e(r.cut_lsn)}</text>']
    for t in r.lost_transactions:
        cx = x(int(t.commit_lsn))
        svg.append(f'<circle class="lost" cx="{cx:.1f}" cy="52" r="6"><title>xid {t.xid} '
                   f'committed {_e(t.commit_time)} at {t.commit_lsn}</title></circle>')
    svg.append(f'<text x="{left}" y="180">{Lsn(lo)}</text>')
    svg.append(f'<text x="{width - right - 160}" y="180">primary end {_e(r.primary.end_lsn)}</text>')
    svg.append("</svg>")
    return "".join(svg)


def _change(c: dict[str, Any], key: list[str]) -> str:
    """One row change: its operation and table, then column | old | new, changed columns
    marked (an insert has no old side, a delete no new one)."""
    op = str(c.get("op"))
    old, new = c.get("old") or {}, c.get("new") or {}
    head = (f'<div class="change"><span class="op op-{_e(op)}">{_e(op)}</span> '
            f'<b>{_e(c.get("schema"))}.{_e(c.get("table"))}</b> '
            f'<span class="meta">at {_e(c.get("lsn"))}'
            + (f', subtransaction {c["subxid"]}' if c.get("subxid") else "")
            + ("" if c.get("old_complete", True) or op == "insert"
               else ", old row not fully known from the WAL read")
            + "</span></div>")
    if op == "truncate":
        return head
    changed = set(changed_columns(old, new)) if op == "update" else set()
    cols = list(dict.fromkeys([*key, *(new if op != "delete" else old), *old]))
    rows = []
    for k in cols:
        cls = ' class="changed"' if k in changed else ""
        o = _e(cut(old[k], HTML_VALUE_WIDTH)) if k in old else ("" if op == "insert" else "?")
        n = _e(cut(new[k], HTML_VALUE_WIDTH)) if k in new else ("" if op == "delete" else "?")
        mark = " (key)" if k in key else ""
        rows.append(f'<tr{cls}><td class="col">{_e(k)}{mark}</td><td>{o}</td><td>{n}</td></tr>')
    return (head + '<table class="rows"><tr><th>column</th><th>old</th><th>new</th></tr>'
            + "".join(rows) + "</table>")


def _tx(t: Transaction, sql: str, keys: dict[tuple[str, str], list[str]], has_rows: bool) -> str:
    ident = f"sql-{t.xid}"
    meta = [f"committed at {_e(t.commit_lsn)}, {_e(t.commit_time)}"]
    if t.subxids:
        meta.append(f"subtransactions {_e(', '.join(map(str, t.subxids)))}")
    if t.gid:
        meta.append(f"prepared as '{_e(t.gid)}'")
    if t.relations:
        meta.append(f"relations {_e(', '.join(t.relations))}")
    meta.append(f"{len(t.changes)} row change(s)")
    body = "".join(_change(c, keys.get((c.get("schema"), c.get("table")), []))  # type: ignore[arg-type]
                   for c in t.changes)
    if not t.changes:
        body = ('<p class="meta">No row changes known'
                + ("" if has_rows else ": give --catalog to reconstruct them") + ".</p>")
    return (f'<section class="tx" id="tx-{t.xid}"><h3>xid {t.xid}</h3>'
            f'<div class="meta">{"; ".join(meta)}</div>{body}'
            f'<div class="meta">Redo SQL (each change preceded by its conflict guard: it stops '
            f'if the new primary changed the same row)</div>'
            f'<pre class="sql" id="{ident}">{_e(sql)}</pre>'
            f'<button class="copy" type="button" data-target="{ident}">Copy SQL</button>'
            f'<span class="copied"></span></section>')


def render_html(r: GapReport, rows: LostRows | None = None) -> str:
    keys = rows.keys if rows is not None else {}
    _head, blocks = sql_parts(r, rows)
    script = render_sql(r, rows)
    w = r.window
    div = _e(r.divergence.pg_rewind_text()) if r.divergence else "none"
    txs = "".join(_tx(t, b.rstrip("\n") + "\n", keys, rows is not None) for t, b in blocks)
    if not r.lost_transactions:
        txs = "<p>No committed transaction of the primary is missing on the standby.</p>"
    void = []
    if r.aborted_after_cut:
        void.append(f'<p class="void" id="aborted"><b>Aborted after the cut</b> (rolled back on '
                    f'the primary, not lost data): xid {_e(", ".join(map(str, r.aborted_after_cut)))}</p>')
    if r.in_progress_at_end:
        void.append(f'<p class="void" id="in-progress"><b>In progress at the end of the '
                    f"primary's WAL</b> (never committed, not lost data): xid "
                    f'{_e(", ".join(map(str, r.in_progress_at_end)))}</p>')
    if not void:
        void.append('<p class="void">None.</p>')
    standby_only = "".join(
        f"<tr><td>{t.xid}</td><td>{t.commit_lsn}</td><td>{_e(t.commit_time)}</td>"
        f"<td>{_e(', '.join(t.relations))}</td></tr>" for t in r.only_on_standby)
    only = (f'<h2>Only on the standby</h2><table id="only-standby"><tr><th>xid</th>'
            f'<th>commit LSN</th><th>commit time</th><th>relations</th></tr>{standby_only}</table>'
            if r.only_on_standby else "")
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    inputs = "".join(f"<tr><td>{_e(i['path'])}</td><td>{i['size']}</td>"
                     f"<td><code>{i['sha256']}</code></td></tr>" for i in r.inputs)
    s_how = "live server, received" if r.standby.source == "server" else "WAL"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xlogtools gap report</title>
<style>{CSS}</style>
</head><body>
<h1>What the standby never got</h1>
<p id="summary"><b>{w['count']}</b> lost committed transaction(s), first commit
{_e(w['first_commit_time'])}, last commit {_e(w['last_commit_time'])};
{w['bytes']} bytes of WAL only on the primary. Divergence: {div}.</p>
<p>Primary WAL ends at {_e(r.primary.end_lsn)} (timeline {r.primary.timeline}; {_e(r.primary.reason)});
standby at {_e(r.standby.end_lsn)} (timeline {r.standby.timeline}; {_e(s_how)}). Cut at {_e(r.cut_lsn)}.</p>
{_timeline(r)}
<h2>Lost transactions</h2>
{txs}
<h2>Not lost</h2>
{''.join(void)}
{only}
<h2>The whole redo script</h2>
<p class="meta">As <code>xlogtools gap --format sql</code> writes it: apply it to the new primary
with <code>psql -v ON_ERROR_STOP=1 -f</code>.</p>
<pre class="sql" id="redo-sql">{_e(script)}</pre>
<button class="copy" type="button" data-target="redo-sql">Copy SQL</button><span class="copied"></span>
{f'<h2>Notes</h2><ul id="notes">{notes}</ul>' if notes else ''}
<h2>Inputs</h2><table id="inputs"><tr><th>file</th><th>size</th><th>sha256</th></tr>{inputs}</table>
<p class="meta">xlogtools {_e(r.tool_version)}, PostgreSQL {r.pg_major}, system {r.system_identifier}</p>
<script>{SCRIPT}</script>
</body></html>
"""
