"""Our waldump text equals pg_waldump's, line for line, on WAL that touches every resource manager.

Scenario: a fresh cluster with 1 MB segments, wal_level=logical and the features that make the
rarer record types appear (2PC, commit timestamps, replication origins, a logical slot, every
index AM including bloom's generic WAL) runs `run_workload`, once with wal_compression off and
once with the major's compression method; then pg_waldump of the same major and
`xlogtools.export.waldump` print the same WAL four ways (plain, -b, --stats, --stats=record)
and the outputs must be equal line for line (the first differing line is reported).
PostgreSQL 13 has no pg_waldump here, so on 13 we check that every record is identified and
described without an exception, and that reading reaches the final shutdown checkpoint.

Not produced by the workload (so not compared): XLOG NOOP, END_OF_RECOVERY (needs a promoted
standby), OVERWRITE_CONTRECORD (needs a crash in the middle of a record), Btree INSERT_META /
UNLINK_PAGE_META, Gist ASSIGN_LSN (wal_level=minimal only), 13's CommitTs SETTS (never written).

The workload (`run_workload`) is meant to be reused to make committed fixtures.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pytest

from xlogtools.export.waldump import format_record, format_stats
from xlogtools.export.writers import CHUNK_RECORDS, format_chunk
from xlogtools.parse.api import open_wal
from xlogtools.parse.rmgr import describe, identify, identify_info, rmgr_name
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, Unavailable

# wal_compression for the second run of each major (13/14 know only pglz, spelled "on").
COMPRESSION = {13: "pglz", 14: "pglz", 15: "lz4", 16: "zstd", 17: "pglz", 18: "lz4"}

# next xid / multixact / member offset set with pg_resetwal before the first start, each on an
# SLRU page boundary, so the workload crosses into new CLOG, commit_ts and multixact pages and
# the final freeze of every database can truncate the old ones.
# 3342336 = 102 CLOG pages; commit_ts pages hold 819 xids and 3342339 starts one.
RESET_XID = 3342336
RESET_MULTI = 2048  # first multixact of offsets page 1
RESET_MEMBER_OFFSET = 1636 * 2  # first member of members page 2

WORKLOAD_CONF: dict[str, object] = {
    "max_prepared_transactions": 5,
    "track_commit_timestamp": True,
    "wal_log_hints": True,
    "autovacuum": False,
    "checkpoint_timeout": "30min",
    "max_wal_size": "1GB",
    "wal_keep_size": "1GB",
    "log_min_messages": "warning",
}


def _setup_sql(major: int, tsdir: str) -> str:
    file_copy = " STRATEGY FILE_COPY" if major >= 15 else ""
    return f"""
CREATE EXTENSION bloom;
CREATE TABLESPACE ts LOCATION '{tsdir}';
CREATE DATABASE db2{file_copy};
CREATE TABLE tsp (id int) TABLESPACE ts;
INSERT INTO tsp VALUES (1);
DROP TABLE tsp;

-- heap: insert, update (HOT and not), delete, lock, speculative insert, multi-insert
CREATE TABLE t (id int PRIMARY KEY, k int, v text);
CREATE INDEX t_k ON t (k);
INSERT INTO t SELECT g, g % 10, md5(g::text) FROM generate_series(1, 2000) g;
UPDATE t SET v = v || 'x' WHERE id % 7 = 0;
UPDATE t SET k = k + 1 WHERE id % 11 = 0;
DELETE FROM t WHERE id % 13 = 0;
INSERT INTO t VALUES (13, 0, 'spec') ON CONFLICT DO NOTHING;
INSERT INTO t VALUES (1, 0, 'upsert') ON CONFLICT (id) DO UPDATE SET v = 'upserted';
BEGIN;
SELECT id FROM t WHERE id < 4 FOR UPDATE;
SELECT id FROM t WHERE id BETWEEN 4 AND 6 FOR NO KEY UPDATE;
COMMIT;
COPY t FROM STDIN;
5001\t1\tcopied
5002\t2\tcopied
5003\t3\tcopied
\\.
CREATE TABLE cp (id int, v text);
COPY cp FROM STDIN;
1\tone
2\ttwo
\\.

