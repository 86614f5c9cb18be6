"""The reader against PostgreSQL itself: pg_waldump's record lists, pg_waldump 16+'s saved
full-page images, and the end of WAL that a server's own crash recovery finds."""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from xlogtools.lsn import Lsn
from xlogtools.parse import layout as L
from xlogtools.parse.api import open_wal
from xlogtools.parse.reader import EndReason, complete_records_end
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster
from xlogtools.testing.workload import EVERY_RMGR_CONF, run_every_rmgr

from oracle import (caught_up, controldata, controldata_tool, first_diff, our_row, parse_waldump_b,
                    redo_done_at, run_waldump)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_MAJORS = sorted(int(p.name[2:]) for p in FIXTURES.glob("pg*") if (p / "meta.json").exists())


def assert_chain(records: list) -> None:
    """Every record links to the one before it and starts where it ended (CRC checked on read)."""
    for a, b in zip(records, records[1:]):
        assert b.prev == a.lsn, f"{b.lsn}: prev {b.prev} != {a.lsn}"
        gap = b.lsn - a.end
        # the next record starts right after the previous one, or after a page header
        assert gap in (0, L.SIZE_OF_SHORT_PHD, L.SIZE_OF_LONG_PHD), f"{a.lsn} -> {b.lsn}: gap {gap}"


# -- committed fixtures (no server needed) ---------------------------------------------------------
@pytest.mark.parametrize("major", FIXTURE_MAJORS, ids=[f"pg{m}" for m in FIXTURE_MAJORS])
def test_fixture_records_equal_pg_waldump(major: int) -> None:
    import zstandard

    d = FIXTURES / f"pg{major}"
    meta = json.loads((d / "meta.json").read_text())
    reader = open_wal(d / "wal", start=Lsn(meta["start_lsn"]))
    records = list(reader)
    assert reader.end_of_wal is not None
    assert reader.end_of_wal.reason in (EndReason.INVALID_LENGTH, EndReason.ZERO_PAGE)
    # The workload ended at end_lsn; the clean shutdown's checkpoint is the last record.
    last = records[-1]
    assert last.lsn >= Lsn(meta["end_lsn"])
    assert (last.rmid, last.info & 0xF0) == (L.RM_XLOG_ID, L.XLOG_CHECKPOINT_SHUTDOWN)
    assert reader.end_of_wal.lsn - last.end in (0, L.SIZE_OF_SHORT_PHD, L.SIZE_OF_LONG_PHD)
    assert_chain(records)
    assert all(r.pg_major == major for r in records)
    oracle = d / "waldump-b.txt.zst"
    if not oracle.exists():  # PostgreSQL 13: no pg_waldump here; chain and CRC are the check
        assert len({r.rmid for r in records}) >= 15
        return
    theirs = parse_waldump_b(zstandard.ZstdDecompressor().decompress(oracle.read_bytes()).decode())
    ours = [our_row(r, major) for r in records]
    assert ours == theirs, first_diff(ours, theirs)


# -- live clusters ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def every_rmgr(module_cluster_factory):
    """get(major, compression): a stopped cluster that ran the every-rmgr workload, made once.

    Keyed by major explicitly: pytest does not re-create a module-scoped fixture when the
    module-scoped pg_major parameter changes, so nothing here may capture pg_major."""
    made: dict[tuple[int, str], tuple[Cluster, Lsn]] = {}

    def get(major: int, compression: str) -> tuple[Cluster, Lsn]:
        if major < 15 and compression in ("lz4", "zstd"):
            pytest.skip(f"PostgreSQL {major} has no wal_compression={compression}")
        if (major, compression) not in made:
            c = module_cluster_factory(major, name=f"rmgr{major}-{compression}",
                                       wal_compression=compression, conf=EVERY_RMGR_CONF)
            res = run_every_rmgr(c)
            c.stop()
            made[(major, compression)] = (c, Lsn(res.start_lsn))
        return made[(major, compression)]

    return get


