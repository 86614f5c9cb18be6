"""Schema history from WAL (issue 13): between two checkpoints a table is created and filled,
columns are added and dropped, a table renamed, one truncated, one rewritten by VACUUM FULL and
one by ALTER COLUMN TYPE, a DDL rolled back; then the server is killed and never started again.
`replay --pgdata` (the catalog from the crashed directory's files, the schema followed through
the WAL) gives every row change with the values psql showed when each statement ran; the files
are byte-identical after. Started after the catalog pages' images, the changes are marked
schema_uncertain.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xlogtools.replay.api import Replay
from xlogtools.replay.schema_history import SchemaHistory
from xlogtools.testing.cluster import Cluster

from test_catalog_pgdata import file_digests

CONF = {"autovacuum": "off", "checkpoint_timeout": "1h", "max_wal_size": "1GB"}

SETUP = """
CREATE TABLE keep (id int PRIMARY KEY, v text);
INSERT INTO keep VALUES (1, 'a'), (2, 'b');
CREATE TABLE gone (id int PRIMARY KEY, v text);
INSERT INTO gone VALUES (1, 'g1'), (2, 'g2');
CREATE TABLE trunc_me (id int, v text);
INSERT INTO trunc_me VALUES (1, 't1'), (2, 't2');
CREATE TABLE full_me (id int PRIMARY KEY, v text);
INSERT INTO full_me VALUES (1, 'f1'), (2, 'f2');
CREATE TABLE retype (id int PRIMARY KEY, amount int);
INSERT INTO retype VALUES (1, 5), (2, 6);
"""


class Recorder:
    """Runs the workload statement by statement and writes down, for each row it changes,
    what psql showed just before and just after (the expected replay output)."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.expected: list[dict[str, Any]] = []

    def rows(self, table: str) -> dict[str, dict[str, str | None]]:
        cols = [r[0] for r in self.c.sql(
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass AND "
            f"attnum > 0 AND NOT attisdropped ORDER BY attnum", db="app")]
        out = {}
        for r in self.c.sql(f"SELECT * FROM {table}", db="app"):
            row = dict(zip(cols, r))
            out[str(row["id"])] = row
        return out

    def dml(self, table: str, sql: str, ddl_first: str = "") -> None:
        """`ddl_first` and `sql` in one transaction (the DDL's own changes are not rows)."""
        before = self.rows(table) if not ddl_first else {}
        self.c.execute(f"BEGIN; {ddl_first} {sql}; COMMIT;", db="app")
        after = self.rows(table)
        if ddl_first:  # rows as they were, read under the new schema, come from the WAL
            before = self._pre
        for key in sorted(set(before) | set(after), key=int):
            b, a = before.get(key), after.get(key)
            if b == a:
                continue
            op = "insert" if b is None else "delete" if a is None else "update"
            schema, _, name = table.rpartition(".")
            self.expected.append({"op": op, "schema": schema or "public", "table": name,
                                  "old": b if op != "insert" else None,
                                  "new": a if op != "delete" else None})

    def truncate(self, table: str) -> None:
        self.c.execute(f"TRUNCATE {table};", db="app")
        self.expected.append({"op": "truncate", "schema": "public", "table": table, "old": None,
                              "new": None})


