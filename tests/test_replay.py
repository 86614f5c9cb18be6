"""replay + catalog against PostgreSQL itself: a table with every supported type, changed by
every kind of transaction; what psql printed inside each transaction is what replay reports,
redo SQL rebuilds the after state on a copy taken before, undo SQL brings the before state
back, and a replay started mid-way says which old rows it cannot know.

One cluster per major; wal_level and wal_compression vary by major so that replica and logical
(REPLICA IDENTITY FULL) and off/pglz/lz4/zstd are all covered (see CONFIGS).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xlogtools.lsn import Lsn
from xlogtools.replay.api import Replay, RowChange, changes_by_xid, checkpoint_redo_before
from xlogtools.replay.catalog import Catalog, capture
from xlogtools.replay.sql import write_redo, write_undo
from xlogtools.testing.cluster import Cluster

# major -> (wal_level, wal_compression); 13/14 only know off/pglz
CONFIGS: dict[int, tuple[str, str]] = {
    13: ("replica", "pglz"), 14: ("logical", "off"), 15: ("replica", "lz4"),
    16: ("logical", "zstd"), 17: ("replica", "zstd"), 18: ("logical", "lz4"),
}
CONF = {"max_prepared_transactions": 5, "autovacuum": "off", "checkpoint_timeout": "1h",
        "max_wal_size": "1GB", "TimeZone": "Asia/Kolkata"}  # a non-UTC server zone on purpose


def column_defs(major: int) -> list[tuple[str, str]]:
    cols = [
        ("id", "int PRIMARY KEY"), ("c_bool", "bool"), ("c_int2", "int2"), ("c_int4", "int4"),
        ("c_int8", "int8"), ("c_oid", "oid"), ("c_f4", "float4"), ("c_f8", "float8"),
        ("c_num", "numeric"), ("c_num2", "numeric(12,4)"), ("c_text", "text"),
        ("c_varchar", "varchar(20)"), ("c_bpchar", "char(5)"), ("c_name", "name"),
        ("c_char", '"char"'), ("c_bytea", "bytea"), ("c_date", "date"), ("c_time", "time"),
        ("c_timetz", "timetz"), ("c_ts", "timestamp"), ("c_tstz", "timestamptz"),
        ("c_interval", "interval"), ("c_uuid", "uuid"), ("c_json", "json"),
        ("c_jsonb", "jsonb"), ("c_inet", "inet"), ("c_cidr", "cidr"), ("c_mac", "macaddr"),
        ("c_money", "money"), ("c_mood", "mood"), ("c_arr", "int[]"), ("c_arr2", "text[]"),
        ("c_arrn", "numeric[]"), ("c_arrts", "timestamptz[]"), ("c_gone", "int"),
        ("c_big", "text"), ("c_ext", "text"),
    ]
    if major >= 14:
        cols.append(("c_lz4", "text COMPRESSION lz4"))
    return cols


F4 = ["1.5", "3.14159", "1e-07", "1e+06", "-0", "NaN", "Infinity", "123456.7", "0.1"]
F8 = ["0.1", "1e+15", "1e+16", "0.3333333333333333", "-2.5e-05", "NaN", "-Infinity",
      "12345678901234567", "100", "1e-05", "123456789012345.6"]
NUM = ["123.4500", "-0.00012", "100000000000000000000", "NaN", "0", "999999999999.999",
       "-12.5", "0.000000000000000000001"]
TEXT = ["hello", "ünïcödé 中文", "quote's \"dq\" \\ back", "", "line\nbreak\ttab", "NULL"]
DATES = ["2024-02-29", "0044-03-15 BC", "infinity", "10000-01-01", "2000-01-01", "1999-12-31"]
TIMES = ["13:45:00.123456", "00:00:00", "24:00:00", "23:59:59.5"]
TIMETZ = ["13:45:00+05:30", "01:02:03.5-08", "12:00:00+00", "10:00:00+03:25:45"]
TS = ["2024-01-02 03:04:05.678", "1999-12-31 23:59:59", "-infinity", "0001-01-01 00:00:00 BC",
      "2262-04-11 23:47:16.854775"]
TSTZ = ["2024-06-01 12:00:00+02", "2000-01-01 00:00:00.000001+00", "infinity",
        "1900-01-01 00:00:00+05:53:28", "1970-01-01 00:00:00-08"]
INTERVALS = ["1 year 2 mons 3 days 04:05:06.789", "-1 days +02:00:00", "0",
             "-3 mons -00:00:01", "100:00:00", "1 mon -1 days", "-1 years -2 mons"]
JSONB = ['{"a": 1, "b": [true, false, null, 1.50, "s\\"q"], "nested": {"k": "v"}, "n": 1e3}',
         "[]", '"scalar"', "42", "{}",
         "{" + ", ".join(f'"key{i:02d}": {i}' for i in range(40)) + "}",
         '[{"x": -0.5}, [1, [2, [3]]], "ctl\\u0001"]']
INET = ["192.168.1.5/24", "10.0.0.1", "::1", "2001:db8::ff00:42:8329", "::ffff:1.2.3.4",
        "fe80::1/64", "::", "1::", "2001:db8:0:0:1:0:0:1"]
CIDR = ["10.0.0.0/8", "2001:db8::/32", "192.168.100.128/25", "::/0"]
MONEY = ["1234.56", "-0.5", "0", "92233720368547758.07"]
ARR = ["{1,2,3}", "{}", "{1,NULL,3}", "[0:2]={7,8,9}", "{{1,2},{3,4}}"]
ARR2 = ['{"a b","c,d"}', '{"","NULL",NULL}', '{"q\\"uote","back\\\\slash"}', "{{a,b},{c,d}}"]
ARRN = ["{1.5,-2,NaN}", "{0.10}"]
ARRTS = ['{"2024-01-01 00:00:00+00",infinity}']


def lit(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def row_values(i: int, cols: list[tuple[str, str]]) -> dict[str, str]:
    """SQL expressions for row i; a different set of columns is NULL in each row."""
    pick = lambda lst: lst[i % len(lst)]  # noqa: E731
    v: dict[str, str] = {
        "id": str(i), "c_bool": "true" if i % 2 else "false", "c_int2": str(-32768 + i * 7),
        "c_int4": str(i * 1000 - 2**31 + 5 if i % 3 == 0 else i), "c_int8": str(-(2**63) + i),
        "c_oid": str(4294967295 - i), "c_f4": lit(pick(F4)), "c_f8": lit(pick(F8)),
        "c_num": lit(pick(NUM)), "c_num2": lit(str(i * 1.25)), "c_text": lit(pick(TEXT)),
        "c_varchar": lit(f"v{i}"), "c_bpchar": lit("ab" if i % 2 else "abcde"),
        "c_name": lit(f"name_{i}"), "c_char": lit("xyz"[i % 3]), "c_bytea": lit(
            "\\xdeadbeef00" if i % 2 else "\\x"), "c_date": lit(pick(DATES)),
        "c_time": lit(pick(TIMES)), "c_timetz": lit(pick(TIMETZ)), "c_ts": lit(pick(TS)),
        "c_tstz": lit(pick(TSTZ)), "c_interval": lit(pick(INTERVALS)),
        "c_uuid": f"md5('{i}')::uuid", "c_json": lit('{"a": [1, 2.5, "x"], "b": null}'),
        "c_jsonb": lit(pick(JSONB)), "c_inet": lit(pick(INET)), "c_cidr": lit(pick(CIDR)),
        "c_mac": lit("08:00:2b:01:02:%02x" % i), "c_money": lit(pick(MONEY)),
        "c_mood": lit(["sad", "ok", "happy"][i % 3]), "c_arr": lit(pick(ARR)),
        "c_arr2": lit(pick(ARR2)), "c_arrn": lit(pick(ARRN)), "c_arrts": lit(pick(ARRTS)),
        "c_gone": str(i), "c_big": "NULL", "c_ext": "NULL", "c_lz4": "NULL",
    }
    names = [c for c, _ in cols]
    for j, name in enumerate(names):
        if name != "id" and (i + j) % 7 == 0:
            v[name] = "NULL"
    return {k: v[k] for k in names}


BIG_INLINE = "repeat('abcdefghij', 300)"  # 3000 bytes, compresses well: stays inline
BIG_EXT = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g)"  # 3200 B
BIG_EXT_COMP = ("repeat((SELECT string_agg(md5((g * 7)::text), '') "
                "FROM generate_series(1, 95) g), 30)")  # 91 kB, compresses to ~3 kB: out of line


@dataclass
class Tx:
    label: str
    status: str = "committed"
    changes: list[dict[str, Any]] = field(default_factory=list)


class Session:
    """A psycopg connection that reads every value as the text PostgreSQL prints."""

    def __init__(self, cluster: Cluster, db: str) -> None:
        import psycopg
        from psycopg.types.string import TextLoader

        self.conn = psycopg.connect(f"host={cluster.host} port={cluster.port} user=postgres "
                                    f"dbname={db}")
        with self.conn.cursor() as cur:
            cur.execute("SELECT oid FROM pg_type")
            oids = [r[0] for r in cur.fetchall()]
        self.conn.commit()
        for oid in oids:
            self.conn.adapters.register_loader(oid, TextLoader)
        self.conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; "
                          "SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; "
                          "SET bytea_output = 'hex'")
        self.conn.commit()
        self.cols: list[str] = []

    def rows(self, sql: str) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def where(self, table: str, cond: str) -> list[dict[str, Any]]:
        return self.rows(f"SELECT * FROM {table} WHERE {cond} ORDER BY 1")


def prepare_and_finish(s: Session, gid: str, how: str) -> None:
    s.conn.execute(f"PREPARE TRANSACTION '{gid}'")
    s.conn.commit()  # psycopg: end its own transaction block (a warning, nothing to commit)
    s.conn.autocommit = True
    s.conn.execute(f"{how} PREPARED '{gid}'")
    s.conn.autocommit = False


def insert_sql(table: str, rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    vals = ", ".join("(" + ", ".join(r[c] for c in cols) + ")" for r in rows)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES {vals} RETURNING *"


@dataclass
class Scenario:
    start: Lsn
    mid: Lsn
    end: Lsn
    txs: list[Tx]
    hash_before: str


TABLE_HASH = "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM t_all t"
NOKEY_HASH = "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM t_nokey t"


def table_hashes(c: Cluster, db: str) -> str:
    """Both tables' contents as one digest (psql, the server's own settings)."""
    return str(c.sql(TABLE_HASH, db=db)[0][0]) + str(c.sql(NOKEY_HASH, db=db)[0][0])


def run_workload(c: Cluster, logical: bool) -> Scenario:
    major = c.major
    cols = column_defs(major)
    c.execute("CREATE DATABASE app;")
    s = Session(c, "app")
    s.conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    s.conn.execute("CREATE TABLE t_all (" + ", ".join(f"{n} {t}" for n, t in cols) + ")")
    s.conn.execute("ALTER TABLE t_all ALTER c_ext SET STORAGE EXTERNAL")
    s.conn.execute("CREATE TABLE t_nokey (a int, b text)")
    if logical:
        s.conn.execute("ALTER TABLE t_all REPLICA IDENTITY FULL")
        s.conn.execute("ALTER TABLE t_nokey REPLICA IDENTITY FULL")
    s.conn.execute(insert_sql("t_all", [row_values(i, cols) for i in range(1, 21)]))
    s.conn.execute("INSERT INTO t_nokey VALUES (1, 'one'), (2, 'two'), (2, 'two'), (3, NULL)")
    s.conn.execute("ALTER TABLE t_all DROP COLUMN c_gone")
    s.conn.commit()
    cols = [(n, t) for n, t in cols if n != "c_gone"]
    # the copy the SQL is applied to, taken before the workload
    strategy = " STRATEGY = FILE_COPY" if major >= 15 else ""
    s.conn.close()
    c.execute(f"CREATE DATABASE app_copy TEMPLATE app{strategy};")
    hash_before = table_hashes(c, "app")
    s = Session(c, "app")
    c.execute("CHECKPOINT;")
    start = Lsn(c.current_lsn())
    txs: list[Tx] = []

    def tx(label: str) -> Tx:
        t = Tx(label)
        txs.append(t)
        return t

    def ins(t: Tx, rows: list[dict[str, str]], table: str = "t_all") -> None:
        for r in s.rows(insert_sql(table, rows)):
            t.changes.append({"op": "insert", "old": None, "new": r})

    def upd(t: Tx, sets: str, cond: str, table: str = "t_all") -> None:
        before = {r["id"]: r for r in s.where(table, cond)}
        for r in s.rows(f"UPDATE {table} SET {sets} WHERE {cond} RETURNING *"):
            old = before.get(r["id"]) or before[str(int(r["id"]) - 1000)]
            t.changes.append({"op": "update", "old": old, "new": r})

    def dele(t: Tx, cond: str) -> None:
        for r in s.rows(f"DELETE FROM t_all WHERE {cond} RETURNING *"):
            t.changes.append({"op": "delete", "old": r, "new": None})

    t = tx("single inserts")
    ins(t, [row_values(21, cols)])
    ins(t, [row_values(22, cols)])
    s.conn.commit()
    t = tx("multi-row insert")
    ins(t, [row_values(i, cols) for i in range(23, 31)])
    s.conn.commit()
    t = tx("copy")
    names = [n for n, _ in cols]
    texts = [s.rows("SELECT " + ", ".join(f"({e})::text AS {n}" for n, e in
                                         row_values(i, cols).items()))[0] for i in range(31, 41)]
    with s.conn.cursor() as cur:
        with cur.copy(f"COPY t_all ({', '.join(names)}) FROM STDIN") as cp:
            for text in texts:
                cp.write_row([text[n] for n in names])
    for r in s.where("t_all", "id BETWEEN 31 AND 40"):
        t.changes.append({"op": "insert", "old": None, "new": r})
    s.conn.commit()
    t = tx("hot update")
    upd(t, "c_text = 'hot ' || id, c_int8 = 7", "id = 5")
    s.conn.commit()
    mid = Lsn(c.current_lsn())
    t = tx("non-hot update and toast update")
    upd(t, "id = id + 1000", "id = 7")
    upd(t, f"c_big = {BIG_INLINE}, c_ext = {BIG_EXT}", "id = 8")
    s.conn.commit()
    t = tx("delete")
    dele(t, "id IN (3, 22)")
    s.conn.commit()
    t = tx("savepoint rolled back")
    ins(t, [row_values(50, cols)])
    s.conn.execute("SAVEPOINT s1")
    rolled = Tx("rolled back savepoint", "aborted")
    for r in s.rows(insert_sql("t_all", [row_values(51, cols)])):
        rolled.changes.append({"op": "insert", "old": None, "new": r})
    s.conn.execute("UPDATE t_all SET c_text = 'never' WHERE id = 6")
    s.conn.execute("ROLLBACK TO SAVEPOINT s1")
    ins(t, [row_values(52, cols)])
    s.conn.execute("SAVEPOINT s2")
    upd(t, "c_num = 42", "id = 9")  # a subtransaction that commits
    s.conn.execute("RELEASE SAVEPOINT s2")
    s.conn.commit()
    txs.append(rolled)
    t = tx("rolled back")
    t.status = "aborted"
    ins(t, [row_values(60, cols)])
    upd(t, "c_text = 'rolled back'", "id = 9")
    dele(t, "id = 10")
    s.conn.rollback()
    t = tx("2pc committed")
    ins(t, [row_values(70, cols)])
    upd(t, "c_bool = NOT c_bool", "id = 11")
    prepare_and_finish(s, "g1", "COMMIT")
    t = tx("2pc rolled back")
    t.status = "aborted"
    ins(t, [row_values(71, cols)])
    prepare_and_finish(s, "g2", "ROLLBACK")
    t = tx("big values")
    r80 = row_values(80, cols)
    r80.update(c_big=BIG_INLINE, c_ext=BIG_EXT)
    r81 = row_values(81, cols)
    r81.update(c_big=BIG_EXT_COMP, c_ext="NULL")
    if major >= 14:
        r81["c_lz4"] = BIG_EXT_COMP
        r80["c_lz4"] = BIG_INLINE
    ins(t, [r80])
    ins(t, [r81])
    upd(t, "c_text = 'touched'", "id = 81")  # the TOAST pointer is carried over
    upd(t, f"c_big = {BIG_EXT_COMP} || 'x'", "id = 80")
    s.conn.commit()
    t = tx("delete big")
    dele(t, "id = 81")
    s.conn.commit()
    t = tx("updates of pre-start rows")
    upd(t, "c_int4 = c_int4 + 1", "id = 12")
    upd(t, "c_int4 = c_int4 + 1", "id = 12")
    upd(t, "c_int4 = 0", "id BETWEEN 13 AND 16")
    s.conn.commit()
    t = tx("keyless table")
    s.conn.execute("INSERT INTO t_nokey VALUES (4, 'four')")
    s.conn.execute("UPDATE t_nokey SET b = 'TWO' WHERE ctid = (SELECT ctid FROM t_nokey "
                   "WHERE a = 2 LIMIT 1)")
    s.conn.execute("DELETE FROM t_nokey WHERE a = 1")
    s.conn.execute("UPDATE t_nokey SET b = 'three' WHERE a = 3")
    t.changes = []  # checked through SQL and hashes, not value by value
    t.label = "keyless (hash only)"
    s.conn.commit()
    s.conn.close()
    c.execute("SELECT pg_switch_wal();")
    end = Lsn(c.current_lsn())
    return Scenario(start, mid, end, txs, hash_before)


# -- comparison ----------------------------------------------------------------------------------
def canon(changes: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps([c["op"], c["old"], c["new"]], sort_keys=True) for c in changes)


def produced(changes: list[RowChange], table: str = "t_all") -> dict[int, list[RowChange]]:
    by_tx: dict[int, list[RowChange]] = {}
    for ch in changes:
        if ch.table == table:
            by_tx.setdefault(ch.xid, []).append(ch)
    return by_tx


def check_against(sc: Scenario, got: list[RowChange]) -> None:
    """Committed transactions in commit order, values exactly as psql printed them."""
    for ch in got:
        assert not ch.notes or all("raw" not in n for n in ch.notes), (ch.lsn, ch.notes)
        assert ch.status == "committed"
        assert ch.old_complete or ch.op == "insert", (ch.lsn, ch.op, ch.notes)
        assert ch.new_complete, (ch.lsn, ch.op, ch.notes)
    txs = [t for t in sc.txs if t.status == "committed" and t.changes]
    groups = list(produced(got).values())
    assert [len(g) for g in groups] == [len(t.changes) for t in txs], \
        [(t.label, len(t.changes)) for t in txs]
    for t, g in zip(txs, groups):
        want = canon(t.changes)
        have = canon([{"op": c.op, "old": c.old if c.op != "insert" else None,
                       "new": c.new if c.op != "delete" else None} for c in g])
        for w, h in zip(want, have):
            assert h == w, f"{t.label}:\n want {w}\n got  {h}"


@pytest.fixture(scope="module")
def scenario(request: pytest.FixtureRequest, pg_major: int, module_cluster_factory: Any
             ) -> tuple[Cluster, Scenario, Path]:
    level, comp = CONFIGS[pg_major]
    c = module_cluster_factory(pg_major, name=f"replay{pg_major}", wal_level=level,
                               wal_compression=comp, conf=CONF)
    sc = run_workload(c, logical=level == "logical")
    cat_path = c.base / "catalog.json"
    capture(f"host={c.host} port={c.port} user=postgres dbname=app").save(cat_path)
    return c, sc, cat_path


def test_every_change_as_psql_printed_it(scenario: Any) -> None:
    c, sc, cat_path = scenario
    rp = Replay([c.pg_wal], Catalog.load(cat_path), start=sc.start, end=sc.end)
    got = list(rp)
    assert not [w for w in rp.warnings if "other databases" not in w], rp.warnings
    check_against(sc, got)
    # commit times and LSNs: ordered, ISO with microseconds and +00
    commits = [ch.commit_lsn for ch in got]
    assert commits == sorted(commits)
    assert all(ch.commit_time and ch.commit_time.endswith("+00") for ch in got)


def test_aborted_work_is_marked_never_committed(scenario: Any) -> None:
    c, sc, cat_path = scenario
    got = list(Replay([c.pg_wal], Catalog.load(cat_path), start=sc.start, end=sc.end,
                      include="all"))
    aborted_ids = {ch.new["id"] for ch in got if ch.status == "aborted" and ch.new}
    assert {"51", "60", "71"} <= aborted_ids
    committed_new = {ch.new.get("id") for ch in got if ch.status == "committed" and ch.new}
    assert not {"51", "60", "71"} & committed_new
    assert all(ch.new.get("c_text") != "never" for ch in got
               if ch.status == "committed" and ch.new)
    prepared = [ch for ch in got if ch.new and ch.new.get("id") == "70"]
    assert prepared and prepared[0].status == "committed"


def test_redo_then_undo_sql_on_a_copy(scenario: Any, tmp_path: Path) -> None:
    c, sc, cat_path = scenario
    cat = Catalog.load(cat_path)
    redo, undo = tmp_path / "redo.sql", tmp_path / "undo.sql"
    with open(redo, "w") as fh:
        write_redo(Replay([c.pg_wal], cat, start=sc.start, end=sc.end), cat, fh)
    with open(undo, "w") as fh:
        write_undo(Replay([c.pg_wal], cat, start=sc.start, end=sc.end), cat, fh)
    assert "-- cannot" not in redo.read_text()
    after = table_hashes(c, "app")
    assert table_hashes(c, "app_copy") == sc.hash_before
    c.psql_raw(["-q", "-f", "-"], db="app_copy", input=redo.read_text())
    assert table_hashes(c, "app_copy") == after
    assert "-- cannot" not in undo.read_text()
    c.psql_raw(["-q", "-f", "-"], db="app_copy", input=undo.read_text())
    assert table_hashes(c, "app_copy") == sc.hash_before


def test_started_mid_way_old_rows_are_unknown_not_wrong(scenario: Any) -> None:
    c, sc, cat_path = scenario
    got = list(Replay([c.pg_wal], Catalog.load(cat_path), start=sc.mid, end=sc.end))
    want = {}
    for t in sc.txs:
        if t.status == "committed":
            for w in t.changes:
                if w["op"] != "insert":
                    key = (w["op"], (w["new"] or w["old"])["id"])
                    want.setdefault(key, []).append(w)
    incomplete = 0
    for ch in got:
        if ch.table != "t_all" or ch.op == "insert":
            continue
        ident = (ch.new or {}).get("id") or (ch.old or {}).get("id")
        if ident is None:  # the key is unknown: flagged, and what is shown is true
            assert not ch.old_complete and not ch.old, ch
            assert ch.op == "delete" or not ch.new_complete
            assert any(all(w["new"].get(k) == v for k, v in (ch.new or {}).items())
                       for ws in want.values() for w in ws if w["new"])
            incomplete += 1
            continue
        cands = want[(ch.op, ident)]
        if ch.old_complete:
            assert any(ch.old == w["old"] for w in cands), (ch.lsn, ch.old)
        else:
            incomplete += 1
            # whatever is shown is true
            assert any(all(w["old"].get(k) == v for k, v in ch.old.items()) for w in cands)
        if ch.new_complete and ch.op == "update":
            assert any(ch.new == w["new"] for w in cands)
    if c.wal_level == "replica":
        assert incomplete >= 3, "rows imaged before the start must be old_complete false"
    else:  # REPLICA IDENTITY FULL: every old row is in its record
        assert incomplete == 0


def test_cli_catalog_and_replay_jsonl(scenario: Any, tmp_path: Path) -> None:
    c, sc, _ = scenario
    cat = tmp_path / "cat.json"
    run = lambda *a: subprocess.run([sys.executable, "-m", "xlogtools.cli", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    res = run("catalog", "-d", f"host={c.host} port={c.port} user=postgres dbname=app",
              "-o", str(cat))
    assert res.returncode == 0, res.stderr
    doc = json.loads(cat.read_text())
    assert doc["format"] == "xlogtools-catalog/1" and doc["database"] == "app"
    t_all = next(r for r in doc["relations"] if r["name"] == "t_all")
    assert t_all["key"] == ["id"] and t_all["tablespace_oid"] != 0
    assert any(col["dropped"] for col in t_all["columns"])
    res = run("replay", str(c.pg_wal), "--catalog", str(cat), "--format", "jsonl",
              "-s", str(sc.start), "-e", str(sc.end), "--table", "t_all")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines and {x["op"] for x in lines} == {"insert", "update", "delete"}
    assert set(lines[0]) >= {"lsn", "xid", "subxid", "op", "schema", "table", "old", "new",
                             "old_complete", "commit_lsn", "commit_time", "status"}
    assert any(x["subxid"] for x in lines)  # the released savepoint's update
    res = run("replay", str(c.pg_wal), "--catalog", str(cat), "--format", "parquet",
              "-s", str(sc.start), "-o", str(tmp_path / "x.parquet"))
    assert res.returncode == 0, res.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "x.parquet").num_rows >= len(lines)


def test_mid_way_from_the_checkpoint_redo_point_is_complete(scenario: Any) -> None:
    """What a gap analysis does: read from the redo point of the checkpoint before the point of
    interest (every page changed after it has an image), report what commits after it."""
    c, sc, cat_path = scenario
    redo = checkpoint_redo_before([c.pg_wal], sc.mid)
    assert redo is not None and redo <= sc.start
    got = list(Replay([c.pg_wal], Catalog.load(cat_path), start=redo, end=sc.end,
                      commit_from=sc.mid))
    assert got and all(ch.commit_lsn >= sc.mid for ch in got)
    assert all(ch.old_complete and ch.new_complete for ch in got if ch.table == "t_all")
    full = [ch for ch in Replay([c.pg_wal], Catalog.load(cat_path), start=sc.start, end=sc.end)
            if ch.commit_lsn >= sc.mid]
    assert [ch.to_dict() for ch in got] == [ch.to_dict() for ch in full]
    by_xid = changes_by_xid([c.pg_wal], cat_path, {ch.xid for ch in got}, sc.mid)
    assert [d for x in by_xid.values() for d in x] == [ch.to_dict() for ch in got]
