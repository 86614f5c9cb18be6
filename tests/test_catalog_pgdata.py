"""catalog --pgdata against PostgreSQL itself: a cluster with tables of every replay type,
enums, domains, arrays, dropped columns, partitions, a tablespace and two databases. The
catalog read from the files of the stopped cluster, and again of the cluster killed by SIGKILL
mid-workload, equals `catalog -d` taken just before, relation for relation and column for
column; replay with either catalog gives the same rows; the files are byte-identical after.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xlogtools.replay.api import Replay
from xlogtools.replay.catalog import Catalog, capture
from xlogtools.replay.datadir_catalog import catalog_from_datadir
from xlogtools.testing.cluster import Cluster

from test_replay import column_defs, insert_sql, row_values

# a checkpoint and a crash whose outcome depends on the server's own timing: run alone
pytestmark = pytest.mark.serial

CONF = {"autovacuum": "off", "checkpoint_timeout": "1h", "max_wal_size": "1GB",
        "max_prepared_transactions": 2, "TimeZone": "Asia/Kolkata"}  # (in an included file)


def setup_sql(major: int, spc_dir: Path) -> str:
    cols = column_defs(major)
    rows = [row_values(i, cols) for i in range(1, 6)]
    return f"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN short_text AS varchar(10);
CREATE SCHEMA other;
CREATE TYPE other.colour AS ENUM ('red', 'green');
CREATE TYPE "Mixed Case" AS (a int, b text);
CREATE TABLE t_all ({", ".join(f"{n} {t}" for n, t in cols)});
ALTER TABLE t_all ALTER c_ext SET STORAGE EXTERNAL;
{insert_sql("t_all", rows).replace(" RETURNING *", "")};
ALTER TABLE t_all DROP COLUMN c_gone;
CREATE TABLE t_mod (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, d posint,
  s short_text, n numeric(12,4), n2 numeric(5), ts timestamptz(3), t time(2),
  iv interval day to second(2), iv2 interval year, b bit(3), vb varbit(8), c char(4),
  cv varchar, colour other.colour, mc "Mixed Case", arr2 int[][], moods mood[],
  doubled int GENERATED ALWAYS AS (d * 2) STORED, "Weird Name" text, "user" int);
ALTER TABLE t_mod ADD COLUMN later int DEFAULT 42, ADD COLUMN later_t text DEFAULT 'x y',
  ADD COLUMN later_ts timestamptz DEFAULT '2024-01-01 00:00:00+00';
ALTER TABLE t_mod DROP COLUMN c;
CREATE TABLE t_ri (a int NOT NULL, b text NOT NULL, c int);
CREATE UNIQUE INDEX t_ri_ab ON t_ri (b, a) INCLUDE (c);
ALTER TABLE t_ri REPLICA IDENTITY USING INDEX t_ri_ab;
CREATE TABLE t_full (a int, b text) ;
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE measure (id int, at date, v float8, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measure_2024 PARTITION OF measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measure_2025 PARTITION OF measure FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO measure VALUES (1, '2024-05-01', 1.5), (2, '2025-02-03', 2.5);
CREATE TABLESPACE spc LOCATION '{spc_dir}';
CREATE TABLE in_spc (id int PRIMARY KEY, payload text) TABLESPACE spc;
CREATE INDEX in_spc_payload ON in_spc (payload) TABLESPACE pg_default;
INSERT INTO in_spc SELECT g, md5(g::text) FROM generate_series(1, 50) g;
CREATE SEQUENCE seq_a;
CREATE VIEW v_all AS SELECT id, c_text FROM t_all;
CREATE MATERIALIZED VIEW mv AS SELECT id, c_int4 FROM t_all;
CREATE UNLOGGED TABLE t_unlogged (a int);
CREATE TABLE t_dropped (a int); DROP TABLE t_dropped;
BEGIN; CREATE TABLE t_rolled_back (a int); ROLLBACK;
CREATE TABLE t_renamed (a int); ALTER TABLE t_renamed RENAME TO t_renamed_now;
ALTER TABLE t_renamed_now RENAME COLUMN a TO a_now;
CREATE TABLE t_rewritten (a int, b text);
INSERT INTO t_rewritten SELECT g, 'x' FROM generate_series(1, 10) g;
VACUUM FULL t_rewritten;
"""