def workload(rec: Recorder) -> None:
    c = rec.c
    # a table created and filled in one transaction
    rec._pre = {}
    rec.dml("t_new", "INSERT INTO t_new VALUES (1, 'one'), (2, 'two'), (3, 'three')",
            ddl_first="CREATE TABLE t_new (id int PRIMARY KEY, name text);")
    rec.after_create = c.current_lsn()
    rec.dml("keep", "INSERT INTO keep VALUES (3, 'c')")
    # a column added (with a default), rows updated: old rows read the default
    c.execute("ALTER TABLE t_new ADD COLUMN extra int DEFAULT 7;", db="app")
    rec.dml("t_new", "UPDATE t_new SET extra = 10 + id WHERE id <= 2")
    # a column added and rolled back with an update in the same transaction: not reported
    c.execute("BEGIN; ALTER TABLE t_new ADD COLUMN bogus int; UPDATE t_new SET bogus = 1; "
              "ROLLBACK;", db="app")
    # a column dropped
    c.execute("ALTER TABLE t_new DROP COLUMN name;", db="app")
    rec.dml("t_new", "UPDATE t_new SET extra = extra + 100 WHERE id = 3")
    # DDL in savepoints: one rolled back, one released, then an update in the same transaction
    rec._pre = {k: {**v, "rel": "5"} for k, v in rec.rows("t_new").items()}
    rec.dml("t_new", "UPDATE t_new SET rel = 6 WHERE id = 1",
            ddl_first="SAVEPOINT s; ALTER TABLE t_new ADD COLUMN sp int; ROLLBACK TO s; "
                      "SAVEPOINT r; ALTER TABLE t_new ADD COLUMN rel int DEFAULT 5; RELEASE r;")
    # a table renamed
    c.execute("ALTER TABLE keep RENAME TO kept;", db="app")
    rec.dml("kept", "UPDATE kept SET v = 'b2' WHERE id = 2")
    rec.dml("kept", "DELETE FROM kept WHERE id = 1")
    # a table truncated, then filled again (a new relfilenode)
    rec.truncate("trunc_me")
    rec.dml("trunc_me", "INSERT INTO trunc_me VALUES (10, 'after')")
    # rewritten by VACUUM FULL: rows before and after decode under the same name
    rec.dml("full_me", "UPDATE full_me SET v = 'pre' WHERE id = 2")
    c.execute("VACUUM FULL full_me;", db="app")
    rec.dml("full_me", "UPDATE full_me SET v = 'x' || v WHERE id = 1")
    # rewritten by ALTER COLUMN TYPE
    rec.dml("retype", "UPDATE retype SET amount = amount + 1 WHERE id = 2")
    c.execute("ALTER TABLE retype ALTER COLUMN amount TYPE numeric(10,2);", db="app")
    rec.dml("retype", "UPDATE retype SET amount = amount + 0.5 WHERE id = 1")
    # a table whose rows are deleted and which is then dropped
    rec.dml("gone", "DELETE FROM gone WHERE id = 1")
    c.execute("DROP TABLE gone;", db="app")
    # a new enum type and a table using it, created and filled in one transaction
    rec._pre = {}
    rec.dml("moods", "INSERT INTO moods VALUES (1, 'ok'), (2, 'meh')",
            ddl_first="CREATE TYPE mood AS ENUM ('meh', 'ok'); "
                      "CREATE TABLE moods (id int PRIMARY KEY, m mood);")

    # an enum value added later and used; a column renamed; a table moved to another schema
    c.execute("ALTER TYPE mood ADD VALUE 'happy';", db="app")
    rec.dml("moods", "UPDATE moods SET m = 'happy' WHERE id = 2")
    c.execute("ALTER TABLE moods RENAME COLUMN m TO feeling;", db="app")
    rec.dml("moods", "INSERT INTO moods VALUES (3, 'meh')")
    c.execute("CREATE SCHEMA arch; ALTER TABLE full_me SET SCHEMA arch;", db="app")
    rec.dml("arch.full_me", "DELETE FROM arch.full_me WHERE id = 2")
    # a table made in the range with values stored out of line (its TOAST table is new too)
    rec._pre = {}
    rec.dml("big", "INSERT INTO big SELECT 1, string_agg(md5(g::text), '') "
                   "FROM generate_series(1, 300) g",
            ddl_first="CREATE TABLE big (id int PRIMARY KEY, payload text); "
                      "ALTER TABLE big ALTER payload SET STORAGE EXTERNAL;")
    rec.dml("big", "DELETE FROM big WHERE id = 1")


def changes_of(rp: Replay) -> list[dict[str, Any]]:
    return [{"op": ch.op, "schema": ch.schema, "table": ch.table, "old": ch.old, "new": ch.new,
             "schema_uncertain": ch.schema_uncertain, "old_complete": ch.old_complete}
            for ch in rp]