@pytest.mark.parametrize("major", FIXTURE_MAJORS, ids=[f"pg{m}" for m in FIXTURE_MAJORS])
def test_complete_records_end_of_a_segment_cut_anywhere(major: int, tmp_path: Path) -> None:
    """A segment copied while being written (cut at any byte, the rest zeros or not there):
    complete_records_end is the end of the last record that lies wholly before the cut, as
    iteration over the whole WAL places it (records crossing pages and segments included)."""
    from oracle import unpack_fixture
    segs = unpack_fixture(major, tmp_path)
    reader = open_wal(tmp_path)
    records = list(reader)
    src = reader.source
    assert src.cluster is not None
    seg_size = src.seg_size
    rng = random.Random(major)
    for path in rng.sample(sorted(segs), min(3, len(segs))):
        tli, segno = int(path.name[:8], 16), int(path.name[8:16], 16) * (0x100000000 // seg_size) \
            + int(path.name[16:], 16)
        whole = path.read_bytes()
        base = segno * seg_size
        starts_in = [r for r in records if base <= r.lsn < base + seg_size]
        for cut in [0, 8192, seg_size] + [rng.randrange(seg_size) for _ in range(12)]:
            # cut off: a record is whole when its last byte is on a page that is all there (as
            # PostgreSQL, the reader reads whole pages); zero-padded (a file being written):
            # when its last non-zero byte is before the cut (its CRC then holds)
            page_cut = cut - cut % src.block_size
            for data, key, limit in ((whole[:cut], "last", page_cut),
                                     (whole[:cut] + bytes(seg_size - cut), "nz", cut)):
                done = [r for r in starts_in
                        if _byte_lsn(r, key, src.block_size, seg_size) - base < limit
                        and _byte_lsn(r, "last", src.block_size, seg_size) - base < seg_size]
                want = min(int(done[-1].end) - base, seg_size) if done else 0
                assert complete_records_end(src.cluster, tli, segno, data) == want, \
                    (path.name, cut, key)


def _byte_lsn(r, key: str, block_size: int, seg_size: int) -> int:  # type: ignore[no-untyped-def]
    """LSN of a record's last byte ("last") or of its last non-zero byte ("nz"): its offset in
    the record mapped over the page headers between."""
    i = r.tot_len - 1
    if key == "nz":
        i = len(r.data.rstrip(b"\0")) - 1
    pos = int(r.lsn)
    while True:
        room = block_size - pos % block_size
        if i < room:
            return pos + i
        i -= room
        pos += room
        pos += L.SIZE_OF_LONG_PHD if pos % seg_size == 0 else L.SIZE_OF_SHORT_PHD


COMPRESSIONS = ["off", "pglz", "lz4", "zstd"]


def assert_scan_equals(reader, records, eow) -> None:  # type: ignore[no-untyped-def]
    """scan() (the C walk where built) counts the records iteration gave and ends as it did."""
    assert reader.scan() == len(records)
    assert reader.last_record_lsn == (records[-1].lsn if records else None)
    assert reader.end_of_wal.as_dict() == eow.as_dict()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_rmgr_records_equal_pg_waldump(pg_major: int, compression: str, every_rmgr) -> None:
    cluster, start = every_rmgr(pg_major, compression)
    reader = open_wal(cluster.pg_wal, start=start)
    records = list(reader)
    assert_chain(records)
    assert_scan_equals(open_wal(cluster.pg_wal, start=start), records, reader.end_of_wal)
    if compression != "off":
        methods = {b.compression for r in records for b in r.blocks if b.has_image}
        assert compression in methods, f"no {compression} images among {methods}"
    try:
        waldump = pgbin.tool(pg_major, "pg_waldump")
    except pgbin.Unavailable:
        assert pg_major == 13
        return
    proc = run_waldump(waldump, cluster.pg_wal, "-b", "-s", str(start))
    theirs = parse_waldump_b(proc.stdout)
    ours = [our_row(r, pg_major) for r in records]
    assert len(ours) > 1000
    assert ours == theirs, first_diff(ours, theirs)
    # Both stop at the same place, for the same reason.
    assert f"error in WAL record at {reader.end_of_wal.last_record_lsn}" in proc.stderr


@pytest.mark.pg_majors(16, 17, 18)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_restored_images_equal_save_fullpage(pg_major: int, compression: str, every_rmgr,
                                             tmp_path: Path) -> None:
    cluster, start = every_rmgr(pg_major, compression)
    out = tmp_path / "fpw"
    out.mkdir()
    run_waldump(pgbin.tool(pg_major, "pg_waldump"), cluster.pg_wal, f"--save-fullpage={out}",
                "-s", str(start))
    saved = {p.name: p for p in out.iterdir()}
    assert saved, "pg_waldump saved no page"
    compared = 0
    for rec in open_wal(cluster.pg_wal, start=start):
        for b in rec.blocks:
            if not b.has_image:
                continue
            name = (f"{rec.timeline:08X}-{rec.lsn.hi:08X}-{rec.lsn.lo:08X}."
                    f"{b.spc}.{b.db}.{b.rel}.{b.blk}_{b.fork_name}")
            assert rec.restore_page(b) == saved[name].read_bytes(), name
            compared += 1
    assert compared == len(saved)


def _spawn_pgbench(cluster: Cluster, args: list[str]) -> subprocess.Popen[bytes]:
    argv = [str(cluster.tool("pgbench")), "-h", cluster.host, "-p", str(cluster.port),
            "-U", "postgres", *args, "postgres"]
    user = pgbin.server_user()
    kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=cluster.base, env=pgbin.runtime_env(argv[0]), **kw)


