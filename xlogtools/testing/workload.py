"""A workload that makes every built-in resource manager write WAL, for fixtures and tests.

Each step is plain SQL run by `run_every_rmgr(cluster)`; steps a major cannot do are skipped
and returned, so callers can say what was not covered. The cluster should run with
wal_level=logical, track_commit_timestamp=on and max_prepared_transactions > 0
(`EVERY_RMGR_CONF`), so Heap2 NEW_CID, Heap TRUNCATE, CommitTs and 2PC records appear.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import Cluster

EVERY_RMGR_CONF: dict[str, object] = {
    "wal_level": "logical",
    "track_commit_timestamp": "on",
    "max_prepared_transactions": 5,
    "autovacuum": "off",  # our VACUUMs, not the daemon's, at predictable places
    "checkpoint_timeout": "1h",
    "max_wal_size": "1GB",
    "min_wal_size": "32MB",
    "wal_keep_size": "256MB",
}

SETUP = """
CREATE TABLE t_heap (id int PRIMARY KEY, v text, n numeric, tags text[], doc jsonb, p point,
                     rng int4range, ts timestamptz DEFAULT now());
CREATE INDEX t_heap_hash ON t_heap USING hash (v);
CREATE INDEX t_heap_gin ON t_heap USING gin (tags);
CREATE INDEX t_heap_gist ON t_heap USING gist (p);
CREATE INDEX t_heap_spgist ON t_heap USING spgist (rng);
CREATE INDEX t_heap_brin ON t_heap USING brin (ts) WITH (pages_per_range = 1);
CREATE EXTENSION IF NOT EXISTS bloom;
CREATE INDEX t_heap_bloom ON t_heap USING bloom (id);
CREATE SEQUENCE s_seq;
CREATE TABLE t_copy (a int, b text);
CREATE UNLOGGED TABLE t_unlogged (a int);
"""

DML = """
INSERT INTO t_heap (id, v, n, tags, doc, p, rng)
  SELECT g, 'value ' || g, g * 1.5, ARRAY['a' || (g % 7), 'b' || (g % 3)],
         jsonb_build_object('k', g), point(g % 50, g / 50), int4range(g, g + 10)
  FROM generate_series(1, 1000) g;
COPY t_copy FROM PROGRAM 'seq 1 1500 | sed -e "s/$/\\tcopied/"';
UPDATE t_heap SET n = n + 1 WHERE id % 10 = 0;          -- HOT
UPDATE t_heap SET v = v || 'x' WHERE id % 25 = 0;        -- non-HOT (indexed column)
DELETE FROM t_heap WHERE id % 17 = 0;
INSERT INTO t_heap (id, v) VALUES (1, 'conflict') ON CONFLICT (id) DO UPDATE SET v = 'upserted';
INSERT INTO t_heap (id, v) VALUES (100000, 'spec') ON CONFLICT DO NOTHING;
SELECT nextval('s_seq') FROM generate_series(1, 40);
SELECT pg_logical_emit_message(true, 'xlogtools', 'transactional message');
SELECT pg_logical_emit_message(false, 'xlogtools', 'non-transactional message');
"""

TRANSACTIONS = """
BEGIN; INSERT INTO t_copy VALUES (-1, 'rolled back'); ROLLBACK;
BEGIN; INSERT INTO t_copy VALUES (-2, 'kept'); SAVEPOINT s1;
  INSERT INTO t_copy VALUES (-3, 'savepoint rolled back'); ROLLBACK TO s1; COMMIT;
BEGIN; INSERT INTO t_copy VALUES (-4, 'prepared'); PREPARE TRANSACTION 'gx1';
COMMIT PREPARED 'gx1';
BEGIN; INSERT INTO t_copy VALUES (-5, 'prepared, rolled back'); PREPARE TRANSACTION 'gx2';
ROLLBACK PREPARED 'gx2';
-- A multixact: a share lock by the top transaction, an update by its subtransaction.
BEGIN; SELECT * FROM t_heap WHERE id = 2 FOR SHARE; SAVEPOINT s2;
  UPDATE t_heap SET v = 'multi' WHERE id = 2; COMMIT;