@pytest.fixture(scope="module")
def crashed(pg_major: int, module_cluster_factory: Any) -> dict[str, Any]:
    c: Cluster = module_cluster_factory(pg_major, name=f"hist{pg_major}", conf=CONF)
    c.execute("CREATE DATABASE app;")
    c.execute(SETUP, db="app")
    c.execute("CHECKPOINT;")
    redo = c.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]
    rec = Recorder(c)
    workload(rec)
    middle = c.current_lsn()
    c.execute("CHECKPOINT;")
    rec.dml("kept", "INSERT INTO kept VALUES (4, 'after the checkpoint')")
    c.crash()
    return {"cluster": c, "redo": redo, "expected": rec.expected, "middle": middle,
            "after_create": rec.after_create}


def test_replay_follows_the_schema_through_the_wal(crashed: dict[str, Any]) -> None:
    """Every row change of the range, as psql showed it at the time, with the catalog of the
    crashed directory's files and the schema followed through the WAL; nothing uncertain."""
    c: Cluster = crashed["cluster"]
    before = file_digests(c.datadir)
    hist = SchemaHistory.from_datadir(c.datadir, dbname="app", start=crashed["redo"])
    assert hist.lossy_pages() == [], hist.lossy_pages()
    assert not [p for p in hist.problems if "is running" in p], hist.problems  # killed
    rp = Replay([c.pg_wal], hist, start=crashed["redo"])
    got = changes_of(rp)
    assert [g for g in got if g["schema_uncertain"] or not g["old_complete"]] == []
    assert [{k: g[k] for k in ("op", "schema", "table", "old", "new")} for g in got] == \
        crashed["expected"]
    assert not [w for w in rp.warnings if "internal error" in w]
    # with the files' catalog only (the state at the end), the same rows read wrong
    plain = [{k: g[k] for k in ("op", "schema", "table", "old", "new")}
             for g in changes_of(Replay([c.pg_wal], hist.start_catalog, start=crashed["redo"]))]
    assert plain != crashed["expected"]
    # the CLI: jsonl carries schema_uncertain
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                        "--format", "jsonl"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [{k: x[k] for k in ("op", "schema", "table", "old", "new")} for x in lines] == \
        crashed["expected"]
    assert all(x["schema_uncertain"] is False for x in lines)
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                        "--format", "jsonl", "--no-schema-history"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert [{k: x[k] for k in ("op", "schema", "table", "old", "new")}
            for x in map(json.loads, r.stdout.splitlines())] == plain
    # --table by the name at the end also takes the rows written under the old name; redo SQL
    # and the table format run with the history
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                        "--format", "jsonl", "--table", "kept"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["table"] for x in r.stdout.splitlines()] == \
        [e["table"] for e in crashed["expected"] if e["table"] in ("keep", "kept")]
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                        "--format", "csv"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import csv
    import io
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(t["op"], t["table"], json.loads(t["new"]) if t["new"] else None)
            for t in table] == [(e["op"], e["table"], e["new"]) for e in crashed["expected"]]
    assert {t["schema_uncertain"] for t in table} == {"false"}
    for fmt in ("sql", "table"):
        r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                            str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                            "--format", fmt], capture_output=True, text=True)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert 'UPDATE "public"."retype" SET "amount" = \'5.50\' WHERE "id" = \'1\';' in \
        subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", crashed["redo"],
                        "--format", "sql"], capture_output=True, text=True).stdout
    assert file_digests(c.datadir) == before


def test_catalog_pages_without_an_image_make_changes_uncertain(
        crashed: dict[str, Any]) -> None:
    """Started after CREATE TABLE t_new (whose records carried the first images of the catalog
    pages it wrote), the later ALTER TABLEs change those pages with no image in the range: the
    WAL cannot rebuild them, the files show them only after the workload, and every change of
    t_new is schema_uncertain (in jsonl too); the workload's other changes are still there."""
    c: Cluster = crashed["cluster"]
    start = crashed["after_create"]
    hist = SchemaHistory.from_datadir(c.datadir, dbname="app", start=start)
    assert hist.lossy_pages()
    got = changes_of(Replay([c.pg_wal], hist, start=start))
    t_new = [g for g in got if g["table"] == "t_new"]
    assert len(t_new) == 4 and all(g["schema_uncertain"] for g in t_new)
    assert {g["table"] for g in got} >= {"kept", "trunc_me", "full_me", "retype", "gone",
                                          "moods", "t_new"}
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay", "--pgdata",
                        str(c.datadir), "--dbname", "app", "--start", start,
                        "--format", "jsonl"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["schema_uncertain"] for x in lines if x["table"] == "t_new"] == [True] * 4


