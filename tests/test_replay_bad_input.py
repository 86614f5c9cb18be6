"""replay with the wrong catalog, unknown relations, types without an output function and
tuples that do not fit the catalog: warned about and reported per row, never an abort, never
a silent drop."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xlogtools.lsn import Lsn
from xlogtools.replay.api import Replay
from xlogtools.replay.catalog import Catalog, capture

pytestmark = pytest.mark.pg_majors(17)


@pytest.fixture(scope="module")
def wal(pg_major: int, module_cluster_factory: Any) -> dict[str, Any]:
    c = module_cluster_factory(pg_major, name="badinput")
    c.execute("CREATE TABLE t (a int PRIMARY KEY, b text, p point); CHECKPOINT;")
    start = Lsn(c.current_lsn())
    c.execute("INSERT INTO t VALUES (1, 'one', '(1,2)'), (2, 'two', NULL);"
              "UPDATE t SET b = 'uno' WHERE a = 1;")
    cat = capture(f"host={c.host} port={c.port} user=postgres dbname=postgres")
    c.execute("CREATE TABLE later (x int); INSERT INTO later VALUES (42);"
              "SELECT pg_switch_wal();")
    other = module_cluster_factory(pg_major, name="other")
    # same table names, other relfilenodes (a fresh cluster would reuse the same numbers)
    other.execute("CREATE TABLE pad (x int); CREATE TABLE t (a int PRIMARY KEY, b text, "
                  "p point);")
    foreign = capture(f"host={other.host} port={other.port} user=postgres dbname=postgres")
    return {"pg_wal": c.pg_wal, "start": start, "cat": cat, "foreign": foreign}


def test_unknown_type_and_unknown_relation_are_reported_per_row(wal: dict[str, Any]) -> None:
    rp = Replay([wal["pg_wal"]], wal["cat"], start=wal["start"])
    got = list(rp)
    t_rows = [ch for ch in got if ch.table == "t"]
    assert [ch.op for ch in t_rows] == ["insert", "insert", "update"]
    first = t_rows[0]
    assert first.new["a"] == "1" and first.new["b"] == "one"
    assert first.new["p"].startswith("\\x")  # point: raw bytes, flagged
    assert any("point" in n and "raw" in n for n in first.notes)
    assert t_rows[2].old["b"] == "one" and t_rows[2].new["b"] == "uno"
    # by default, a relation the catalog does not have is skipped and counted (issue 17)
    assert not [ch for ch in got if ch.table is None]
    later = next(r for r in rp.skipped_rels)
    assert any(w.startswith("skipped 1 change(s) to 1 relation(s) the catalog does not have: "
                            f"{later} (1)") for w in rp.warnings), rp.warnings
    # --all-relations: listed with raw tuples
    rp = Replay([wal["pg_wal"]], wal["cat"], start=wal["start"], all_relations=True)
    got = list(rp)
    assert [ch.op for ch in got if ch.table == "t"] == ["insert", "insert", "update"]
    unknown = [ch for ch in got if ch.table is None]
    assert unknown and unknown[0].raw["new"].startswith("\\x")
    assert any("not in the catalog" in n for n in unknown[0].notes)
    assert any("not in the catalog" in w for w in rp.warnings)


def test_catalog_of_another_cluster_warns_and_lists_rows_raw(wal: dict[str, Any]) -> None:
    rp = Replay([wal["pg_wal"]], wal["foreign"], start=wal["start"])
    assert all(ch.table is not None for ch in rp)  # the relations it does not have: skipped
    assert any("database system" in w for w in rp.warnings)
    assert any(w.startswith("skipped ") for w in rp.warnings)
    rp = Replay([wal["pg_wal"]], wal["foreign"], start=wal["start"], all_relations=True)
    got = list(rp)
    assert any("database system" in w for w in rp.warnings)
    assert any("not in the catalog" in w for w in rp.warnings)
    assert [ch for ch in got if ch.table is None]
    assert got and all(ch.raw is not None for ch in got if ch.table is None)


def test_tuples_that_do_not_fit_the_catalog_do_not_stop_the_run(wal: dict[str, Any],
                                                               tmp_path: Path) -> None:
    doc = wal["cat"].to_json()
    t = next(r for r in doc["relations"] if r["name"] == "t")
    t["columns"][1].update(attlen=64, attalign="d")  # b is text, say it is 64 fixed bytes
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    got = list(Replay([wal["pg_wal"]], Catalog.load(bad), start=wal["start"],
                      all_relations=True))
    t_rows = [ch for ch in got if ch.table == "t"]
    assert len(t_rows) == 3
    assert any(not ch.new_complete and any("corrupt" in n or "cannot" in n for n in ch.notes)
               for ch in t_rows)
    assert [ch for ch in got if ch.table is None]  # the run went on to the later table


def test_cli_bad_catalog_file_is_a_clean_error(tmp_path: Path, wal: dict[str, Any]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    res = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", str(wal["pg_wal"]),
                          "--catalog", str(junk)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "not an xlogtools catalog" in res.stderr
    assert "Traceback" not in res.stderr


def test_sql_is_never_written_from_raw_values(wal: dict[str, Any]) -> None:
    """A value shown as raw bytes is not a literal PostgreSQL reads back as the value: redo SQL
    comments out the insert that needs it and never SETs it; the other rows are written."""
    import io

    from xlogtools.replay.sql import write_redo

    out = io.StringIO()
    write_redo(Replay([wal["pg_wal"]], wal["cat"], start=wal["start"], tables=["t"]),
               wal["cat"], out)
    sql = out.getvalue()
    lines = [ln for ln in sql.splitlines() if '"public"."t"' in ln]
    assert any(ln.startswith("-- incomplete insert") or ln.startswith("-- INSERT") and
               "'1'" in ln for ln in sql.splitlines()), sql
    assert not any("\\x" in ln for ln in lines if not ln.startswith("--")), lines
    assert any(ln.startswith("INSERT") and "'two'" in ln for ln in lines), lines
    assert any(ln.startswith("UPDATE") and "'uno'" in ln and '"p"' not in ln for ln in lines), \
        lines