def file_digests(*roots: Path) -> dict[str, str]:
    """sha256 of every file under the data directory and the tablespace directory."""
    out = {}
    for root in roots:
        for dirpath, _dirs, files in os.walk(root, followlinks=False):
            for f in files:
                p = Path(dirpath) / f
                if p.is_symlink():
                    out[str(p)] = "-> " + os.readlink(p)
                    continue
                with open(p, "rb") as fh:
                    out[str(p)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def normalised(cat: Catalog) -> dict[str, Any]:
    """The document without capture-time fields (captured_at, captured_lsn) and with the
    major only (the data directory does not know the minor release)."""
    d = cat.to_json()
    d.pop("captured_at")
    d.pop("captured_lsn")
    d["server_version_num"] //= 10000
    return d


def assert_same_catalog(from_files: Catalog, captured: Catalog) -> None:
    got, want = normalised(from_files), normalised(captured)
    assert [r["schema"] + "." + r["name"] for r in got["relations"]] == \
        [r["schema"] + "." + r["name"] for r in want["relations"]]
    for g, w in zip(got["relations"], want["relations"]):
        gcols, wcols = g.pop("columns"), w.pop("columns")
        assert g == w, f"relation {w['name']}"
        assert len(gcols) == len(wcols), f"columns of {w['name']}"
        for gc, wc in zip(gcols, wcols):
            assert gc == wc, f"column {w['name']}.{wc['name']}"
    assert got["types"] == want["types"]
    assert got["other_relations"] == want["other_relations"]
    assert got["system_relfilenodes"] == want["system_relfilenodes"]
    rest = {k: v for k, v in got.items() if k not in ("relations", "types", "other_relations",
                                                       "system_relfilenodes")}
    assert rest == {k: want[k] for k in rest}
    assert set(got) == set(want)


def lock_then_update(c: Cluster) -> None:
    """pg_class rows whose xmax is a multixact of a KEY SHARE locker and an updater: one
    update committed (the old version is dead), one rolled back (the old version lives)."""
    import psycopg

    c.execute("CREATE TABLE t_locked (a int); CREATE TABLE t_locked2 (a int);", db="app")
    locker = psycopg.connect(f"{c.conninfo} dbname=app")
    locker.execute("SELECT 1 FROM pg_class WHERE relname IN ('t_locked', 't_locked2') "
                   "FOR KEY SHARE")
    c.execute("ALTER TABLE t_locked SET (fillfactor = 50);", db="app")
    c.execute("BEGIN; ALTER TABLE t_locked2 SET (fillfactor = 60); ROLLBACK;", db="app")
    locker.commit()
    locker.close()


def multixact_updated_rows(path: Path) -> int:
    """Tuples of a heap file whose xmax is a multixact that is not lock-only (read here from
    the headers, apart from the code under test)."""
    from xlogtools.replay.pages import parse_page

    raw = path.read_bytes()
    n = 0
    for i in range(0, len(raw), 8192):
        for tup in parse_page(raw[i:i + 8192]).values():
            if isinstance(tup, bytes):
                infomask = int.from_bytes(tup[20:22], "little")
                if infomask & 0x1000 and not infomask & 0x0080:
                    n += 1
    return n


@pytest.fixture(scope="module")
def scene(pg_major: int, module_cluster_factory: Any) -> dict[str, Any]:
    c: Cluster = module_cluster_factory(pg_major, name=f"pgdata{pg_major}", conf=CONF)
    spc_dir = c.base / "spc"
    c._mkdir(spc_dir, 0o700)
    c.execute("CREATE DATABASE app;")
    c.execute(setup_sql(pg_major, spc_dir), db="app")
    lock_then_update(c)
    c.execute("CREATE DATABASE app2 TABLESPACE spc ENCODING 'LATIN1' TEMPLATE template0;")
    c.execute("CREATE TABLE two (id int PRIMARY KEY, note text); "
              "INSERT INTO two VALUES (1, 'one');", db="app2")
    return {"cluster": c, "spc": spc_dir}


def test_stopped_cluster_catalog_equals_capture(scene: dict[str, Any]) -> None:
    """catalog -d just before a clean stop == catalog --pgdata of the stopped files, for
    both databases; the files are unchanged by reading them."""
    c: Cluster = scene["cluster"]
    c.execute("CHECKPOINT;")
    captured = {db: capture(f"{c.conninfo} dbname={db}") for db in ("app", "app2")}
    c.stop()
    t_mod = captured["app"].find_table("public.t_mod")[0]
    assert [(col.name, col.missing) for col in t_mod.columns if col.missing] == \
        [("later", "42"), ("later_t", "x y"), ("later_ts", "2024-01-01 05:30:00+05:30")]
    before = file_digests(c.datadir, scene["spc"])
    for db in ("app", "app2"):
        problems: list[str] = []
        cat = catalog_from_datadir(c.datadir, db, problems)
        assert problems == []
        assert_same_catalog(cat, captured[db])
    out = c.base / "cat-cli.json"
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "catalog", "--pgdata",
                        str(c.datadir), "--dbname", "app2", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_catalog(Catalog.load(out), captured["app2"])
    r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "catalog", "--pgdata",
                        str(c.datadir), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "several databases (app, app2)" in r.stderr, r.stderr
    app = catalog_from_datadir(c.datadir, "app")
    pg_class = next(o for o in app.other_relations if o["name"] == "pg_catalog.pg_class")
    assert multixact_updated_rows(c.datadir / "base" / str(app.database_oid) /
                                  str(pg_class["relfilenode"])) >= 1  # (pruning may take one)
    assert file_digests(c.datadir, scene["spc"]) == before
    c.start()


def test_killed_cluster_catalog_equals_capture_and_replays_alike(scene: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    """DDL committed, dropped and rolled back before a checkpoint, a transaction still open
    with its own DDL (its catalog rows written by the checkpoint, not committed), then rows
    committed and SIGKILL: the files' catalog is the committed one, as capture saw it."""
    import psycopg

    c: Cluster = scene["cluster"]
    # A checkpoint first, so that the first change of each catalog page after redo_start
    # carries its full-page image: without one, whether a page's history is known (and the
    # --pgdata replay's rows schema_uncertain) depended on where the server's last
    # checkpoint happened to fall among the module's earlier DDL.
    c.execute("CHECKPOINT;")
    redo_start = c.current_lsn()
    c.execute("CREATE TABLE t_late (id int PRIMARY KEY, v text); "
              "ALTER TABLE t_mod DROP COLUMN b; DROP TABLE t_renamed_now; "
              "BEGIN; ALTER TABLE t_full ADD COLUMN z int; ROLLBACK;", db="app")
    open_tx = psycopg.connect(f"{c.conninfo} dbname=app")
    open_tx.execute("CREATE TABLE t_uncommitted (a int); ALTER TABLE t_all ADD COLUMN zz int; "
                    "INSERT INTO t_late VALUES (999, 'never')")
    c.execute("CHECKPOINT;")
    captured = capture(f"{c.conninfo} dbname=app")
    captured2 = capture(f"{c.conninfo} dbname=app2")
    running: list[str] = []
    catalog_from_datadir(c.datadir, "app2", running)
    assert any("is running on" in p for p in running)  # read anyway, with a warning
    c.execute("INSERT INTO two SELECT g, 'n' FROM generate_series(2, 9) g;", db="app2")
    c.execute("INSERT INTO t_late SELECT g, 'row ' || g FROM generate_series(1, 20) g; "
              "UPDATE t_late SET v = v || '!' WHERE id % 3 = 0; DELETE FROM t_late WHERE id = 4; "
              "INSERT INTO in_spc VALUES (1000, 'late');", db="app")
    c.crash()
    open_tx.close()
    before = file_digests(c.datadir, scene["spc"])
    problems: list[str] = []
    cat = catalog_from_datadir(c.datadir, "app", problems)
    assert_same_catalog(cat, captured)
    assert_same_catalog(catalog_from_datadir(c.datadir, "app2"), captured2)
    assert "t_uncommitted" not in {r.name for r in cat.relations}
    # ... although the checkpoint wrote its pg_class row: visibility is what left it out
    pg_class = next(o for o in cat.other_relations if o["name"] == "pg_catalog.pg_class")
    assert b"t_uncommitted" in (c.datadir / "base" / str(cat.database_oid) /
                                str(pg_class["relfilenode"])).read_bytes()

    def rows(catalog: Catalog) -> list[dict[str, Any]]:
        rp = Replay([c.pg_wal], catalog, start=redo_start)
        return [json.loads(json.dumps(dataclasses.asdict(ch), default=str)) for ch in rp]

    got, want = rows(cat), rows(captured)
    assert len(want) >= 27 and got == want
    for opt in (["--pgdata", str(c.datadir), "--dbname", "app"],  # and its WAL: no PATHS
                [str(c.pg_wal), "--catalog", str(_saved(captured, c.base / "cap.json"))]):
        r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "replay",
                            "--start", redo_start, "--format", "jsonl", *opt],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        scene.setdefault("cli", []).append(r.stdout)
    assert scene["cli"][0] == scene["cli"][1] and scene["cli"][0].count("\n") == len(want)
    check_dump_relation_names(c, cat, redo_start, tmp_path)
    assert file_digests(c.datadir, scene["spc"]) == before
    c.start()


def check_dump_relation_names(c: Cluster, cat: Catalog, start: str, tmp: Path) -> None:
    """dump --pgdata names each record's first block: t_late's heap, TOAST and index records
    as public.t_late, pg_class's as pg_catalog.pg_class; every format carries the same names;
    --format waldump refuses a catalog and stays pg_waldump's text."""
    def dump(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xlogtools.cli", "dump", str(c.pg_wal),
                               "-s", start, *args], capture_output=True, text=True)

    r = dump("--format", "jsonl", "--pgdata", str(c.datadir), "--dbname", "app")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    late = next(x for x in cat.relations if x.name == "t_late")
    files = {(late.tablespace_oid, late.database_oid, late.relfilenode)}
    files |= {(ix["tablespace_oid"], late.database_oid, ix["relfilenode"]) for ix in late.indexes}
    assert len(files) >= 2  # the heap and its primary key (TOAST: when it has one)
    named = {(b["spc"], b["db"], b["rel"]) for x in recs if x["blocks"]
             for b in x["blocks"][:1] if x["relation"] == "public.t_late"}
    assert named == files
    pg_class = next(o for o in cat.other_relations if o["name"] == "pg_catalog.pg_class")
    assert any(x["relation"] == "pg_catalog.pg_class" and x["blocks"][0]["rel"] ==
               pg_class["relfilenode"] for x in recs)
    assert all(x["relation"] is None for x in recs if not x["blocks"])
    names = [x["relation"] for x in recs]
    saved = _saved(cat, tmp / "named.json")
    r = dump("--format", "jsonl", "--catalog", str(saved), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["relation"] for line in r.stdout.splitlines()] == names
    r = dump("--format", "csv", "--catalog", str(saved))
    assert r.returncode == 0, r.stderr
    import csv
    import io
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["relation"] or None for row in table] == names
    r = dump("--format", "text", "--catalog", str(saved))
    lines = r.stdout.splitlines()
    assert len(lines) == len(names)
    assert all((f"  relation {n}" in line) == (n is not None) for n, line in zip(names, lines))
    out = tmp / "named.parquet"
    r = dump("--format", "parquet", "-o", str(out), "--catalog", str(saved))
    assert r.returncode == 0, r.stderr
    import pyarrow.parquet as pq
    assert pq.read_table(out).column("relation").to_pylist() == names
    r = dump("--format", "waldump", "--catalog", str(saved))
    assert r.returncode == 2 and "waldump" in r.stderr
    plain = dump("--format", "text")
    assert [line.split("  relation ")[0] for line in lines] == plain.stdout.splitlines()