BEGIN; SELECT * FROM t_heap WHERE id = 3 FOR KEY SHARE; UPDATE t_heap SET n = 0 WHERE id = 3; COMMIT;
-- Many subtransactions: XACT_ASSIGNMENT once 64 subxids are unreported.
DO $$ BEGIN FOR i IN 1..70 LOOP
  BEGIN INSERT INTO t_copy VALUES (i + 10000, 'sub'); EXCEPTION WHEN OTHERS THEN NULL; END;
END LOOP; END $$;
"""

MAINTENANCE = """
DELETE FROM t_copy WHERE a > 1000;
VACUUM t_copy;                                   -- Heap2 PRUNE/VACUUM, Storage TRUNCATE
VACUUM (FREEZE) t_heap;                          -- FREEZE_PAGE, VISIBLE, index vacuums
DELETE FROM t_heap WHERE id BETWEEN 100 AND 900;
VACUUM t_heap;                                   -- btree page deletion, gin/gist/spgist/brin vacuum
CLUSTER t_heap USING t_heap_pkey;
VACUUM FULL pg_class;                            -- RelMap UPDATE
TRUNCATE t_copy;                                 -- Heap TRUNCATE (wal_level logical)
BEGIN; LOCK TABLE t_unlogged IN ACCESS EXCLUSIVE MODE; COMMIT;  -- Standby LOCK
SELECT pg_create_restore_point('xlogtools');
CHECKPOINT;
"""


@dataclass
class WorkloadResult:
    skipped: list[str] = field(default_factory=list)
    start_lsn: str = ""
    end_lsn: str = ""


def run_every_rmgr(cluster: "Cluster", tablespace_dir: str | os.PathLike[str] | None = None
                   ) -> WorkloadResult:
    """Run the every-rmgr workload on a started primary; returns what it had to skip."""
    res = WorkloadResult()
    major = cluster.major
    res.start_lsn = cluster.current_lsn()
    cluster.execute(SETUP)
    cluster.execute(DML)
    cluster.execute(TRANSACTIONS)
    # Database: FILE_COPY keeps CREATE DATABASE to a few records (15+ default WAL_LOG copies
    # the whole template through WAL).
    strategy = " STRATEGY = FILE_COPY" if major >= 15 else ""
    cluster.execute(f"CREATE DATABASE db_extra{strategy};")
    cluster.execute("DROP DATABASE db_extra;")
    # Tablespace: a directory the server user owns.
    ts_dir = Path(tablespace_dir) if tablespace_dir else cluster.base / "ts1"
    cluster._mkdir(ts_dir, 0o700)  # noqa: SLF001 - the harness owns directory ownership rules
    cluster.execute(f"CREATE TABLESPACE ts1 LOCATION '{ts_dir}';")
    cluster.execute("CREATE TABLE t_ts (a int) TABLESPACE ts1; INSERT INTO t_ts VALUES (1);"
                    "DROP TABLE t_ts; DROP TABLESPACE ts1;")
    # Replication origin: create, advance (SET), drop.
    cluster.execute("SELECT pg_replication_origin_create('xlogtools_origin');"
                    "SELECT pg_replication_origin_advance('xlogtools_origin', '0/1000');"
                    "SELECT pg_replication_origin_drop('xlogtools_origin');")
    # Generic WAL (bloom index inserts) came with DML; XLOG records:
    cluster.execute("SELECT pg_switch_wal();")
    cluster.execute(MAINTENANCE)
    cluster.execute("SELECT pg_logical_emit_message(true, 'xlogtools', 'after checkpoint');")
    res.end_lsn = cluster.current_lsn()
    return res
