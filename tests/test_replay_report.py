"""replay's default output (issue 17): on WAL that starts with CREATE TABLE, only the rows of
user tables the catalog has (the system catalog tuples of the DDL are skipped and counted on
stderr; --all-relations lists them); the table format cuts long values (length and md5) and
shows an update as its key and changed columns."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from xlogtools.replay.catalog import capture


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", *args],
                          capture_output=True, text=True, timeout=600)


def test_default_output_holds_user_tables_only(pg_major: int, cluster_factory,
                                              tmp_path: Path) -> None:
    c = cluster_factory(pg_major)
    c.execute("CREATE TABLE t (id int PRIMARY KEY, a text, b int, c text); "
              "ALTER TABLE t ALTER c SET STORAGE EXTERNAL;")
    c.execute("INSERT INTO t VALUES (1, 'one', 10, repeat('long value ', 2000)), "
              "(2, 'two', 20, 'short'); UPDATE t SET b = 21 WHERE id = 2;")
    md5 = c.sql("SELECT md5(c) FROM t WHERE id = 1")[0][0]
    pg_class = int(c.sql("SELECT pg_relation_filenode('pg_class')")[0][0])
    cat = tmp_path / "cat.json"
    capture(c.conninfo).save(cat)
    c.stop()
    wal = str(c.pg_wal)
    jl = replay(wal, "--catalog", str(cat), "--format", "jsonl")
    assert jl.returncode == 0, jl.stderr
    rows = [json.loads(x) for x in jl.stdout.splitlines()]
    assert [(r["table"], r["op"]) for r in rows] == [("t", "insert"), ("t", "insert"),
                                                     ("t", "update")]
    assert "skipped " in jl.stderr and "heap record(s) of system catalogs" in jl.stderr
    assert "--all-relations" in jl.stderr
    everything = replay(wal, "--catalog", str(cat), "--format", "jsonl", "--all-relations")
    assert everything.returncode == 0, everything.stderr
    more = [json.loads(x) for x in everything.stdout.splitlines()]
    other = [r for r in more if r["table"] is None]
    assert [r for r in more if r["table"] == "t"] == rows
    assert other and any(r["relation"].endswith(f"/{pg_class}") for r in other)  # CREATE TABLE's
    assert all(r["raw"] is not None for r in other)
    # the table format: short lines, the long value cut, the update as key + changed column
    tab = replay(wal, "--catalog", str(cat))
    assert tab.returncode == 0, tab.stderr
    lines = tab.stdout.splitlines()
    assert all(len(ln) < 200 for ln in lines), max(lines, key=len)
    assert any(f"(22000 chars, md5 {md5[:12]})" in ln for ln in lines), tab.stdout
    upd = [ln for ln in lines if " update " in ln]
    assert len(upd) == 1 and upd[0].rstrip().endswith("id=2, b: 20 -> 21"), upd
    tables = [ln.split()[5] for ln in lines[1:] if re.match(r"\d{4}-\d\d-\d\d ", ln)]
    assert tables == ["public.t"] * 3  # no '?relation' row of a system catalog