-- multixact in one session: a key-share lock, then a stronger lock in a subtransaction
BEGIN;
SELECT id FROM t WHERE id = 20 FOR KEY SHARE;
SAVEPOINT s1;
SELECT id FROM t WHERE id = 20 FOR UPDATE;
COMMIT;

-- sequences
CREATE SEQUENCE seq;
SELECT count(nextval('seq')) FROM generate_series(1, 40);
ALTER SEQUENCE seq RESTART 5;
SELECT nextval('seq');

-- transactions: subtransactions, aborts, assignment (> 64 subxids), 2PC
BEGIN;
INSERT INTO cp VALUES (10, 'a');
SAVEPOINT a;
INSERT INTO cp VALUES (11, 'b');
RELEASE a;
SAVEPOINT b;
INSERT INTO cp VALUES (12, 'c');
ROLLBACK TO b;
COMMIT;
BEGIN;
INSERT INTO cp VALUES (20, 'rolled back');
ROLLBACK;
DO $$
BEGIN
  FOR i IN 1..70 LOOP
    BEGIN
      INSERT INTO cp VALUES (100 + i, 'sub');
    EXCEPTION WHEN others THEN NULL;
    END;
  END LOOP;
END $$;
BEGIN;
INSERT INTO cp VALUES (30, 'prepared');
SAVEPOINT p;
INSERT INTO cp VALUES (31, 'prepared sub');
PREPARE TRANSACTION 'p1';
COMMIT PREPARED 'p1';
BEGIN;
CREATE TABLE pdrop (id int);
INSERT INTO cp VALUES (32, 'prepared');
PREPARE TRANSACTION 'p2';
ROLLBACK PREPARED 'p2';
BEGIN;
DROP TABLE cp;
PREPARE TRANSACTION 'p3';
COMMIT PREPARED 'p3';

-- logical messages
SELECT pg_logical_emit_message(true, 'xlt', 'transactional message');
SELECT pg_logical_emit_message(false, 'xlt', 'non-transactional message');

-- replication origins
SELECT pg_replication_origin_create('xlt_origin');
SELECT pg_replication_origin_session_setup('xlt_origin');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/AABBCC', '2021-02-03 04:05:06.789+00');
INSERT INTO t VALUES (7001, 1, 'from origin');
COMMIT;
BEGIN;
SELECT pg_replication_origin_xact_setup('0/AABBDD', '2021-02-03 04:05:07+00');
INSERT INTO t VALUES (7002, 1, 'rolled back from origin');
ROLLBACK;
BEGIN;
INSERT INTO t VALUES (7003, 1, 'prepared from origin');
PREPARE TRANSACTION 'p_origin';
COMMIT PREPARED 'p_origin';
SELECT pg_replication_origin_session_reset();
SELECT pg_replication_origin_advance('xlt_origin', '0/BBCCDD');
SELECT pg_replication_origin_drop('xlt_origin');
"""


INDEX_SQL = """
-- every index AM
CREATE TABLE idx (id int, k int, a int[], p point, b box, txt text, r int4range);
CREATE INDEX idx_hash ON idx USING hash (id);
CREATE INDEX idx_gin ON idx USING gin (a);
CREATE INDEX idx_gin_nofu ON idx USING gin (a) WITH (fastupdate = off);
CREATE INDEX idx_gist ON idx USING gist (p);
CREATE INDEX idx_gist_b ON idx USING gist (b);
CREATE INDEX idx_spgist ON idx USING spgist (p);
CREATE INDEX idx_spgist_t ON idx USING spgist (txt);
CREATE INDEX idx_spgist_r ON idx USING spgist (r);
CREATE INDEX idx_brin ON idx USING brin (id) WITH (pages_per_range = 2);
CREATE INDEX idx_bloom ON idx USING bloom (id, k);
CREATE INDEX idx_bt ON idx (txt);
CREATE INDEX idx_dup ON idx (k);
INSERT INTO idx SELECT g, g % 5, ARRAY[g % 10, g % 100, 1], point(g % 100, g / 100),
    box(point(g, g), point(g + 1, g + 1)), repeat(md5(g::text), 8), int4range(g, g + g % 17)
  FROM generate_series(1, 3000) g;
INSERT INTO idx SELECT 7, 7, ARRAY[7], point(7, 7), box(point(7, 7), point(8, 8)), 'seven',
    int4range(7, 8) FROM generate_series(1, 600) g;