def test_gap_lists_lost_ddl_and_rows_from_the_dead_primarys_files(
        pg_major: int, primary_standby: Any) -> None:
    """The standby stops; the primary creates a table and fills it, adds a column and updates,
    renames a table and is killed, never to start again: gap --pgdata of its directory lists
    those transactions with their rows as psql showed them, under the names of the time."""
    from oracle import caught_up

    primary, standby = primary_standby(pg_major, conf=CONF)
    primary.execute("CREATE DATABASE app;")
    primary.execute("CREATE TABLE orders (id int PRIMARY KEY, note text); "
                    "INSERT INTO orders VALUES (1, 'kept'); CHECKPOINT;", db="app")
    caught_up(primary, standby)
    standby.stop("immediate")
    rec = Recorder(primary)
    rec._pre = {}
    rec.dml("late", "INSERT INTO late VALUES (1, 'l1'), (2, 'l2')",
            ddl_first="CREATE TABLE late (id int PRIMARY KEY, v text);")
    primary.execute("ALTER TABLE late ADD COLUMN n int DEFAULT 3;", db="app")
    rec.dml("late", "UPDATE late SET n = 4 WHERE id = 2")
    primary.execute("ALTER TABLE orders RENAME TO orders_old;", db="app")
    rec.dml("orders_old", "INSERT INTO orders_old VALUES (2, 'lost')")
    primary.crash()
    before = file_digests(primary.datadir)
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                        str(primary.pg_wal), "--standby", str(standby.pg_wal),
                        "--pgdata", str(primary.datadir), "--dbname", "app",
                        "--format", "json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    changes = [c for t in report["lost_transactions"] for c in t["changes"]]
    assert [{k: c[k] for k in ("op", "schema", "table", "old", "new")} for c in changes] == rec.expected
    assert not any(c["schema_uncertain"] for c in changes)
    assert len(report["lost_transactions"]) >= 5  # the DDL-only ones are lost too
    assert any("public.late" in t["relations"] for t in report["lost_transactions"])
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                        str(primary.pg_wal), "--standby", str(standby.pg_wal),
                        "--pgdata", str(primary.datadir), "--dbname", "app"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "late" in r.stdout, r.stderr
    assert file_digests(primary.datadir) == before


def test_truncate_at_wal_level_logical_is_reported_once(pg_major: int,
                                                       cluster_factory: Any) -> None:
    """At wal_level=logical TRUNCATE has its own record: one truncate change, not two; the
    rows inserted after it and a column added in the same transaction decode."""
    c: Cluster = cluster_factory(pg_major, wal_level="logical", conf=CONF)
    c.execute("CREATE DATABASE app;")
    c.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'); "
              "CHECKPOINT;", db="app")
    redo = c.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]
    c.execute("BEGIN; TRUNCATE t; ALTER TABLE t ADD COLUMN w int DEFAULT 9; "
              "INSERT INTO t VALUES (2, 'b'); COMMIT;", db="app")
    c.crash()
    hist = SchemaHistory.from_datadir(c.datadir, dbname="app", start=redo)
    got = changes_of(Replay([c.pg_wal], hist, start=redo))
    assert [(g["op"], g["table"], g["new"]) for g in got] == [
        ("truncate", "t", None), ("insert", "t", {"id": "2", "v": "b", "w": "9"})]


