"""`xlogtools gap` on real failures: an async standby that fell behind before the primary
crashed, and a split brain after a promotion (checked against pg_rewind --dry-run)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlogtools.gap import Position, analyze
from xlogtools.gap.analysis import _end_of, _open_side
from xlogtools.lsn import Lsn
from xlogtools.parse.reader import WalReader
from xlogtools.parse.source import WalSource
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, wait_until
from oracle import caught_up

CONF = {"wal_log_hints": "on", "max_prepared_transactions": 5}


class Session:
    """An open psql session, to keep a transaction running across other events."""

    def __init__(self, c: Cluster) -> None:
        user = pgbin.server_user()
        kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        argv = [str(c.tool("psql")), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                c.host, "-p", str(c.port), "-U", "postgres", "postgres"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=c.base,
                                     env=pgbin.runtime_env(argv[0]), **kw)

    def run(self, sql: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(sql + "\n\\echo __done__\n")
        self.proc.stdin.flush()
        out = []
        for line in self.proc.stdout:
            if line.strip() == "__done__":
                return "".join(out).strip()
            out.append(line)
        raise AssertionError("psql session ended")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def xid_of(c: Cluster, script: str) -> int:
    """Run a transaction script whose last statement selects txid_current(); its xid."""
    out = c.execute(script).split()
    return int(out[-1])


def committed_workload(c: Cluster, early: Session) -> tuple[set[int], set[int]]:
    """Transactions of every kind on the primary; returns (committed xids, not committed)."""
    committed, void = set(), set()
    committed.add(xid_of(c, "BEGIN; INSERT INTO t VALUES (10, 'ten'), (11, 'eleven'); "
                            "SELECT txid_current(); COMMIT;"))
    committed.add(xid_of(c, "BEGIN; UPDATE t SET v = 'one!' WHERE id = 1; SELECT txid_current(); COMMIT;"))
    committed.add(xid_of(c, "BEGIN; DELETE FROM t WHERE id = 2; SELECT txid_current(); COMMIT;"))
    void.add(xid_of(c, "BEGIN; INSERT INTO t VALUES (12, 'rolled back'); SELECT txid_current(); ROLLBACK;"))
    committed.add(xid_of(c, "BEGIN; INSERT INTO t VALUES (13, 'kept'); SAVEPOINT s; "
                            "INSERT INTO t VALUES (14, 'savepoint rolled back'); ROLLBACK TO s; "
                            "SELECT txid_current(); COMMIT;"))
    committed.add(xid_of(c, "BEGIN; INSERT INTO t VALUES (15, 'prepared'); SELECT txid_current(); "
                            "PREPARE TRANSACTION 'g1'; COMMIT PREPARED 'g1';"))
    early.run("INSERT INTO t VALUES (16, 'second write of the early one'); COMMIT;")
    return committed, void


def test_lost_transactions_of_a_crashed_primary(pg_major: int, primary_standby) -> None:
    """Stop an async standby, commit K transactions of every kind on the primary (one began
    before the stop), crash the primary: the report lists exactly those K."""
    primary, standby = primary_standby(conf=CONF)
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text); "
                    "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g;")
    early = Session(primary)
    try:
        early_xid = int(early.run("BEGIN; INSERT INTO t VALUES (9, 'early'); SELECT txid_current();"))
        primary.execute("CREATE TABLE flush_me (a int);")  # its commit flushes the early insert
        caught_up(primary, standby)
        standby.stop("immediate")
        committed, void = committed_workload(primary, early)
        committed.add(early_xid)
        primary.crash()
    finally:
        early.close()
    report = analyze([primary.pg_wal], [standby.pg_wal])
    assert {t.xid for t in report.lost_transactions} == committed
    assert not {t.xid for t in report.lost_transactions} & void
    assert report.divergence is None
    assert report.standby.end_lsn is not None and report.primary.end_lsn is not None
    assert report.bytes_behind == int(report.primary.end_lsn) - int(report.standby.end_lsn) > 0
    early_tx = next(t for t in report.lost_transactions if t.xid == early_xid)
    assert early_tx.first_lsn < report.cut_lsn <= early_tx.commit_lsn  # began before the stop
    times = [t.commit_time for t in report.lost_transactions]
    assert times == sorted(times) and report.window["count"] == len(committed)
    assert report.window["first_commit_time"] == times[0]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00", t) for t in times)
    paths = {i["path"] for i in report.inputs}
    assert any(p.startswith(str(primary.pg_wal)) for p in paths)
    assert all(len(i["sha256"]) == 64 for i in report.inputs)
    assert_standby_end_as_a_full_read(report, standby.pg_wal)


def assert_standby_end_as_a_full_read(report, standby_wal: Path) -> None:
    """The standby's position comes from the locator; a full read of its WAL must say the
    same, and the inputs list the same standby files a full read opens."""
    side = _open_side("standby", [standby_wal])
    full, _ = _end_of(side)
    got = report.standby
    assert (got.end_lsn, got.last_record_lsn, got.reason, got.timeline) == \
        (full.end_lsn, full.last_record_lsn, full.reason, full.timeline)
    listed = {i["path"] for i in report.inputs if i["path"].startswith(str(standby_wal))}
    assert listed == {str(p) for p in side.source.read_paths} | \
        {str(p) for p in side.source.history_files.values()}


def test_split_brain_divergence_equals_pg_rewind(pg_major: int, primary_standby,
                                                 pg_cluster_root: Path) -> None:
    primary, standby = primary_standby(conf=CONF)
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text); "
                    "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g;")
    caught_up(primary, standby)
    standby.promote()
    old_side = {xid_of(primary, f"BEGIN; INSERT INTO t VALUES ({100 + i}, 'old primary'); "
                                "SELECT txid_current(); COMMIT;") for i in range(3)}
    new_side = {xid_of(standby, f"BEGIN; INSERT INTO t VALUES ({200 + i}, 'new primary'); "
                                "SELECT txid_current(); COMMIT;") for i in range(2)}
    primary.crash()
    standby.execute("CHECKPOINT;")
    report = analyze([primary.pg_wal], [standby.pg_wal])
    assert report.divergence is not None
    assert {t.xid for t in report.lost_transactions} == old_side
    assert new_side <= {t.xid for t in report.only_on_standby}
    # pg_rewind's own answer for the same pair
    try:
        rewind = pgbin.tool(pg_major, "pg_rewind")
    except pgbin.Unavailable as exc:
        pytest.skip(f"no pg_rewind for {pg_major}: {exc}")
    if not Path(rewind).exists() or Path(rewind).parent != primary.bindir:
        pytest.skip(f"PostgreSQL {pg_major} has no pg_rewind here")
    primary.start()  # pg_rewind wants a cleanly shut down target; our analysis is done
    primary.stop()
    res = primary.run([rewind, "--dry-run", "-D", primary.datadir, "--source-server",
                       f"host={standby.host} port={standby.port} user=postgres dbname=postgres"],
                      check=False, timeout=300)
    m = re.search(r"servers diverged at WAL location (\S+) on timeline (\d+)", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    assert report.divergence.pg_rewind_text() == m.group(0)


def test_live_standby_position(pg_major: int, primary_standby, tmp_path: Path) -> None:
    """--standby CONNSTR: a streaming standby whose walreceiver was stopped (primary_conninfo
    emptied and reloaded), K transactions on the primary, the primary crashed: the standby's
    position is its pg_last_wal_receive_lsn() and the lost set exactly those K."""
    primary, standby = primary_standby(conf=CONF)
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text); "
                    "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 5) g;")
    early = Session(primary)
    try:
        early_xid = int(early.run("BEGIN; INSERT INTO t VALUES (9, 'early'); SELECT txid_current();"))
        primary.execute("CREATE TABLE flush_me (a int);")
        caught_up(primary, standby)
        wait_until(lambda: standby.sql("SELECT flushed_lsn >= pg_last_wal_replay_lsn() "
                                       "FROM pg_stat_wal_receiver") == [("t",)], 60,
                   what="the walreceiver to report its position")
        # Stop receiving for real (pg_wal_replay_pause would only stop replay).
        standby.execute("ALTER SYSTEM SET primary_conninfo = ''; SELECT pg_reload_conf();")
        wait_until(lambda: standby.sql("SELECT count(*) FROM pg_stat_wal_receiver") == [("0",)],
                   60, what="the walreceiver to stop")
        received = standby.sql("SELECT pg_last_wal_receive_lsn()")[0][0]
        assert received is not None
        committed, void = committed_workload(primary, early)
        committed.add(early_xid)
        primary.crash()
    finally:
        early.close()
    assert standby.sql("SELECT pg_last_wal_receive_lsn()")[0][0] == received  # got nothing more
    out = tmp_path / "gap.json"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(primary.pg_wal), "--standby", standby.conninfo, "--format", "json",
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json as _json
    rep = _json.loads(out.read_text())
    assert rep["standby"] == {"end_lsn": received, "last_record_lsn": None, "timeline": 1,
                              "reason": "received", "source": "server"}
    assert rep["cut_lsn"] == received and rep["divergence"] is None
    assert {t["xid"] for t in rep["lost_transactions"]} == committed
    assert not {t["xid"] for t in rep["lost_transactions"]} & void
    assert rep["bytes_behind"] == int(Lsn(rep["primary"]["end_lsn"])) - int(Lsn(received)) > 0
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(primary.pg_wal), "--standby", standby.conninfo],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and f"standby: received up to {received}" in proc.stdout
    # A received position inside a commit record (a flush point in a partly written page):
    # the standby does not have that commit whole, so it is lost; at the record's end it is not.
    first = min(rep["lost_transactions"], key=lambda t: Lsn(t["commit_lsn"]))
    at = Lsn(first["commit_lsn"])
    rec = next(r for r in WalReader(WalSource.open([primary.pg_wal]), start=at) if r.lsn == at)
    for pos, lost in ((at + 8, True), (rec.end, False)):
        r = analyze([primary.pg_wal], [], standby_position=Position(pos, None, 1, "received",
                                                                    source="server"))
        assert (first["xid"] in {t.xid for t in r.lost_transactions}) is lost, pos
    # A live server of another cluster is refused.
    r2 = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                         str(Path(__file__).resolve().parent.parent / "fixtures" / "pg15" / "wal"),
                         "--standby", standby.conninfo], capture_output=True, text=True)
    assert r2.returncode == 1 and "different database systems" in r2.stderr


def test_primary_wal_ending_before_the_standby_is_explained(pg_major: int, primary_standby,
                                                            tmp_path: Path) -> None:
    """Only the primary's early segments given: its WAL ends before the standby's. Not an empty
    'no gap': an error that says so and what to give."""
    primary, standby = primary_standby(conf=CONF)
    primary.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT pg_switch_wal(); "
                    "INSERT INTO t VALUES (2);")
    caught_up(primary, standby)
    standby.stop("immediate")
    primary.execute("INSERT INTO t VALUES (3);")
    primary.crash()
    full = analyze([primary.pg_wal], [standby.pg_wal])
    assert_standby_end_as_a_full_read(full, standby.pg_wal)
    s_end = full.standby.end_lsn
    assert s_end is not None
    seg = WalSource.open([primary.pg_wal]).seg_size
    early = tmp_path / "early"
    early.mkdir()
    for f in Path(primary.pg_wal).iterdir():
        if re.fullmatch(r"[0-9A-F]{24}", f.name) and int(f.name[8:16], 16) * (0x100000000 // seg) \
                + int(f.name[16:], 16) < s_end // seg:
            shutil.copy(f, early / f.name)
    assert any(early.iterdir())
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary", str(early),
                           "--standby", str(standby.pg_wal)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout
    assert "primary's WAL given ends at" in proc.stderr and f"standby's position {s_end}" in proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout


def test_bad_inputs_are_explained(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(fixtures / "pg15" / "wal"), "--standby", str(fixtures / "pg16" / "wal")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "different database systems" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(fixtures / "pg15" / "wal"), "--standby", str(empty)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "standby" in proc.stderr and "no WAL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_html_report_renders_in_chromium_with_its_chart(tmp_path: Path, cluster_factory) -> None:
    """The self-contained HTML page renders in headless Chromium; the screenshot shows the
    chart: the primary's WAL bar, the standby's, and a red dot per lost commit."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from PIL import Image

    primary = cluster_factory(15, name="html-primary", conf=CONF)
    standby = cluster_factory.standby(primary, name="html-standby")
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text);")
    caught_up(primary, standby)
    standby.stop("immediate")
    for i in range(3):
        primary.execute(f"INSERT INTO t VALUES ({i}, 'lost {i}');")
        time.sleep(0.05)
    primary.crash()
    page = tmp_path / "gap.html"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(primary.pg_wal), "--standby", str(standby.pg_wal), "--format",
                           "html", "-o", str(page)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "<svg" in text and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    shot = tmp_path / "gap.png"
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1100,900",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), res.stderr
    img = Image.open(shot).convert("RGB")
    colors = {rgb: n for n, rgb in img.getcolors(maxcolors=1 << 24)}
    def near(rgb: tuple[int, int, int]) -> int:
        return sum(n for c, n in colors.items() if all(abs(a - b) < 12 for a, b in zip(c, rgb)))
    assert near((0x4A, 0x78, 0xB5)) > 500   # the primary's WAL bar
    assert near((0x5F, 0x9E, 0x6E)) > 500   # the standby's WAL bar
    assert near((0xC8, 0x42, 0x3B)) > 50    # lost commits and the cut line