DELETE FROM idx WHERE id % 3 <> 0 OR id = 7;
VACUUM idx;
CHECKPOINT;
SET wal_consistency_checking = 'gin,spgist,heap';
INSERT INTO idx SELECT g, g % 5, ARRAY[g % 10, 2], point(g % 50, g / 50),
    box(point(g, g), point(g + 2, g + 2)), repeat(md5((g * 7)::text), 8), int4range(g, g + 3)
  FROM generate_series(2901, 3000) g;
RESET wal_consistency_checking;
INSERT INTO idx SELECT g, g % 5, ARRAY[g % 10, 2], point(g % 50, g / 50),
    box(point(g, g), point(g + 2, g + 2)), repeat(md5((g * 7)::text), 8), int4range(g, g + 3)
  FROM generate_series(3001, 4500) g;
UPDATE idx SET k = k + 1 WHERE id % 4 = 0;
SELECT brin_summarize_new_values('idx_brin');
SELECT brin_desummarize_range('idx_brin', 0);
SELECT brin_summarize_range('idx_brin', 0);
DELETE FROM idx WHERE id > 2000;
VACUUM idx;
VACUUM idx;
INSERT INTO idx SELECT g, g % 5, ARRAY[g % 10], point(g % 30, g / 30),
    box(point(g, g), point(g + 3, g + 3)), repeat(md5((g * 3)::text), 8), int4range(g, g + 9)
  FROM generate_series(1, 1500) g;

-- LP_DEAD items set by index scans, then inserts into the same pages: btree DELETE, hash
-- VACUUM_ONE_PAGE, gist DELETE; emptied btree pages deleted and later reused (REUSE_PAGE);
-- hash overflow chains squeezed (MOVE_PAGE_CONTENTS)
CREATE TABLE bd (id int, k int, p point, pad text) WITH (fillfactor = 100);
CREATE INDEX bd_id ON bd (id);
CREATE INDEX bd_k ON bd USING hash (k);
CREATE INDEX bd_p ON bd USING gist (p);
INSERT INTO bd SELECT g, g % 4, point(g % 70, g / 70), 'x' FROM generate_series(1, 6000) g;
DELETE FROM bd WHERE id % 2 = 0 OR id BETWEEN 1500 AND 4500;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM bd WHERE id > 0;
SELECT count(*) FROM bd WHERE k = 1;
SELECT count(*) FROM bd WHERE k = 2;
SELECT count(*) FROM bd WHERE p <@ box '((0,0),(100,100))';
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO bd SELECT g, g % 4, point(g % 70, g / 70), 'y' FROM generate_series(2, 1400, 2) g;
VACUUM bd;
SELECT txid_current() > 0;  -- deleted btree pages become recyclable once an xid has passed
VACUUM bd;
INSERT INTO bd SELECT g, g % 4, point(g % 70, g / 70), 'z' FROM generate_series(1500, 4500) g;

-- SP-GiST radix tree: prefix splits (SPLIT_TUPLE), a root leaf vacuumed (VACUUM_ROOT)
CREATE TABLE sp (t text);
CREATE INDEX sp_t ON sp USING spgist (t);
INSERT INTO sp SELECT 'commonprefix' || g FROM generate_series(1, 400) g;
INSERT INTO sp VALUES ('commonpre_zzz'), ('comx'), ('xyz'), ('c'), (NULL), (NULL);
CREATE TABLE sp_small (t text);
CREATE INDEX sp_small_t ON sp_small USING spgist (t);
INSERT INTO sp_small VALUES ('a'), ('b'), ('c');
DELETE FROM sp_small WHERE t <> 'a';
VACUUM sp_small;

-- a GIN posting tree grown one tuple at a time (leaf splits insert posting items into its
-- internal page), rows loaded by COPY (multi-insert); then a middle stretch of the heap is
-- deleted and VACUUM empties posting tree pages (DELETE_PAGE)
CREATE TABLE gp (a int[]);
CREATE INDEX gp_a ON gp USING gin (a) WITH (fastupdate = off);
COPY gp FROM STDIN;
""" + "{42}\n" * 30000 + """\\.
DELETE FROM gp WHERE ctid > '(8,0)' AND ctid < '(170,0)';
VACUUM gp;