DDL_STEPS = [
    "CREATE TABLE a (id int PRIMARY KEY, v text)",
    "CREATE INDEX a_v ON a (v)",
    "ALTER TABLE a ADD COLUMN w numeric(8,2) DEFAULT 1.5",
    "ALTER TABLE a REPLICA IDENTITY FULL",
    "CREATE TYPE color AS ENUM ('r', 'g'); ALTER TYPE color ADD VALUE 'b' BEFORE 'g'",
    "CREATE TABLE b (id bigint GENERATED ALWAYS AS IDENTITY, c color, arr color[], "
    "big text)",
    "ALTER TABLE a RENAME TO a2; ALTER TABLE a2 RENAME COLUMN v TO vv",
    "ALTER TABLE a2 DROP COLUMN w",
    "VACUUM FULL a2",
    "TRUNCATE b",
    "ALTER TABLE b ALTER COLUMN c TYPE text",
    "BEGIN; ALTER TABLE a2 ADD COLUMN never int; CREATE TABLE never (x int); ROLLBACK",
    "CREATE SCHEMA s2; CREATE TABLE s2.c (x int); ALTER TABLE s2.c SET SCHEMA public",
    "CREATE DOMAIN dom AS int CHECK (VALUE > 0); CREATE TABLE e (x dom)",
    "ALTER TABLE e ADD PRIMARY KEY (x); CLUSTER a2 USING a_pkey",
    "DROP TABLE b",
    "CREATE MATERIALIZED VIEW mv AS SELECT id FROM a2; REFRESH MATERIALIZED VIEW mv",
]


def test_catalog_at_each_lsn_equals_what_the_server_had(pg_major: int,
                                                        cluster_factory: Any) -> None:
    """After each DDL statement the live server's catalog (capture) and its WAL position are
    noted; after the crash, the schema history's catalog at each of those LSNs equals it,
    relation for relation and column for column (the oracle of test_catalog_pgdata)."""
    from test_catalog_pgdata import assert_same_catalog, lock_then_update

    from xlogtools.replay.catalog import capture

    c: Cluster = cluster_factory(pg_major, conf=CONF)
    c.execute("CREATE DATABASE app;")
    c.execute("CHECKPOINT;")
    redo = c.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]
    seen = [(c.current_lsn(), capture(f"{c.conninfo} dbname=app"))]
    for step in DDL_STEPS:
        c.execute(step + ";", db="app")
        seen.append((c.current_lsn(), capture(f"{c.conninfo} dbname=app")))
    # pg_class rows whose xmax becomes a multixact (a KEY SHARE locker and an updater, one
    # committed, one rolled back): its members come from the WAL (pg_multixact's files lag)
    lock_then_update(c)
    seen.append((c.current_lsn(), capture(f"{c.conninfo} dbname=app")))
    c.crash()
    hist = SchemaHistory.from_datadir(c.datadir, dbname="app", start=redo)
    assert hist.lossy_pages() == []
    assert not [p for p in hist.problems if "multixact" in p], hist.problems
    assert any(hist.multi_updaters.values())  # the committed update's multixact
    for (lsn, want), step in zip(seen, ["(start)", *DDL_STEPS, "lock_then_update"]):
        try:
            assert_same_catalog(hist.catalog_at(lsn), want)
        except AssertionError as exc:
            raise AssertionError(f"after {step!r} (at {lsn}): {exc}") from None


def test_vacuum_full_of_pg_class_makes_earlier_changes_uncertain(pg_major: int,
                                                                 cluster_factory: Any) -> None:
    """VACUUM FULL pg_class in the range: the files' relation map names the new file, which is
    followed from the rewrite's images on; the old file is not, so the changes before the
    rewrite are schema_uncertain and the later ones are not (and still decode)."""
    c: Cluster = cluster_factory(pg_major, conf=CONF)
    c.execute("CREATE DATABASE app;")
    c.execute("CREATE TABLE x (id int PRIMARY KEY); CHECKPOINT;", db="app")
    redo = c.sql("SELECT redo_lsn FROM pg_control_checkpoint()")[0][0]
    c.execute("ALTER TABLE x RENAME TO y; INSERT INTO y VALUES (1); VACUUM FULL pg_class; "
              "ALTER TABLE y ADD COLUMN z int DEFAULT 5; INSERT INTO y VALUES (2, 6);", db="app")
    c.crash()
    hist = SchemaHistory.from_datadir(c.datadir, dbname="app", start=redo)
    assert any("pg_class was rewritten" in p for p in hist.problems), hist.problems
    got = changes_of(Replay([c.pg_wal], hist, start=redo))
    assert [(g["table"], g["new"], g["schema_uncertain"]) for g in got] == [
        ("y", {"id": "1"}, True), ("y", {"id": "2", "z": "6"}, False)]
