"""The real-PostgreSQL harness itself works, on every major (no mocks: real servers)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, ClusterError, Unavailable, wait_until

# XLOG_PAGE_MAGIC per major (DESIGN.md, "Versions"): proves the binaries are the major we asked for.
PAGE_MAGIC = {13: 0xD106, 14: 0xD10D, 15: 0xD110, 16: 0xD113, 17: 0xD116, 18: 0xD118}
SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (this machine's init may never reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _cluster_processes(datadir: Path) -> list[int]:
    """Live processes whose command line names the data directory (postmasters)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(datadir).encode() in cmdline and _alive(int(entry)):
                found.append(int(entry))
    return found


def _try_sql(cluster: Cluster, query: str) -> list[tuple[str | None, ...]] | None:
    try:
        return cluster.sql(query)
    except ClusterError:
        return None


def test_sql_segment_size_and_wal_files(cluster_factory, pg_major: int) -> None:
    c = cluster_factory(name="basic")
    assert c.sql("SELECT current_setting('server_version_num')::int / 10000") == \
        [(str(pg_major),)]
    c.execute("CREATE TABLE t (id int PRIMARY KEY, note text);\n"
              "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1234) g;")
    assert c.sql("SELECT count(*) FROM t") == [("1234",)]
    assert c.sql("SHOW wal_segment_size") == [("1MB",)]
    # Values with separators, quotes, newlines; NULL vs empty string; no rows.
    assert c.sql("SELECT NULL::text, '', E'a,b\"c\\nd|e\\tf'") == [(None, "", 'a,b"c\nd|e\tf')]
    assert c.sql("SELECT ''") == [("",)]
    assert c.sql("SELECT 1 WHERE false") == []
    with pytest.raises(ClusterError, match="no_such_table"):
        c.sql("SELECT * FROM no_such_table")

    # Client tools work (13 borrows Debian 15's pgbench/psql).
    c.pgbench(["-i", "-s", "1", "-q"])
    c.pgbench(["-n", "-c", "2", "-t", "25"])
    assert c.sql("SELECT count(*) FROM pgbench_history") == [("50",)]

    # The WAL is ours to read even though the server runs as another user.
    c.sql("CHECKPOINT")
    segments = sorted(p for p in c.pg_wal.iterdir() if SEGMENT_NAME.fullmatch(p.name))
    assert segments and all(p.stat().st_size == 1 << 20 for p in segments)
    head = segments[0].read_bytes()[:8192]
    magic, info = struct.unpack_from("<HH", head)
    assert magic == PAGE_MAGIC[pg_major]
    assert info & 0x0002  # XLP_LONG_HEADER on a segment's first page
    assert struct.unpack_from("<I", head, 32)[0] == 1 << 20  # xlp_seg_size

    user = pgbin.server_user()
    if user is not None:
        assert c.datadir.stat().st_uid == user.pw_uid
    assert "database system is ready to accept connections" in c.log_text()


def test_streaming_standby_and_promote(primary_standby, pg_major: int) -> None:
    primary, standby = primary_standby(name="prim")
    assert standby.sql("SELECT pg_is_in_recovery()") == [("t",)]
    assert standby.sql("SHOW hot_standby") == [("on",)]
    primary.execute("CREATE TABLE r (id int PRIMARY KEY, v text);\n"
                    "INSERT INTO r VALUES (1, 'one'), (2, NULL);")
    wait_until(lambda: _try_sql(standby, "SELECT v FROM r ORDER BY id") == [("one",), (None,)],
               timeout=30, what="row to reach the standby")
    assert primary.sql("SELECT application_name, state FROM pg_stat_replication") == \
        [(standby.name, "streaming")]
    with pytest.raises(ClusterError, match="read-only"):
        standby.sql("INSERT INTO r VALUES (3, 'x')")

    standby.promote()
    standby.sql("INSERT INTO r VALUES (3, 'three')")
    assert standby.sql("SELECT count(*) FROM r") == [("3",)]


