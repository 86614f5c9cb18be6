"""The gap report as a DBA reads it (issue 17): a TOAST value, an update of 3 columns out of 8
and a transaction over two tables, lost when the primary crashed behind a stopped standby.
Text lines stay short with the long value cut (its length and md5 as SQL's md5() says), the
update shows exactly the changed columns, relations are named; the HTML page renders in real
headless Chromium with the rows and the SQL visible, no script errors, and its SQL is the
`--format sql` text byte for byte."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdp import Browser, find_chromium
from oracle import caught_up
from xlogtools.replay.catalog import capture

CONF = {"wal_log_hints": "on"}
TOAST_VALUE_SQL = "repeat('toast-me ', 3000)"  # 27000 characters, stored out of line


def gap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", *args],
                          capture_output=True, text=True, timeout=600)


def xid(c, script: str) -> int:  # type: ignore[no-untyped-def]
    return int(c.execute(script).split()[-1])


@pytest.fixture(scope="module")
def lost(pg_major: int, module_cluster_factory, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp(f"gaprep{pg_major}")
    primary = module_cluster_factory(pg_major, name=f"rep{pg_major}", conf=CONF)
    standby = module_cluster_factory.standby(primary, name=f"rep{pg_major}-sb")
    primary.execute(
        "CREATE TABLE wide (id int PRIMARY KEY, c1 text, c2 int, c3 numeric, c4 date, c5 text, "
        "c6 boolean, c7 text); "
        "CREATE TABLE doc (id int PRIMARY KEY, body text); "
        "ALTER TABLE doc ALTER body SET STORAGE EXTERNAL; "
        "CREATE TABLE audit (id serial PRIMARY KEY, what text); "
        "INSERT INTO wide SELECT g, 'one ' || g, g * 10, g * 1.5, date '2024-01-01' + g, "
        "'five', g % 2 = 0, 'seven' FROM generate_series(1, 5) g; CHECKPOINT;")
    cat = root / "catalog.json"
    capture(primary.conninfo).save(cat)
    caught_up(primary, standby)
    standby.stop("immediate")
    # first (an abort record is not flushed; the commits after it flush it)
    x_abort = xid(primary, "BEGIN; INSERT INTO audit (what) VALUES ('rolled back'); "
                           "SELECT txid_current(); ROLLBACK;")
    x_toast = xid(primary, f"BEGIN; INSERT INTO doc VALUES (1, {TOAST_VALUE_SQL}); "
                           "SELECT txid_current(); COMMIT;")
    x_update = xid(primary, "BEGIN; UPDATE wide SET c1 = 'changed, with a comma', c3 = c3 * 2, "
                            "c6 = NOT c6 WHERE id = 3; SELECT txid_current(); COMMIT;")
    x_multi = xid(primary, "BEGIN; INSERT INTO wide VALUES (10, 'ten', 100, 15, '2024-02-01', "
                           "'five', true, 'seven'); INSERT INTO audit (what) VALUES ('added 10'); "
                           "SELECT txid_current(); COMMIT;")
    md5 = primary.sql("SELECT md5(body), length(body) FROM doc WHERE id = 1")[0]
    updated = dict(zip(["id", "c1", "c2", "c3", "c4", "c5", "c6", "c7"],
                       primary.sql("SELECT * FROM wide WHERE id = 3")[0]))
    primary.crash()
    args = ["--primary", str(primary.pg_wal), "--standby", str(standby.pg_wal), "--catalog",
            str(cat)]
    out: dict[str, Any] = {"xids": (x_toast, x_update, x_multi, x_abort), "md5": md5,
                           "updated": updated, "root": root}
    for fmt in ("text", "json", "sql", "html"):
        path = root / f"gap.{fmt}"
        proc = gap(*args, "--format", fmt, "-o", str(path))
        assert proc.returncode == 0, proc.stderr
        out[fmt] = path.read_text(encoding="utf-8")
    return out


def test_text_report_cuts_values_names_relations_and_shows_changed_columns(lost) -> None:
    x_toast, x_update, x_multi, x_abort = lost["xids"]
    text = lost["text"]
    lines = text.splitlines()
    assert all(len(ln) < 200 for ln in lines), max(lines, key=len)
    md5, length = lost["md5"]
    assert length == "27000"
    toast = [ln for ln in lines if ln.startswith("    insert public.doc ")]
    assert len(toast) == 1, text
    assert f"body='toast-me toast-me " in toast[0] and f"(27000 chars, md5 {md5[:12]})" in toast[0]
    # the update: its key, then exactly the three changed columns old -> new
    upd = [ln for ln in lines if ln.startswith("    update public.wide ")]
    assert len(upd) == 1, text
    u = lost["updated"]
    assert upd[0] == (f"    update public.wide id=3, c1: 'one 3' -> '{u['c1']}', "
                      f"c3: 4.5 -> {u['c3']}, c6: f -> {u['c6']}")
    # relations named, TOAST and index files as their table, each once
    tx = {}  # xid -> its header, continuation lines (6 spaces) joined
    for i, ln in enumerate(lines):
        if m := re.match(r"  xid (\d+): committed", ln):
            j = i + 1
            while j < len(lines) and lines[j].startswith("      "):
                ln += " " + lines[j].strip()
                j += 1
            tx[int(m.group(1))] = ln
    assert set(tx) == {x_toast, x_update, x_multi}
    assert tx[x_toast].endswith("relations public.doc")
    assert tx[x_update].endswith("relations public.wide")
    multi = tx[x_multi].split(", relations ")[1].split(", ")
    assert sorted(multi) == ["public.audit", "public.wide"]
    assert "1663/" not in text
    assert re.search(rf"aborted after the cut \(not lost data\): .*\b{x_abort}\b", text)
    # JSON keeps the whole value
    rep = json.loads(lost["json"])
    body = next(c["new"]["body"] for t in rep["lost_transactions"] for c in t["changes"]
                if c["table"] == "doc")
    assert len(body) == 27000 and body.startswith("toast-me ")


def test_html_report_in_headless_chromium(lost, tmp_path: Path) -> None:
    exe = find_chromium()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    x_toast, x_update, x_multi, x_abort = lost["xids"]
    page = lost["root"] / "gap.html"
    assert "http" not in lost["html"].replace('xmlns="http://www.w3.org/2000/svg"', "")
    browser = Browser(exe, width=1200, height=2000)
    try:
        browser.open(page.as_uri())
        got = browser.evaluate("""(() => {
          const vis = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
            return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
          const tx = [...document.querySelectorAll('section.tx')];
          return {
            script: document.getElementById('redo-sql').textContent,
            scriptVisible: vis(document.getElementById('redo-sql')),
            tx: tx.map(s => ({id: s.id, visible: vis(s),
              sql: s.querySelector('pre.sql').textContent, sqlVisible: vis(s.querySelector('pre.sql')),
              rows: [...s.querySelectorAll('table.rows tr')].filter(vis).length,
              changed: [...s.querySelectorAll('tr.changed td.col')].map(td => td.textContent),
              button: vis(s.querySelector('button.copy'))})),
            aborted: (document.getElementById('aborted') || {}).textContent || '',
            summary: vis(document.getElementById('summary')),
            inputs: document.querySelectorAll('#inputs tr').length - 1,
          }; })()""")
        browser.evaluate("document.querySelectorAll('button.copy').forEach(b => b.click()); true")
        browser.evaluate("new Promise(r => setTimeout(r, 300))")
        shot = tmp_path / "gap-report.png"
        browser.screenshot(shot)
        errors = browser.errors()
    finally:
        browser.close()
    assert not errors, errors
    assert got["script"] == lost["sql"]  # byte for byte the --format sql text
    assert got["scriptVisible"] and got["summary"]
    by_id = {t["id"]: t for t in got["tx"]}
    assert set(by_id) == {f"tx-{x}" for x in (x_toast, x_update, x_multi)}
    for t in got["tx"]:
        assert t["visible"] and t["sqlVisible"] and t["button"] and t["rows"] > 1, t
        assert t["sql"] in lost["sql"] and "BEGIN;" in t["sql"] and "DO $xlogtools$" in t["sql"]
    assert [c.replace(" (key)", "") for c in by_id[f"tx-{x_update}"]["changed"]] == ["c1", "c3", "c6"]
    assert str(x_abort) in got["aborted"]
    assert got["inputs"] == len(json.loads(lost["json"])["inputs"]) > 0
    size = shot.stat().st_size
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < size < 300_000, size
    keep = os.environ.get("XLOGTOOLS_SCREENSHOT_DIR")
    if keep:  # docs/img/gap-report.png is made this way
        shutil.copy(shot, Path(keep) / "gap-report.png")
    # the escaped page text holds what the DOM showed (no SQL lost to HTML parsing)
    assert html.escape(lost["sql"], quote=True) in lost["html"]
