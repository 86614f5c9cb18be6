"""xact_time and commit_time in the record rows of dump (DESIGN.md 4.1), against the server's
own pg_xact_commit_timestamp() (track_commit_timestamp = on)."""
from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq


def test_commit_times_equal_the_servers(pg_major: int, cluster_factory, tmp_path: Path) -> None:
    c = cluster_factory(pg_major, conf={"track_commit_timestamp": "on"})
    c.execute("CREATE TABLE t (id int, v text);")

    def run(script: str) -> list[str]:
        return c.execute(script).split()

    plain = int(run("BEGIN; INSERT INTO t VALUES (1, 'a'); SELECT txid_current(); COMMIT;")[-1])
    top = int(run("BEGIN; INSERT INTO t VALUES (2, 'b'); SAVEPOINT s; "
                  "INSERT INTO t VALUES (3, 'c'); SELECT txid_current(); COMMIT;")[-1])
    aborted = int(run("BEGIN; INSERT INTO t VALUES (4, 'd'); SELECT txid_current(); ROLLBACK;")[-1])
    run("INSERT INTO t VALUES (5, 'flush');")
    ts = {x: c.sql(f"SELECT pg_xact_commit_timestamp('{x}'::xid) AT TIME ZONE 'UTC'")[0][0]
          for x in (plain, top)}
    c.stop()

    def stamp(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("+00", "")).replace(tzinfo=dt.timezone.utc)

    want = {x: stamp(v) for x, v in ts.items()}
    out = tmp_path / "wal.parquet"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "dump", str(c.pg_wal),
                           "--format", "parquet", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(out).to_pylist()
    by_xid: dict[int, list[dict]] = {}
    for r in rows:
        by_xid.setdefault(r["xid"], []).append(r)
    for x in (plain, top):
        recs = by_xid[x]
        assert recs and all(r["commit_time"] == want[x] for r in recs), x
        commit = [r for r in recs if r["rmgr"] == "Transaction" and r["record_type"] == "COMMIT"]
        assert len(commit) == 1 and commit[0]["xact_time"] == want[x]
        assert all(r["xact_time"] is None for r in recs if r["rmgr"] != "Transaction")
    # the subtransaction's records carry its top-level transaction's commit time
    subs = [r for r in rows if r["xid"] not in (plain, top, aborted, 0)
            and r["rmgr"] == "Heap" and r["commit_time"] == want[top]]
    assert subs, "the savepoint's insert (written with its own xid) has the parent's time"
    # an aborted transaction: its abort record has a time, no record a commit time
    recs = by_xid[aborted]
    assert all(r["commit_time"] is None for r in recs)
    assert [r["xact_time"] is not None for r in recs if r["record_type"] == "ABORT"] == [True]
    # the same columns in jsonl and csv, as text
    for fmt in ("jsonl", "csv"):
        proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "dump", str(c.pg_wal),
                               "--format", fmt], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        got = ([json.loads(x) for x in proc.stdout.splitlines()] if fmt == "jsonl"
               else list(csv.DictReader(proc.stdout.splitlines())))
        commit = next(r for r in got if int(r["xid"]) == plain and r["record_type"] == "COMMIT")
        assert stamp(commit["xact_time"]) == want[plain] == stamp(commit["commit_time"])