BIG_RECORDS = ("SELECT pg_logical_emit_message(false, 'big', "
               "repeat(md5(random()::text), 300 + (random() * 3000)::int));\n")


def _wait_for_transactions_since_redo(c: Cluster, xids: int = 300, timeout: float = 60) -> None:
    """Wait until XIDS transactions have started since the latest checkpoint's redo point (a
    pgbench transaction writes five records or more), so the crash leaves more than a thousand
    records to recover; a checkpoint finishing meanwhile starts the count again."""
    deadline = time.monotonic() + timeout
    base: tuple[str, int] | None = None
    while time.monotonic() < deadline:
        redo, xmax = c.sql("SELECT (pg_control_checkpoint()).redo_lsn, "
                           "pg_snapshot_xmax(pg_current_snapshot())")[0]
        if base is None or base[0] != redo:
            base = (redo, int(xmax))
        elif int(xmax) - base[1] >= xids:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {xids} transactions since the redo point in {timeout} s")


def copy_cluster(crashed: Cluster, base: Path) -> Cluster:
    copy = Cluster(crashed.major, base, conf=crashed.conf, name=base.name)
    copy._mkdir(base)  # noqa: SLF001
    shutil.copytree(crashed.datadir, copy.datadir, symlinks=True)
    user = pgbin.server_user()
    if user:
        for p in [copy.datadir, *copy.datadir.rglob("*")]:
            shutil.chown(p, user.pw_uid, user.pw_gid)
    return copy


@pytest.mark.parametrize("round_", range(2), ids=["crash1", "crash2"])
def test_crash_end_equals_recovery_and_pg_waldump(pg_major: int, round_: int, cluster_factory,
                                                  pg_cluster_root: Path) -> None:
    """A busy primary (pgbench plus records spanning pages) killed by SIGSTOP+SIGKILL: we stop
    at the record where its own crash recovery says 'redo done at', and where pg_waldump stops."""
    rng = random.Random(pg_major * 100 + round_)
    c = cluster_factory(conf={"max_wal_size": "64MB", "checkpoint_timeout": "30s"})
    c.pgbench(["-i", "-s", "2", "-q"])
    script = c.base / "big.sql"
    script.write_text(BIG_RECORDS)
    script.chmod(0o644)
    load = [_spawn_pgbench(c, ["-c", "3", "-T", "60"]),
            _spawn_pgbench(c, ["-c", "1", "-T", "60", "-f", str(script)])]
    try:
        time.sleep(1.5 + rng.random() * 2)
        c.crash()
    finally:
        for p in load:
            p.kill()
            p.wait()
    # Start where crash recovery starts: the last checkpoint's redo point (older segments
    # may have holes: a checkpoint removing them was interrupted by the crash).
    redo = Lsn(controldata(controldata_tool(pg_major), c.datadir)["Latest checkpoint's REDO location"])
    reader = open_wal(c.pg_wal, start=redo)
    records = list(reader)
    n = len(records)
    eow = reader.end_of_wal
    assert_scan_equals(open_wal(c.pg_wal, start=redo), records, eow)
    assert n > 1000 and eow is not None and eow.is_damage
    try:
        waldump = pgbin.tool(pg_major, "pg_waldump")
    except pgbin.Unavailable:
        waldump = None
    if waldump is not None:
        proc = run_waldump(waldump, c.pg_wal, "-q", "-s", str(redo))
        if eow.reason is EndReason.MISSING_SEGMENT:
            assert f'could not find file "{eow.segment}"' in proc.stderr, proc.stderr
        else:
            assert f"error in WAL record at {eow.last_record_lsn}:" in proc.stderr, proc.stderr
            # 16+ name the LSN of the damage; 13-15 name the segment offset for page errors.
            assert str(eow.error_lsn) in proc.stderr or f"offset {eow.offset}" in proc.stderr, \
                (proc.stderr, eow)
    # The server's own crash recovery, on a copy.
    copy = copy_cluster(c, pg_cluster_root / f"recover-{pg_major}-{rng.randrange(10**6)}")
    cluster_factory.clusters.append(copy)
    copy.start()
    copy.stop()
    log = copy.log_text()
    assert redo_done_at(log) == eow.last_record_lsn, log[-3000:]
    # The first record the recovered server wrote follows our last record: at our end_lsn,
    # or, when the last record was cut off mid-way (14+), as an OVERWRITE_CONTRECORD at the
    # first missing page.
    after = open_wal(copy.pg_wal, start=eow.last_record_lsn)
    first_two = [r for _, r in zip(range(2), after)]
    assert first_two[0].lsn == eow.last_record_lsn
    nxt = first_two[1]
    assert nxt.prev == eow.last_record_lsn
    headers = (0, L.SIZE_OF_SHORT_PHD, L.SIZE_OF_LONG_PHD)
    if nxt.rmid == L.RM_XLOG_ID and nxt.info & 0xF0 == L.XLOG_OVERWRITE_CONTRECORD:
        assert nxt.lsn - eow.error_lsn in headers, (nxt, eow)
    else:
        assert nxt.lsn - eow.lsn in headers, (nxt, eow)