-- BRIN summaries of text that grow until they no longer fit their page (UPDATE); the heap
-- rows are updated in place (fillfactor) so the summarized ranges are the ones that change
CREATE TABLE bt (id int, t text) WITH (fillfactor = 10);
CREATE INDEX bt_t ON bt USING brin (t) WITH (pages_per_range = 1);
INSERT INTO bt SELECT g, 'm' FROM generate_series(1, 200) g;
SELECT brin_summarize_new_values('bt_t');
-- hex digits of distinct md5s: too random for pglz, so the summaries really grow
UPDATE bt SET t = 'a' || (SELECT string_agg(md5((id * 100 + i)::text), '')
                          FROM generate_series(1, 25) i) WHERE id % 10 = 1;
UPDATE bt SET t = 'z' || (SELECT string_agg(md5((id * 100 + i)::text), '')
                          FROM generate_series(1, 25) i) WHERE id % 10 = 2;

-- many multixacts: each row is key-share locked by the transaction, then locked for update
-- in its own subtransaction (a new member set each time, so no multixact is reused); the
-- multixact counter crosses into a new offsets page
BEGIN;
SELECT count(*) FROM (SELECT id FROM bd WHERE id < 2600 FOR KEY SHARE) s;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT id FROM bd WHERE id < 2600 LOOP
    BEGIN
      PERFORM 1 FROM bd WHERE id = r.id FOR UPDATE;
    EXCEPTION WHEN others THEN NULL;
    END;
  END LOOP;
END $$;
COMMIT;

-- heap maintenance: vacuum, freeze, truncation, rewrites
CREATE TABLE vac (id int, v text);
INSERT INTO vac SELECT g, repeat('v', 100) FROM generate_series(1, 3000) g;
DELETE FROM vac WHERE id > 1000 OR id % 2 = 0;
VACUUM vac;
VACUUM FREEZE vac;
UPDATE vac SET v = 'u' WHERE id < 100;
SELECT count(*) FROM vac WHERE v = 'u';
VACUUM FULL vac;
CLUSTER t USING t_pkey;
TRUNCATE vac;
CREATE TABLE tr (id int);
BEGIN;
TRUNCATE tr;
INSERT INTO tr VALUES (1);
COMMIT;
CREATE TABLE tr2 (id serial PRIMARY KEY);
CREATE TABLE tr3 (id int REFERENCES tr2);
INSERT INTO tr2 DEFAULT VALUES;
INSERT INTO tr3 VALUES (1);
TRUNCATE tr2 RESTART IDENTITY CASCADE;
CREATE UNLOGGED TABLE ul (id int PRIMARY KEY);
INSERT INTO ul VALUES (1);
"""


def _xlog_sql(major: int) -> str:
    if major >= 15:
        backup = "SELECT pg_backup_start('xlt', true);\nSELECT lsn FROM pg_backup_stop();"
    else:
        backup = ("SELECT pg_start_backup('xlt', true, false);\n"
                  "SELECT lsn FROM pg_stop_backup(false);")
    return f"""