def test_sql_reapplies_the_lost_rows_on_the_promoted_standby(pg_major: int, primary_standby,
                                                             tmp_path: Path) -> None:
    """With a catalog, the report carries the rows of each lost transaction, equal to what
    psql printed on the primary, and its SQL, applied to the promoted standby, makes the
    table equal to the old primary's final state."""
    from xlogtools.replay.catalog import capture

    primary, standby = primary_standby(conf=CONF)
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, d date); "
                    "INSERT INTO t SELECT g, 'row ' || g, g * 1.5, date '2024-02-28' + g "
                    "FROM generate_series(1, 5) g;")
    cat = tmp_path / "catalog.json"
    capture(primary.conninfo).save(cat)
    early = Session(primary)
    try:
        early.run("BEGIN; INSERT INTO t VALUES (9, 'early', 9.99, '2024-12-31');")
        primary.execute("CREATE TABLE flush_me (a int);")
        caught_up(primary, standby)
        standby.stop("immediate")
        committed, void = committed_workload(primary, early)
        primary.execute("UPDATE t SET n = n * 2, d = d + 1 WHERE id IN (3, 4);")
    finally:
        early.close()
    final = primary.sql("SELECT id, v, n, d FROM t ORDER BY id")
    printed = dict((r[0], r) for r in final)
    primary.crash()
    out = tmp_path / "gap.json"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(primary.pg_wal), "--standby", str(standby.pg_wal), "--catalog",
                           str(cat), "--format", "json", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json as _json
    rep = _json.loads(out.read_text())
    inserts = [c for t in rep["lost_transactions"] for c in t["changes"] if c["op"] == "insert"]
    assert inserts and all(c["table"] == "t" for c in inserts)
    for c in inserts:
        row = c["new"]
        if row["id"] in printed and row["id"] not in ("3", "4"):
            assert (row["id"], row["v"], row["n"], row["d"]) == printed[row["id"]]
    sql = tmp_path / "gap.sql"
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "gap", "--primary",
                           str(primary.pg_wal), "--standby", str(standby.pg_wal), "--catalog",
                           str(cat), "--format", "sql", "-o", str(sql)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    standby.start()
    standby.promote()
    standby.psql_raw(["-f", "-"], input=sql.read_text())
    assert standby.sql("SELECT id, v, n, d FROM t ORDER BY id") == final
    # Applied twice, the conflict guard stops it: the rows are already there.
    res = standby.run([standby.tool("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", standby.host,
                       "-p", str(standby.port), "-U", "postgres", "-d", "postgres", "-f", "-"],
                      input=sql.read_text(), check=False)
    assert res.returncode != 0 and "conflict" in res.stderr


def insert_lsn(c: Cluster) -> Lsn:
    """Where the next record goes (pg_current_wal_lsn() is the write position, which can lag
    behind records not flushed yet, like non-transactional logical messages)."""
    return Lsn(c.sql("SELECT pg_current_wal_insert_lsn()")[0][0])


def flip_in_record_of(wal: Path, lo: Lsn, hi: Lsn) -> Lsn:
    """Flip one payload bit of a record (inside one page) that starts in [lo, hi); its LSN."""
    src = WalSource.open([wal])
    victim = next(r for r in WalReader(src, start=lo) if r.lsn >= lo and r.tot_len >= 64
                  and int(r.lsn) % 8192 + r.tot_len <= 8192)
    assert victim.lsn < hi, (victim.lsn, hi)
    seg = wal / victim.segment
    buf = bytearray(seg.read_bytes())
    buf[int(victim.lsn) % src.seg_size + victim.tot_len - 3] ^= 0x04
    seg.write_bytes(buf)
    return victim.lsn


def test_primary_end_follows_crash_recovery_under_damage(pg_major: int, primary_standby,
                                                         tmp_path: Path) -> None:
    """The primary's end of WAL is where its own crash recovery would stop (locate's rule):
    damage before its last checkpoint's redo point (WAL kept by wal_keep_size, which recovery
    never reads) does not end it: the lost transactions after the redo point are all listed,
    with a note naming the damage; damage after the redo point ends it there, exactly where
    locate says, and a transaction committed beyond it is not listed."""
    primary, standby = primary_standby(conf={**CONF, "wal_keep_size": "64MB"})
    primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text);")
    caught_up(primary, standby)
    standby.stop("immediate")
    first = xid_of(primary, "BEGIN; INSERT INTO t VALUES (1, 'a'); SELECT txid_current(); COMMIT;")
    pad_lo = insert_lsn(primary)
    primary.execute("SELECT pg_logical_emit_message(false, 'pad', repeat('x', 3000)) "
                    "FROM generate_series(1, 600);")
    pad_hi = insert_lsn(primary)
    primary.execute("CHECKPOINT;")
    after = [xid_of(primary, f"BEGIN; INSERT INTO t VALUES ({i}, 'b'); SELECT txid_current(); COMMIT;")
             for i in range(2, 5)]
    pad2_lo = insert_lsn(primary)
    primary.execute("SELECT pg_logical_emit_message(false, 'pad2', repeat('y', 3000)) "
                    "FROM generate_series(1, 50);")
    pad2_hi = insert_lsn(primary)
    last = xid_of(primary, "BEGIN; INSERT INTO t VALUES (9, 'c'); SELECT txid_current(); COMMIT;")
    primary.crash()
    clean = analyze([primary.pg_wal], [standby.pg_wal])
    assert {t.xid for t in clean.lost_transactions} == {first, *after, last}

    before = tmp_path / "before"
    shutil.copytree(primary.pg_wal, before)
    at = flip_in_record_of(before, pad_lo, pad_hi)
    rep = analyze([before], [standby.pg_wal])
    assert {t.xid for t in rep.lost_transactions} == {first, *after, last}
    assert (rep.primary.end_lsn, rep.primary.last_record_lsn) == \
        (clean.primary.end_lsn, clean.primary.last_record_lsn)
    assert any(f"damaged at {at}" in n and "redo point" in n for n in rep.notes), rep.notes

    beyond = tmp_path / "beyond"
    shutil.copytree(primary.pg_wal, beyond)
    at2 = flip_in_record_of(beyond, pad2_lo, pad2_hi)
    rep2 = analyze([beyond], [standby.pg_wal])
    from xlogtools.locate import locate
    loc = locate([beyond]).overall
    assert rep2.primary.end_lsn == loc.end_lsn == at2 and loc.reason == "crc_mismatch"
    assert {t.xid for t in rep2.lost_transactions} == {first, *after}