@pytest.mark.parametrize("segsize_mb", [4, 64])
@pytest.mark.pg_majors(15, 18)
def test_other_segment_sizes(pg_major: int, segsize_mb: int, cluster_factory) -> None:
    c = cluster_factory(wal_segsize_mb=segsize_mb, conf={"min_wal_size": f"{2 * segsize_mb}MB",
                                                        "max_wal_size": f"{4 * segsize_mb}MB"})
    c.pgbench(["-i", "-s", "1", "-q"])
    c.execute("SELECT pg_switch_wal(); CHECKPOINT;")
    c.pgbench(["-t", "300", "-c", "2"])
    c.stop()
    reader = open_wal(c.pg_wal)
    assert reader.seg_size == segsize_mb << 20
    records = list(reader)
    assert_chain(records)
    proc = run_waldump(pgbin.tool(pg_major, "pg_waldump"), c.pg_wal, "-b")
    ours = [our_row(r, pg_major) for r in records]
    assert ours == parse_waldump_b(proc.stdout)
    assert {r.segment for r in records} <= {p.name for p in c.pg_wal.iterdir()}


def test_reading_across_a_timeline_switch(pg_major: int, primary_standby) -> None:
    """Promote a standby, write more: reading its pg_wal follows the history file from
    timeline 1 into timeline 2 with an unbroken chain; both parts equal what PostgreSQL has."""
    primary, standby = primary_standby()
    primary.pgbench(["-i", "-s", "1", "-q"])
    caught_up(primary, standby)
    standby.promote()
    standby.pgbench(["-t", "200"])
    standby.execute("CHECKPOINT;")
    standby.stop()
    primary.stop()
    history = (standby.pg_wal / "00000002.history").read_text().split()
    switch = Lsn(history[1])
    reader = open_wal(standby.pg_wal)
    assert reader.timeline == 2
    records = list(reader)
    assert_chain(records)
    assert_scan_equals(open_wal(standby.pg_wal), records, reader.end_of_wal)
    before = [r for r in records if r.lsn < switch]
    after = [r for r in records if r.lsn >= switch]
    assert before and after and {r.timeline for r in before} == {1} and {r.timeline for r in after} == {2}
    # The part before the switch is the primary's WAL, record for record.
    prim = {int(r.lsn): our_row(r, pg_major) for r in open_wal(primary.pg_wal, timeline=1)}
    assert [our_row(r, pg_major) for r in before] == [prim[int(r.lsn)] for r in before]
    try:
        waldump = pgbin.tool(pg_major, "pg_waldump")
    except pgbin.Unavailable:
        return
    proc = run_waldump(waldump, standby.pg_wal, "-b", "-t", "2", "-s", str(after[0].lsn))
    assert [our_row(r, pg_major) for r in after] == parse_waldump_b(proc.stdout)