-- hint bits after a checkpoint: FPI_FOR_HINT (wal_log_hints)
CREATE TABLE hint (id int);
INSERT INTO hint SELECT generate_series(1, 500);
CHECKPOINT;
SELECT count(*) FROM hint;
SELECT pg_create_restore_point('xlt_restore_point');
{backup}
-- catalog rewrite with a logical slot present: heap2 REWRITE, RelMap UPDATE
SELECT 'slot' FROM pg_create_logical_replication_slot('xlt_slot', 'pgoutput');
CREATE TABLE logical_t (id int PRIMARY KEY, v text);
INSERT INTO logical_t VALUES (1, 'a');
UPDATE logical_t SET v = 'b';
DELETE FROM logical_t;
VACUUM FULL pg_class;
SELECT pg_drop_replication_slot('xlt_slot');
CREATE DATABASE db3;
DROP DATABASE db3;
DROP TABLESPACE ts;
"""


FREEZE_ALL_SQL = """
UPDATE pg_database SET datallowconn = true WHERE datname = 'template0';
"""

ENDING_SQL = """
ALTER SYSTEM SET full_page_writes = off;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
CHECKPOINT;
"""

RESTORE_FPW_SQL = """
ALTER SYSTEM RESET full_page_writes;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
CHECKPOINT;
SELECT pg_switch_wal();
INSERT INTO t VALUES (9001, 1, 'after switch');
CHECKPOINT;
"""


def _concurrent_locks(cluster: Cluster) -> None:
    """Two sessions: a non-key UPDATE holds its row while another session takes FOR KEY SHARE
    on it (a multixact on the old version, LOCK_UPDATED on the new one), and two FOR SHARE
    lockers share a row.  Checkpoints taken meanwhile log running transactions with their
    subtransactions (RUNNING_XACTS), listed or overflowed."""
    holder = _psql_session(cluster, "BEGIN;\nUPDATE t SET v = 'held' WHERE id = 30;\n"
                           "SAVEPOINT a;\nINSERT INTO t VALUES (8001, 1, 'sub a');\n"
                           "SAVEPOINT b;\nINSERT INTO t VALUES (8002, 1, 'sub b');\n"
                           "SELECT id FROM t WHERE id = 31 FOR SHARE;\n"
                           "SELECT pg_sleep(2);\nCOMMIT;\n")
    time.sleep(0.8)
    # RUNNING_XACTS of this checkpoint lists the holder and its subtransactions
    cluster.execute("BEGIN;\nSELECT id FROM t WHERE id = 30 FOR KEY SHARE;\n"
                    "SELECT id FROM t WHERE id = 31 FOR SHARE;\nCOMMIT;\nCHECKPOINT;\n")
    _wait(holder)
    # ... and this one a transaction with more subtransactions than a snapshot keeps
    holder = _psql_session(cluster, "BEGIN;\nINSERT INTO t VALUES (8003, 1, 'top');\n"
                           "DO $$ BEGIN FOR i IN 1..70 LOOP BEGIN "
                           "INSERT INTO t VALUES (8100 + i, 1, 'sub'); "
                           "EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;\n"
                           "SELECT pg_sleep(1.5);\nCOMMIT;\n")
    time.sleep(0.8)
    cluster.execute("CHECKPOINT;")
    _wait(holder)


def _psql_session(cluster: Cluster, script: str) -> subprocess.Popen[str]:
    """A second psql session running `script` in the background."""
    proc = subprocess.Popen(
        [str(cluster.tool("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.host,
         "-p", str(cluster.port), "-U", "postgres", "-d", "postgres"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        user="postgres" if os.geteuid() == 0 else None, cwd="/",
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def _wait(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err


def run_workload(cluster: Cluster, *, reset_counters: bool = True) -> None:
    """Initialize-then-run: call on an initialized, *stopped* cluster made with WORKLOAD_CONF
    and wal_level=logical.  Leaves it stopped (cleanly), its pg_wal holding the whole story."""
    major = cluster.major
    if reset_counters:
        try:
            resetwal = cluster.tool("pg_resetwal")
        except Unavailable:
            resetwal = None
        if resetwal is not None:
            # a first start with track_commit_timestamp=on creates commit_ts segment 0, which
            # the final freeze can then truncate (the WAL of this start is reset away)
            cluster.start()
            cluster.stop()
            cluster.run([resetwal, "-x", str(RESET_XID), "-m", f"{RESET_MULTI},1",
                         "-O", str(RESET_MEMBER_OFFSET), "-D", cluster.datadir])
    tsdir = cluster.base / "ts"  # the tablespace directory must belong to the server user
    tsdir.mkdir(mode=0o700, exist_ok=True)
    user = pgbin.server_user()
    if user is not None:
        os.chown(tsdir, user.pw_uid, user.pw_gid)
    cluster.start()
    cluster.execute(_setup_sql(major, str(tsdir)))
    _concurrent_locks(cluster)
    cluster.execute(INDEX_SQL)
    # enough transactions to cross a commit_ts page (819 xids) wherever we are
    cluster.execute("DO $$ BEGIN FOR i IN 1..900 LOOP PERFORM txid_current(); COMMIT; "
                    "END LOOP; END $$;")
    cluster.execute(_xlog_sql(major))
    # freeze everything with full_page_writes off (FPW_CHANGE), so CLOG, commit_ts and
    # multixact can be truncated without writing a full-page image of every catalog page
    cluster.execute(ENDING_SQL)
    cluster.execute(FREEZE_ALL_SQL)
    for db in ("template0", "template1", "db2", "postgres"):
        cluster.execute("VACUUM FREEZE;", db=db)
    cluster.execute(RESTORE_FPW_SQL)
    cluster.stop()


# ---------------------------------------------------------------------------------------------
# comparison


def _segments(pg_wal: Path) -> list[str]:
    return sorted(p.name for p in pg_wal.iterdir() if len(p.name) == 24 and p.is_file())


def pg_waldump(major: int, pg_wal: Path, *args: str) -> list[str]:
    """pg_waldump's stdout from the first segment on (it stops at the end of valid WAL)."""
    exe = pgbin.tool(major, "pg_waldump")
    segs = _segments(pg_wal)
    res = subprocess.run([str(exe), *args, "-p", str(pg_wal), segs[0], segs[-1]],
                         capture_output=True, text=True, timeout=120)
    # pg_waldump ends with an error at the end of WAL; stdout is what we compare.  Commit
    # times are printed in the local time zone of the process: it inherits ours.
    return res.stdout.splitlines()