def test_crash_kills_all_processes_and_recovers(cluster_factory, pg_major: int) -> None:
    # Compressed full-page images must survive crash recovery too.
    method = "lz4" if pg_major >= 15 else "pglz"
    c = cluster_factory(name="crash", wal_compression=method,
                        conf={"checkpoint_timeout": "1h", "synchronous_commit": "on"})
    assert c.sql("SHOW wal_compression") == [("lz4" if pg_major >= 15 else "on",)]
    c.execute("CREATE TABLE k (id int, pad text);\n"
              "CHECKPOINT;\n"  # the UPDATE below then logs full-page images
              "INSERT INTO k SELECT g, repeat('x', 100) FROM generate_series(1, 500) g;\n"
              "UPDATE k SET pad = 'y' WHERE id % 2 = 0;")
    pids = c.pids()
    postmaster = c.postmaster_pid()
    assert postmaster in pids and len(pids) >= 4  # postmaster, checkpointer, walwriter, ...

    c.crash()

    assert [p for p in pids if _alive(p)] == []
    assert _cluster_processes(c.datadir) == []
    assert not c.is_running() and c.pids() == set()

    c.start()
    assert c.sql("SELECT count(*), count(*) FILTER (WHERE pad = 'y') FROM k") == [("500", "250")]
    log = c.log_text()
    assert "database system was not properly shut down; automatic recovery in progress" in log
    assert "redo starts at" in log


def test_pgbin_api(pg_major: int, tmp_path: Path) -> None:
    assert pgbin.bindir(pg_major) == pgbin.available([pg_major])[pg_major]
    assert pgbin.version(pg_major).startswith(f"{pg_major}.")
    assert pgbin.ensure([pg_major], install=False) == {pg_major: pgbin.bindir(pg_major)}
    for client in ("psql", "pg_basebackup", "pgbench"):
        assert os.access(pgbin.tool(pg_major, client), os.X_OK)
    own_waldump = pgbin.bindir(pg_major) / "pg_waldump"
    if own_waldump.exists():
        assert pgbin.tool(pg_major, "pg_waldump") == own_waldump
    else:  # 13 (npm) has none, and another major's must never stand in for it
        with pytest.raises(Unavailable, match="pg_waldump"):
            pgbin.tool(pg_major, "pg_waldump")

    if pg_major < 15:
        with pytest.raises(Unavailable, match="zstd"):
            Cluster(pg_major, tmp_path / "x", wal_compression="zstd")
        assert Cluster(pg_major, tmp_path / "x", wal_compression="pglz"
                       ).settings()["wal_compression"] == "on"
    else:
        assert Cluster(pg_major, tmp_path / "x", wal_compression="zstd"
                       ).settings()["wal_compression"] == "zstd"


def test_unsupported_major_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="12"):
        pgbin.bindir(12)
    assert isinstance(pgbin.ensure([12], install=True)[12], str)


def test_missing_major_is_skipped_with_reason(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """A major without binaries is SKIPPED (with pgbin's reason) and named in the summary."""
    monkeypatch.setenv("XLOGTOOLS_PG_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("XLOGTOOLS_PG_INSTALL", raising=False)
    missing = []
    for major in pgbin.MAJORS:  # with an empty cache, only system-wide installs remain
        monkeypatch.delenv(f"XLOGTOOLS_PG{major}_BINDIR", raising=False)
        try:
            pgbin.bindir(major)
        except Unavailable:
            missing.append(major)
    if not missing:
        pytest.skip("every major is installed system-wide; none can be made unavailable")
    m = missing[0]
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_x=f"def test_x(pg_major):\n    assert pg_major == {m}\n")
    result = pytester.runpytest_subprocess(f"--pg-versions={m}", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*PostgreSQL majors*", "ran: none", f"skipped: {m}",
                                 f"  {m}: PostgreSQL {m}: not installed*",
                                 f"SKIPPED*PostgreSQL {m}: not installed*"])