def _saved(cat: Catalog, path: Path) -> Path:
    cat.save(path)
    return path


def test_gap_with_the_crashed_primarys_own_files(pg_major: int, primary_standby: Any,
                                                 tmp_path: Path) -> None:
    """The standby stops, the primary commits three transactions and is killed: gap with
    --pgdata of the dead primary (never started again) lists the same lost rows as with the
    catalog captured before, and the primary's files are untouched."""
    from oracle import caught_up

    primary, standby = primary_standby(pg_major, conf={"wal_log_hints": "on"})
    primary.execute("CREATE DATABASE shop;")
    primary.execute("CREATE TYPE state AS ENUM ('new', 'paid'); "
                    "CREATE TABLE orders (id int PRIMARY KEY, st state, note text); "
                    "INSERT INTO orders VALUES (1, 'new', 'kept'); CHECKPOINT;", db="shop")
    cat = _saved(capture(f"{primary.conninfo} dbname=shop"), tmp_path / "cat.json")
    caught_up(primary, standby)
    standby.stop("immediate")
    for i in (2, 3, 4):
        primary.execute(f"INSERT INTO orders VALUES ({i}, 'paid', 'lost {i}');", db="shop")
    primary.crash()
    before = file_digests(primary.datadir)
    reports = []
    for opt in (["--catalog", str(cat)], ["--pgdata", str(primary.datadir), "--dbname", "shop"]):
        r = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                            str(primary.pg_wal), "--standby", str(standby.pg_wal),
                            "--format", "json", *opt], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        reports.append(json.loads(r.stdout))
    assert reports[0]["lost_transactions"] == reports[1]["lost_transactions"]
    lost = [c["new"] for t in reports[1]["lost_transactions"] for c in t["changes"]]
    assert lost == [{"id": str(i), "st": "paid", "note": f"lost {i}"} for i in (2, 3, 4)]
    assert file_digests(primary.datadir) == before