def ours(pg_wal: Path, mode: str) -> list[str]:
    """xlogtools.export.waldump's lines for the same WAL and mode."""
    reader = open_wal(pg_wal)
    if mode.startswith("stats"):
        assert reader.source.cluster is not None
        major = reader.source.cluster.pg_major
        return format_stats(reader, major, per_record=(mode == "stats=record")).splitlines()
    # the chunks of `dump --format waldump` (the C lines when the extension is built), which
    # must also equal format_record's line of each record
    bkp = mode == "-b"
    records = list(reader)
    out: list[str] = []
    for i in range(0, len(records), CHUNK_RECORDS):
        out.extend(format_chunk(records[i:i + CHUNK_RECORDS], "waldump", bkp).splitlines())
    per_record = [line for rec in records for line in format_record(rec, bkp).split("\n")]
    assert first_difference(per_record, out) is None, first_difference(per_record, out)
    return out


def first_difference(expected: list[str], got: list[str]) -> str | None:
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            return f"line {i + 1}:\n  pg_waldump: {e}\n  xlogtools:  {g}"
    if len(expected) != len(got):
        n = min(len(expected), len(got))
        extra = expected[n] if len(expected) > n else got[n]
        return (f"line counts differ: pg_waldump {len(expected)}, xlogtools {len(got)}; "
                f"first extra line: {extra}")
    return None


MODES = {"plain": [], "-b": ["-b"], "stats": ["--stats"], "stats=record": ["--stats=record"]}


def compare_all(major: int, pg_wal: Path) -> dict[str, int]:
    """Compare every mode; returns lines compared per mode, raises AssertionError on a diff."""
    counts: dict[str, int] = {}
    problems = []
    for mode, args in MODES.items():
        expected = pg_waldump(major, pg_wal, *args)
        got = ours(pg_wal, mode)
        diff = first_difference(expected, got)
        if diff:
            problems.append(f"[{mode}] {diff}")
        counts[mode] = len(expected)
    assert not problems, "\n".join(problems)
    return counts


def seen_types(pg_wal: Path) -> Counter[str]:
    c: Counter[str] = Counter()
    for rec in open_wal(pg_wal):
        c[f"{rec.rmgr_name}/{identify(rec)}"] += 1
    return c


# ---------------------------------------------------------------------------------------------
# tests


@pytest.fixture(scope="module")
def workload_wal(pg_major: int, module_cluster_factory: Any) -> dict[str, Path]:
    """pg_wal of the workload per wal_compression setting ('off' and the major's method)."""
    out = {}
    for comp in ("off", COMPRESSION[pg_major]):
        cluster = module_cluster_factory(pg_major, name=f"rmgr{pg_major}-{comp}", start=False,
                                         wal_level="logical", wal_compression=comp,
                                         conf=WORKLOAD_CONF)
        run_workload(cluster)
        out[comp] = cluster.pg_wal
    return out


def test_every_record_identified_and_described(pg_major: int, workload_wal: dict[str, Path]
                                               ) -> None:
    """Every record has a name and a description, and reading gets to the end: the last
    record is the shutdown checkpoint of the clean stop (the only check 13 gets)."""
    for pg_wal in workload_wal.values():
        n = 0
        last = None
        for rec in open_wal(pg_wal):
            assert identify(rec) is not None, f"{rec.lsn}: {rec.rmgr_name} info {rec.info:#x}"
            describe(rec)
            format_record(rec, bkp_details=True)
            n += 1
            last = rec
        assert n > 1000
        assert last is not None and (last.rmgr_name, identify(last)) == \
            ("XLOG", "CHECKPOINT_SHUTDOWN")


@pytest.mark.parametrize("comp", ["off", "compressed"])
def test_waldump_output_equal(pg_major: int, workload_wal: dict[str, Path], comp: str,
                              record_property: Any) -> None:
    if pg_major == 13:
        pytest.skip("no pg_waldump 13 here: PostgreSQL 13 is checked by "
                    "test_every_record_identified_and_described")
    try:
        pgbin.tool(pg_major, "pg_waldump")
    except Unavailable as exc:
        pytest.skip(exc.reason)
    key = "off" if comp == "off" else COMPRESSION[pg_major]
    counts = compare_all(pg_major, workload_wal[key])
    record_property("lines_compared", counts)
    print(f"pg{pg_major} wal_compression={key}: lines compared {counts}")
    assert counts["plain"] > 1000


def test_workload_touches_every_rmgr(pg_major: int, workload_wal: dict[str, Path]) -> None:
    seen = {k.split("/")[0] for k in seen_types(workload_wal["off"])}
    want = {"XLOG", "Transaction", "Storage", "CLOG", "Database", "Tablespace", "MultiXact",
            "RelMap", "Standby", "Heap2", "Heap", "Btree", "Hash", "Gin", "Gist", "Sequence",
            "SPGist", "BRIN", "CommitTs", "ReplicationOrigin", "Generic", "LogicalMessage"}
    if pg_major == 13:
        want.discard("CLOG")  # no pg_resetwal in the server-only 13 build: no new CLOG page
    assert want <= seen, f"not seen: {sorted(want - seen)}"


def _dev_main(argv: Iterable[str]) -> None:  # pragma: no cover - developer helper
    """python tests/test_rmgr_desc.py MAJOR COMP DIR: build the workload WAL in DIR/..."""
    major, comp, base = list(argv)
    cluster = Cluster(int(major), base, wal_level="logical", wal_compression=comp,
                      conf=WORKLOAD_CONF)
    cluster.init()
    t0 = time.monotonic()
    run_workload(cluster)
    print(f"workload done in {time.monotonic() - t0:.1f}s: {cluster.pg_wal}")


if __name__ == "__main__":  # pragma: no cover
    import sys

    _dev_main(sys.argv[1:])


@pytest.mark.parametrize(("rmid", "info", "names"), [
    (9, 0x10, {13: "CLEAN", 14: "PRUNE", 16: "PRUNE", 17: "PRUNE_ON_ACCESS"}),
    (9, 0x30, {13: "CLEANUP_INFO", 14: "FREEZE_PAGE", 17: "PRUNE_VACUUM_CLEANUP"}),
    (9, 0xD0, {13: "MULTI_INSERT+INIT", 18: "MULTI_INSERT+INIT"}),
    (0, 0xE0, {16: None, 17: "CHECKPOINT_REDO"}),
    (1, 0x60, {13: None, 14: "INVALIDATION"}),
    (1, 0x80, {13: "COMMIT", 18: "COMMIT"}),  # XLOG_XACT_HAS_INFO is a flag
    (4, 0x00, {14: "CREATE", 15: "CREATE_FILE_COPY"}),
    (4, 0x10, {14: "DROP", 15: "CREATE_WAL_LOG"}),
    (18, 0x20, {13: "SETTS", 14: None}),
    (10, 0xC0, {13: "HOT_UPDATE+INIT"}),
    (130, 0x10, {15: None}),
])
def test_identify_follows_the_major(rmid: int, info: int, names: dict[int, str | None]) -> None:
    for major, name in names.items():
        assert identify_info(rmid, info, major) == name, (rmid, hex(info), major)


def test_rmgr_names() -> None:
    assert [rmgr_name(i) for i in (0, 9, 10, 20, 21)] == \
        ["XLOG", "Heap2", "Heap", "Generic", "LogicalMessage"]
    assert rmgr_name(128) == "custom128" and rmgr_name(255) == "custom255"
