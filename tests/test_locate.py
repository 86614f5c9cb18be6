"""locate against PostgreSQL itself: a busy primary (pgbench plus records spanning pages) is
crashed by SIGSTOP+SIGKILL five times per major; after each crash our end of WAL must be where
the server's own crash recovery stops ("redo done at", the first record it writes next) and
where pg_waldump stops; the checkpoint equals pg_controldata's. Then the same WAL is damaged
(truncated, zeroed, a flipped bit, a missing segment), spread over archive layouts, and read
after a promotion; bad input gets a clean error."""
from __future__ import annotations

import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from oracle import unpack_fixture
import zstandard

from xlogtools.locate import TimelineEnd, locate
from xlogtools.lsn import Lsn
from xlogtools.parse.record import Record
from xlogtools.parse import layout as L
from xlogtools.parse.api import open_wal
from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, wait_until

from oracle import REC_RE, caught_up, controldata, controldata_tool, redo_done_at, waldump_start_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HEADERS = (0, L.SIZE_OF_SHORT_PHD, L.SIZE_OF_LONG_PHD)
ROUNDS = 5
BIG = ("SELECT pg_logical_emit_message(false, 'big', "
       "repeat(md5(random()::text), 300 + (random() * 2000)::int));\n")


@dataclass
class Crash:
    """One crash of the busy primary, with what PostgreSQL itself said about it."""

    n: int
    wal: Path  # pg_wal copied right after the crash
    datadir: Path | None  # the whole data directory at the crash (the long round only)
    checkpoint: Lsn  # pg_controldata at the crash
    redo: Lsn
    redo_done: Lsn | None  # the server's own crash recovery: "redo done at"
    written: list[tuple[int, int, int, int]]  # first records it wrote: (lsn, prev, rmid, info)
    load_start: datetime
    crashed_at: datetime


def seg_start(name: str) -> Lsn:
    """Start LSN of a segment file name of 1 MB segments (4096 per xlogid)."""
    return Lsn(int(name[8:16], 16) << 32 | int(name[16:24], 16) << 20)


def seg_names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if len(p.name) == 24)  # 17+: also summaries/


def segno(name: str) -> int:
    return int(seg_start(name)) >> 20


def spawn_pgbench(c: Cluster, args: list[str]) -> subprocess.Popen[bytes]:
    argv = [str(c.tool("pgbench")), "-h", c.host, "-p", str(c.port), "-U", "postgres", *args,
            "postgres"]
    user = pgbin.server_user()
    kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=c.base, env=pgbin.runtime_env(argv[0]), **kw)


def crash_under_load(c: Cluster, seconds: float, min_wal: int = 0) -> tuple[datetime, datetime]:
    """pgbench plus a client writing 10-75 kB logical messages (records over many pages),
    then SIGSTOP+SIGKILL after `seconds`, or once `min_wal` bytes were written (at most 20 s)."""
    script = c.base / "big.sql"
    if not script.exists():
        script.write_text(BIG)
        script.chmod(0o644)
    start = datetime.now(timezone.utc)
    lsn0 = Lsn(c.current_lsn())
    load = [spawn_pgbench(c, ["-c", "2", "-T", "60"]),
            spawn_pgbench(c, ["-c", "1", "-T", "60", "-R", "200", "-f", str(script)])]
    try:
        time.sleep(seconds)
        if min_wal:
            wait_until(lambda: Lsn(c.current_lsn()) - lsn0 >= min_wal, 20, 0.2,
                       what=f"{min_wal >> 20} MB of WAL")
        c.crash()
    finally:
        for p in load:
            p.kill()
            p.wait()
    return start, datetime.now(timezone.utc)


def recover(c: Cluster) -> tuple[Lsn | None, list[tuple[int, int, int, int]]]:
    """Start the crashed server (its own crash recovery); what it said and wrote first."""
    offset = len(c.log_text())
    c.start()
    done = redo_done_at(c.log_text()[offset:])
    written: list[tuple[int, int, int, int]] = []
    if done is not None:
        # From the last replayed record on; when its segment ended right there, the
        # end-of-recovery checkpoint may have recycled it: then from the next segment.
        for start in (done, Lsn((int(done) >> 20) + 1 << 20)):
            for rec in open_wal(c.pg_wal, start=start):
                written.append((int(rec.lsn), int(rec.prev), rec.rmid, rec.info))
                if len(written) == 2:
                    break
            if written:
                break
    return done, written


@pytest.fixture(scope="module")
def crashes(module_cluster_factory, pg_cluster_root):
    """get(major): five crashes of a busy primary whose tiny min/max_wal_size makes checkpoints
    recycle segments, then a sixth after a checkpoint with several segments of WAL behind it
    (kept whole, for damage tests). Made once per major (keyed explicitly: module-scoped
    fixtures are not re-created per pg_major)."""
    made: dict[int, list[Crash]] = {}

    def get(major: int) -> list[Crash]:
        if major in made:
            return made[major]
        rng = random.Random(major)
        c = module_cluster_factory(major, name=f"busy{major}", conf={
            "min_wal_size": "2MB", "max_wal_size": "6MB", "wal_keep_size": 0,
            "checkpoint_timeout": "30s"})
        c.pgbench(["-i", "-s", "1", "-q"])
        out = []
        store = pg_cluster_root / f"locate-{major}"
        store.mkdir()
        for n in range(ROUNDS + 1):
            if n == ROUNDS:  # the long round: one checkpoint, then several segments of WAL
                c.execute("ALTER SYSTEM SET max_wal_size = '256MB';\n"
                          "ALTER SYSTEM SET checkpoint_timeout = '1h';\n"
                          "ALTER SYSTEM SET wal_keep_size = '16MB';\nSELECT pg_reload_conf();\n")
                # WAL before the checkpoint, kept by wal_keep_size, then the checkpoint
                c.execute("SELECT pg_logical_emit_message(false, 'pad', repeat('x', 1000000)) "
                          "FROM generate_series(1, 4);\nCHECKPOINT;")
            if n == 0:
                # a checkpoint after more WAL than max_wal_size renames old segments to future
                # names; a crash soon after (no load, which would fill them) leaves them beyond
                # the end
                t0 = datetime.now(timezone.utc)
                c.execute("SELECT pg_logical_emit_message(false, 'pad', repeat('x', 1000000)) "
                          "FROM generate_series(1, 8);\nCHECKPOINT;\n"
                          "CREATE TABLE round0 AS SELECT 1 AS i;\nINSERT INTO round0 VALUES (2);")
                c.crash()
                t1 = datetime.now(timezone.utc)
            elif n < ROUNDS:
                t0, t1 = crash_under_load(c, 1.0 + rng.random() * 1.5)
            else:
                t0, t1 = crash_under_load(c, 1.0, min_wal=12 << 20)
            wal = store / f"wal{n}"
            shutil.copytree(c.pg_wal, wal, ignore=shutil.ignore_patterns("archive_status"))
            datadir = None
            if n == ROUNDS:
                datadir = store / "data"
                shutil.copytree(c.datadir, datadir, symlinks=True)
            ctl = controldata(controldata_tool(major), c.datadir)
            done, written = recover(c)
            out.append(Crash(n, wal, datadir, Lsn(ctl["Latest checkpoint location"]),
                             Lsn(ctl["Latest checkpoint's REDO location"]), done, written, t0, t1))
        c.stop()
        made[major] = out
        return out

    return get


def waldump(major: int, wal: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        tool = pgbin.tool(major, "pg_waldump")
    except pgbin.Unavailable:
        assert major == 13  # the npm build of 13 is server-only
        return None
    return subprocess.run([str(tool), *args, "-p", str(wal), *waldump_start_file(wal, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})


def recovered_copy(crash: Crash, base: Path, major: int) -> tuple[Cluster, Path]:
    """A copy of the long round's data directory, to damage and then let the server recover."""
    assert crash.datadir is not None
    copy = Cluster(major, base, name=base.name)
    copy._mkdir(base)  # noqa: SLF001
    shutil.copytree(crash.datadir, copy.datadir, symlinks=True)
    user = pgbin.server_user()
    if user:
        for p in [copy.datadir, *copy.datadir.rglob("*")]:
            shutil.chown(p, user.pw_uid, user.pw_gid)
    return copy, copy.pg_wal


def assert_equals_recovery(t: TimelineEnd, redo_done: Lsn | None,
                           written: list[tuple[int, int, int, int]],
                           broken_last_page: Lsn | None = None) -> None:
    """Our last record is the server's "redo done at"; the first record the server wrote
    after recovery follows it at our end_lsn, or (14+, a record cut off mid-way) as an
    OVERWRITE_CONTRECORD on the first missing page; or, when a record over several pages
    failed its CRC, on the page its last piece was read from (broken_last_page:
    xlogreader.c sets missingContrecPtr to the last page it read for any assembled record)."""
    assert t.last_record_lsn == redo_done, (t, redo_done)
    lsn, prev, rmid, info = next(w for w in written if w[0] != redo_done)
    assert prev == redo_done
    if rmid == L.RM_XLOG_ID and info & 0xF0 == L.XLOG_OVERWRITE_CONTRECORD:
        at = broken_last_page if broken_last_page is not None else t.error_lsn
        assert lsn - at in HEADERS, (t, Lsn(lsn))
    else:
        assert lsn - t.end_lsn in HEADERS, (t, Lsn(lsn))


def last_xact_of_waldump(stdout: str) -> tuple[int, str, str] | None:
    """(xid, lsn, time) of the last COMMIT/ABORT line of `pg_waldump -r Transaction`."""
    found = None
    for line in stdout.splitlines():
        m = REC_RE.match(line)
        desc = line.split("desc: ", 1)[-1]
        if m and desc.split(" ", 1)[0] in ("COMMIT", "ABORT"):
            found = (int(m.group(4)), m.group(5), desc.split(" ", 1)[1].split(";")[0])
    return found


# -- real crashes ------------------------------------------------------------------------------
def test_crashes_end_where_recovery_and_pg_waldump_end(pg_major: int, crashes) -> None:
    """Five crashes of a busy primary with tiny min/max_wal_size: end_lsn and last_record_lsn
    equal the server's own crash recovery and pg_waldump; the checkpoint is pg_control's; the
    last commit is pg_waldump's; recycled files beyond the end are listed as stale."""
    stale_seen = 0
    for crash in crashes(pg_major)[:ROUNDS]:
        res = locate([crash.wal])
        t = res.overall
        assert res.pg_major == pg_major and t.timeline == 1 and t.exact
        assert_equals_recovery(t, crash.redo_done, crash.written)
        cp = t.last_checkpoint
        assert cp is not None
        if (cp.lsn, cp.redo) != (crash.checkpoint, crash.redo):
            # killed after writing a checkpoint record, before pg_control said so: reading on
            # from pg_control's checkpoint meets ours, and no later one
            later = [r for r in open_wal(crash.wal, start=crash.checkpoint)
                     if r.rmid == L.RM_XLOG_ID and r.info & 0xE0 == 0 and r.lsn > crash.checkpoint]
            assert [r.lsn for r in later] == [cp.lsn], (cp, crash)
        assert t.last_commit is not None and t.last_commit.lsn < t.end_lsn
        assert crash.load_start - timedelta(seconds=1) < t.last_commit.time < \
            crash.crashed_at + timedelta(seconds=1)
        # recycled files: every file beyond the end is listed, each with an old page address
        beyond = sorted(n for n in seg_names(crash.wal) if seg_start(n) >= t.end_lsn)
        assert sorted(t.stale_segments + t.empty_segments) == beyond
        for name in t.stale_segments:
            addr = L.PAGE_HEADER.unpack_from((crash.wal / name).read_bytes()[:40])[3]
            assert addr < seg_start(name)
        stale_seen += len(t.stale_segments)
        if crash.n == 0:  # right after a recycling checkpoint: future-named files lie beyond
            assert t.stale_segments, (t, beyond)
        assert t.segments_read <= t.segments
        proc = waldump(pg_major, crash.wal, "-r", "Transaction", "-s", str(crash.redo))
        if proc is not None:
            if t.reason == "missing_segment":  # the WAL filled its last file: no next one yet
                assert f'could not find file "{t.error_segment}"' in proc.stderr, proc.stderr
            else:
                assert f"error in WAL record at {t.last_record_lsn}:" in proc.stderr, proc.stderr
            xid, lsn, when = last_xact_of_waldump(proc.stdout)  # type: ignore[misc]
            assert (t.last_commit.xid, str(t.last_commit.lsn.waldump())) == (xid, lsn)
            assert t.last_commit.time.strftime("%Y-%m-%d %H:%M:%S.%f UTC") == when
        # every record from the redo point was checked (the default); --quick gives the same
        # answers here, checking only the tail
        assert t.verified_from is not None and t.verified_from <= cp.redo
        quick = locate([crash.wal], scan="tail").overall
        assert (quick.end_lsn, quick.last_record_lsn, quick.reason) == \
            (t.end_lsn, t.last_record_lsn, t.reason)
        assert quick.verified_from is not None and quick.verified_from >= t.verified_from
    assert stale_seen > 0, "no recycled segment in five crashes with max_wal_size 6MB"


def test_crash_after_long_wal_and_archive_layouts(pg_major: int, crashes, tmp_path: Path) -> None:
    """The long round (many segments after the checkpoint) equals recovery; the same WAL as an
    archive (.gz/.zst segments, the last one .partial) plus pg_wal gives the same answer."""
    crash = crashes(pg_major)[ROUNDS]
    t = locate([crash.wal]).overall
    assert_equals_recovery(t, crash.redo_done, crash.written)
    assert int(t.end_lsn) // 2**20 - int(crash.redo) // 2**20 >= 3, "expected several segments"
    archive, pg_wal = tmp_path / "archive" / "wals", tmp_path / "pg_wal"
    archive.mkdir(parents=True)
    pg_wal.mkdir()
    end_seg = int(t.end_lsn) >> 20
    for i, p in enumerate(crash.wal / n for n in seg_names(crash.wal)):
        if segno(p.name) < end_seg:
            if i % 2:
                (archive / (p.name + ".gz")).write_bytes(gzip.compress(p.read_bytes(), 1))
            else:
                (archive / (p.name + ".zst")).write_bytes(
                    zstandard.ZstdCompressor().compress(p.read_bytes()))
        elif segno(p.name) == end_seg:
            shutil.copy(p, archive / (p.name + ".partial"))
        else:
            shutil.copy(p, pg_wal / p.name)
    again = locate([tmp_path / "archive", pg_wal]).overall
    same = ("end_lsn", "last_record_lsn", "reason", "last_checkpoint", "last_commit",
            "stale_segments", "empty_segments")
    assert {k: getattr(again, k) for k in same} == {k: getattr(t, k) for k in same}


def test_end_found_in_log_n_header_reads(pg_major: int, crashes, tmp_path: Path) -> None:
    """Many recycled files after the end (old segments renamed to future names, as a
    checkpoint does): the end is unchanged, every one of them is listed as stale, and finding
    the end opens about log2(n) files besides the one probe per listed file."""
    crash = crashes(pg_major)[ROUNDS]
    wal = tmp_path / "wal"
    shutil.copytree(crash.wal, wal)
    clean = locate([wal]).overall
    names = seg_names(wal)
    old = [n for n in names if seg_start(n) < clean.end_lsn][:30]
    nxt = max(segno(n) for n in names) + 1
    future = []
    for i in range(120):
        name = f"00000001{(nxt + i) >> 12:08X}{(nxt + i) & 0xFFF:08X}"
        shutil.copy(wal / old[i % len(old)], wal / name)
        future.append(name)
    # the header probe (--quick, so that no record walk reads the files in between)
    t = locate([wal], scan="tail", checkpoint_search_bytes=0, commit_search_bytes=0).overall
    # When the WAL had filled its last file (no next segment: missing_segment), the next name
    # is now one of the renamed old files: the same end, met as a stale page address.
    reason = "stale_page_address" if clean.reason == "missing_segment" else clean.reason
    assert (t.end_lsn, t.last_record_lsn, t.reason) == (clean.end_lsn, clean.last_record_lsn,
                                                        reason)
    assert set(future) <= set(t.stale_segments)
    n = t.segments
    beyond = len(t.stale_segments) + len(t.empty_segments)
    assert n > 120 and t.segments_read <= beyond + math.ceil(math.log2(n)) + 3, \
        (t.segments_read, n, beyond)


# -- damage ----------------------------------------------------------------------------------------
def records_from(wal: Path, start: Lsn) -> list:
    return list(open_wal(wal, start=start))


def test_truncated_last_segment(pg_major: int, crashes, tmp_path: Path) -> None:
    """The last segment cut at a page boundary inside its WAL: the end is the last record that
    is whole before the cut, for the reason truncated_segment; pg_waldump fails on the same
    short read after printing the same last record."""
    # The crash with the most pages to cut in its last segment: between its first record
    # there and the end's page, and after the last checkpoint record when that is in the
    # segment too (with the checkpoint cut away, locate, which has no pg_control, finds an
    # older checkpoint whose redo segment may be recycled already: missing_segment, rightly).
    def room(c: Crash) -> tuple[int, int, int, list[Record]]:
        t = locate([c.wal]).overall
        recs = [r for r in records_from(c.wal, c.redo)
                if int(r.lsn) >> 20 == segno(t.last_segment)]  # type: ignore[arg-type]
        if not recs:
            return -1, 0, 0, recs
        first_page = int(recs[0].lsn) % 2**20 // 8192
        cp = t.last_checkpoint
        for r in recs:
            if cp is not None and r.lsn == cp.lsn:
                first_page = max(first_page, (int(r.end) - 1) % 2**20 // 8192)
        last_page = int(recs[-1].lsn) % 2**20 // 8192
        return last_page - first_page, first_page, last_page, recs

    rooms = {c.n: room(c) for c in crashes(pg_major)}
    n = max(rooms, key=lambda k: rooms[k][0])
    crash, t = crashes(pg_major)[n], locate([crashes(pg_major)[n].wal]).overall
    _room, first_page, last_page, recs = rooms[n]
    assert last_page - first_page >= 2, "every crash ended at the start of a segment"
    wal = tmp_path / "wal"
    shutil.copytree(crash.wal, wal)
    cut = (first_page + last_page) // 2 * 8192 + 8192  # a page boundary before the end's page
    seg = wal / t.last_segment  # type: ignore[operator]
    seg.write_bytes(seg.read_bytes()[:cut])
    d = locate([wal]).overall
    assert d.reason == "truncated_segment" and t.last_segment in d.reason_detail
    # the last record is the last one that ends before the cut
    whole = [r for r in recs if int(r.end) % 2**20 <= cut and int(r.end) >> 20 == int(r.lsn) >> 20]
    assert d.last_record_lsn == whole[-1].lsn and d.end_lsn - whole[-1].end in HEADERS
    # pg_waldump fails on the short read (same file and offset) after its last record
    proc = waldump(pg_major, wal, "-s", str(recs[0].lsn))
    if proc is not None:
        assert f"could not read from file {t.last_segment}, offset {cut}" in \
            proc.stderr.replace('"', ""), proc.stderr  # 17+ quote the name
        last_line = proc.stdout.strip().splitlines()[-1]
        assert f"lsn: {d.last_record_lsn.waldump()}," in last_line, last_line  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["payload", "header"])
def test_zeroed_bytes_in_the_last_records(pg_major: int, crashes, tmp_path: Path, where: str) -> None:
    """Zeros inside one of the last records: the end is that record (CRC mismatch for a zeroed
    payload, invalid length for a zeroed header), the valid WAL after it is reported beyond."""
    crash = crashes(pg_major)[ROUNDS]
    wal = tmp_path / "wal"
    shutil.copytree(crash.wal, wal)
    recs = records_from(wal, crash.redo)
    # one of the last records that sits inside one page, not the last page (WAL beyond the
    # damage is looked for from the next page on), with non-zero bytes to zero
    def spot(r) -> int:
        return int(r.lsn) % 2**20 + (0 if where == "header" else r.tot_len - 16)
    seg_bytes = {}
    last_page = int(recs[-1].lsn) // 8192
    for r in reversed(recs[:-5]):
        if r.tot_len >= 64 and int(r.lsn) % 8192 + r.tot_len <= 8192 and int(r.lsn) // 8192 < last_page:
            data = seg_bytes.setdefault(r.segment, (wal / r.segment).read_bytes())
            if any(data[spot(r):spot(r) + 8]):
                victim = r
                break
    seg = wal / victim.segment
    buf = bytearray(seg.read_bytes())
    off = spot(victim)
    buf[off:off + 8] = bytes(8)
    seg.write_bytes(buf)
    d = locate([wal]).overall
    assert (d.end_lsn, d.last_record_lsn) == (victim.lsn, victim.prev)
    assert d.reason == ("crc_mismatch" if where == "payload" else "invalid_length")
    assert str(victim.lsn) in d.reason_detail
    # where the last record ends at a page boundary, the end is named after that page's header
    # (where the next record would be written), as every end of WAL is
    beyond_end = int(recs[-1].end)
    if beyond_end % 8192 == 0:
        beyond_end += L.SIZE_OF_LONG_PHD if beyond_end % 2**20 == 0 else L.SIZE_OF_SHORT_PHD
    assert d.wal_beyond_end is not None and d.wal_beyond_end.end_lsn == Lsn(beyond_end)
    proc = waldump(pg_major, wal, "-q", "-s", str(crash.redo))
    if proc is not None:
        assert f"error in WAL record at {victim.prev}" in proc.stderr, proc.stderr


def damage_after_redo(kind: str, crash: Crash, wal: Path) -> tuple[str, Lsn | None]:
    """Damage the WAL in the middle of the first segment after the checkpoint's redo point;
    returns what was done and, for a record over several pages, the page its end is on.
    flip: one bit of a record's payload; zeros: three whole pages
    zeroed; torn: the second half (4 kB) of a page inside a long record replaced by the bytes
    of an older segment at the same offset (a torn write: the first sectors new, the rest old)."""
    recs = records_from(wal, crash.redo)
    target = (int(crash.redo) >> 20) + 1
    mid = [r for r in recs if int(r.lsn) >> 20 == target and int(r.lsn) % 2**20 > 2**19]
    if kind == "flip":
        victim = next(r for r in mid if r.tot_len >= 64 and int(r.lsn) % 8192 + r.tot_len <= 8192)
        seg = wal / victim.segment
        buf = bytearray(seg.read_bytes())
        buf[int(victim.lsn) % 2**20 + victim.tot_len - 3] ^= 0x10
        seg.write_bytes(buf)
        return f"bit flipped in the record at {victim.lsn}", None
    if kind == "zeros":
        first = int(mid[0].lsn) // 8192 * 8192 + 8192
        seg = wal / mid[0].segment
        buf = bytearray(seg.read_bytes())
        off = first % 2**20
        buf[off:off + 3 * 8192] = bytes(3 * 8192)
        seg.write_bytes(buf)
        return f"pages {Lsn(first)} .. {Lsn(first + 3 * 8192)} zeroed", None
    assert kind == "torn"
    # a long record (a logical message of 10-75 kB): tear its second page
    # (in the middle of that segment when one starts there; the crash's workload does not
    # always put one there: then the first one after the redo point whose second page is in
    # its own segment, before the last segment)
    last_seg = max(int(r.lsn) >> 20 for r in recs)

    def tearable(r: Record) -> bool:
        second = int(r.lsn) // 8192 * 8192 + 8192
        return r.tot_len > 3 * 8192 and second >> 20 == int(r.lsn) >> 20 < last_seg

    victim = next((r for r in mid if tearable(r)), None) or next(r for r in recs if tearable(r))
    page = int(victim.lsn) // 8192 * 8192 + 8192
    seg = wal / victim.segment
    buf = bytearray(seg.read_bytes())
    old = seg_names(wal)[0]  # kept by wal_keep_size: older WAL, before the redo point
    stale = (wal / old).read_bytes()
    off = page % 2**20 + 4096
    buf[off:off + 4096] = stale[off:off + 4096] if stale[off:off + 4096] != buf[off:off + 4096] \
        else bytes(4096)
    seg.write_bytes(buf)
    return (f"page {Lsn(page)} of the record at {victim.lsn} torn (second half from {old})",
            Lsn((int(victim.end) - 1) // 8192 * 8192))


@pytest.mark.parametrize("kind", ["flip", "zeros", "torn"])
def test_damage_between_the_redo_point_and_the_end(pg_major: int, crashes, pg_cluster_root: Path,
                                                   kind: str) -> None:
    """Damage in the middle of the WAL after the checkpoint's redo point (a flipped bit, a
    zeroed range, a torn page): by default locate checks every record from the redo point and
    ends exactly where the server's own crash recovery of the damaged copy stops ("redo done
    at", and where it writes next) and where pg_waldump from the redo point stops; the valid
    WAL after the damage is reported beyond the end. --quick (the tail only) does not see it
    and says which records it checked."""
    crash = crashes(pg_major)[ROUNDS]
    copy, wal = recovered_copy(crash, pg_cluster_root / f"{kind}-{pg_major}", pg_major)
    clean = locate([wal], scan="tail").overall
    what, broken_last_page = damage_after_redo(kind, crash, wal)
    t = locate([wal]).overall
    assert t.verified_from is not None and t.verified_from <= crash.redo, (t, what)
    assert t.end_lsn < clean.end_lsn and t.exact, (t, what)
    assert t.wal_beyond_end is not None and t.wal_beyond_end.end_lsn == clean.end_lsn, (t, what)
    if kind == "flip":
        assert t.reason == "crc_mismatch", (t, what)
    everything = locate([wal], scan="all").overall
    assert (everything.end_lsn, everything.last_record_lsn, everything.reason) == \
        (t.end_lsn, t.last_record_lsn, t.reason)
    quick = locate([wal], scan="tail").overall
    assert quick.end_lsn == clean.end_lsn and quick.verified_from > t.end_lsn, (quick, what)
    proc = waldump(pg_major, wal, "-q", "-s", str(crash.redo))
    if proc is not None:
        assert f"error in WAL record at {t.last_record_lsn}" in proc.stderr, (proc.stderr, what)
    text = xlogtools("locate", str(wal))
    assert text.returncode == 0 and f"records from {t.verified_from} to the end" in text.stdout
    assert "WAL beyond:" in text.stdout, text.stdout
    # the server's own crash recovery of the damaged copy
    done, written = recover(copy)
    copy.stop()
    assert_equals_recovery(t, done, written, broken_last_page)
    copy.destroy()


def test_damage_just_before_the_last_checkpoints_redo_point(pg_major: int, crashes,
                                                           pg_cluster_root: Path) -> None:
    """A clean shutdown after crash recovery leaves a shutdown checkpoint at the end; a bit
    flipped in a record shortly before it (inside the tail locate decodes) is not on the
    recovery path: the end is after the checkpoint, where the server itself goes on writing
    and where pg_waldump from its redo point stops, and a note names the damage; --scan all
    (pg_waldump from the first segment) stops at the damage."""
    crash = crashes(pg_major)[ROUNDS]
    copy, wal = recovered_copy(crash, pg_cluster_root / f"late-{pg_major}", pg_major)
    copy.start()
    copy.stop()
    clean = locate([wal]).overall
    cp = clean.last_checkpoint
    assert cp is not None and cp.kind == "shutdown" and clean.last_record_lsn == cp.lsn
    recs = [r for r in records_from(wal, Lsn(int(cp.lsn) - (600 << 10)))
            if r.lsn < int(cp.lsn) - 8192 and r.tot_len >= 64
            and int(r.lsn) % 8192 + r.tot_len <= 8192]
    victim = recs[len(recs) // 2]
    seg = wal / victim.segment
    buf = bytearray(seg.read_bytes())
    buf[int(victim.lsn) % 2**20 + victim.tot_len - 3] ^= 0x20
    seg.write_bytes(buf)
    t = locate([wal]).overall
    assert (t.end_lsn, t.last_record_lsn, t.reason, t.exact) == \
        (clean.end_lsn, clean.last_record_lsn, clean.reason, True)
    assert t.last_checkpoint is not None and t.last_checkpoint.lsn == cp.lsn
    assert t.wal_beyond_end is None
    assert any(str(victim.lsn) in n and "not on its path" in n for n in t.notes), t.notes
    everything = locate([wal], scan="all").overall
    assert (everything.end_lsn, everything.reason) == (victim.lsn, "crc_mismatch")
    proc = waldump(pg_major, wal, "-q", "-s", str(cp.redo))
    if proc is not None:
        assert f"error in WAL record at {t.last_record_lsn}" in proc.stderr, proc.stderr
    # the server starts from that checkpoint without reading the damage, and writes on
    # right after our last record
    copy.start()
    copy.stop()  # (its shutdown checkpoint at least)
    after = list(open_wal(copy.pg_wal, start=t.last_record_lsn))[:2]
    assert after[0].lsn == t.last_record_lsn and after[1].prev == t.last_record_lsn
    assert after[1].lsn - t.end_lsn in HEADERS
    assert "checksum" not in copy.log_text()
    copy.destroy()


def test_flipped_bit_before_the_redo_point(pg_major: int, crashes, tmp_path: Path) -> None:
    """Damage before the checkpoint's redo point is not on the recovery path: tail and recovery
    scans end where the undamaged WAL ends; --scan all stops there, as pg_waldump does."""
    crash = crashes(pg_major)[ROUNDS]
    wal = tmp_path / "wal"
    shutil.copytree(crash.wal, wal)
    clean = locate([wal]).overall
    first = seg_names(wal)[0]
    recs = [r for r in open_wal(wal / first) if r.tot_len >= 64 and int(r.lsn) < crash.redo
            and int(r.lsn) % 8192 + r.tot_len <= 8192]
    if not recs:
        pytest.skip("no segment before the redo point was kept")
    victim = recs[len(recs) // 2]
    seg = wal / victim.segment
    buf = bytearray(seg.read_bytes())
    buf[int(victim.lsn) % 2**20 + victim.tot_len - 3] ^= 0x01
    seg.write_bytes(buf)
    for scan in ("tail", "recovery"):  # recovery: the default
        t = locate([wal], scan=scan).overall
        assert (t.end_lsn, t.last_record_lsn, t.exact) == (clean.end_lsn, clean.last_record_lsn, True)
    a = locate([wal], scan="all").overall
    assert (a.end_lsn, a.last_record_lsn, a.reason) == (victim.lsn, victim.prev, "crc_mismatch")
    proc = waldump(pg_major, wal, "-q", first)
    if proc is not None:
        assert f"error in WAL record at {victim.prev}" in proc.stderr, proc.stderr


@pytest.mark.serial  # checkpoints remove segments on their own timing
def test_missing_segments(pg_major: int, crashes, tmp_path: Path) -> None:
    """A segment missing after the redo point: the end cannot be determined exactly; reading
    stops where pg_waldump does and the WAL after the gap is reported. One missing before the
    redo point is listed and changes nothing."""
    crash = crashes(pg_major)[ROUNDS]
    clean = locate([crash.wal]).overall
    redo_seg = int(crash.redo) >> 20
    names = {segno(n): n for n in seg_names(crash.wal)}
    wal = tmp_path / "wal"
    shutil.copytree(crash.wal, wal)
    (wal / names[redo_seg + 1]).unlink()
    d = locate([wal]).overall
    assert d.reason == "missing_segment" and not d.exact and "cannot be determined" in d.reason_detail
    # the end is in the segment before the missing one; or, where its last record ends at
    # the segment's end, the missing segment's first record would start after its long page
    # header: that is where the next record would be written
    gap_start = Lsn((redo_seg + 1) << 20)
    assert d.end_lsn <= gap_start + L.SIZE_OF_LONG_PHD and d.end_lsn - gap_start > -2**20
    if d.end_lsn > gap_start:
        assert d.end_lsn == gap_start + L.SIZE_OF_LONG_PHD and d.last_record_lsn is not None
        last = next(r for r in open_wal(crash.wal, start=d.last_record_lsn))
        assert last.lsn == d.last_record_lsn and last.end == gap_start
    assert d.wal_beyond_end is not None and d.wal_beyond_end.end_lsn == clean.end_lsn
    assert [g.first for g in d.gaps if g.on_recovery_path] == [names[redo_seg + 1]]
    proc = waldump(pg_major, wal, "-q", "-s", str(crash.redo))
    if proc is not None:
        assert f'could not find file "{names[redo_seg + 1]}"' in proc.stderr, proc.stderr
    d_rec = locate([wal], scan="tail").overall  # the header probe sees the gap too
    assert (d_rec.end_lsn, d_rec.last_record_lsn, d_rec.exact) == (d.end_lsn, d.last_record_lsn, False)
    # before the redo point: harmless
    shutil.copy(crash.wal / names[redo_seg + 1], wal / names[redo_seg + 1])
    before = [s for s in sorted(names) if s < redo_seg and s - 1 in names and s + 1 in names]
    if not before:
        pytest.skip("no segment with neighbours before the redo point")
    (wal / names[before[0]]).unlink()
    h = locate([wal]).overall
    assert (h.end_lsn, h.last_record_lsn, h.reason, h.exact) == \
        (clean.end_lsn, clean.last_record_lsn, clean.reason, True)
    assert names[before[0]] in [g.first for g in h.gaps if g.on_recovery_path is False]


# -- timelines -----------------------------------------------------------------------------------
def test_promotion_reports_both_timelines(pg_major: int, primary_standby) -> None:
    """Promote a standby and write on it: its pg_wal (with 00000002.history) reports timeline 1,
    timeline 2 branching off it at the history's switch point, and timeline 2's end, which is
    where the server's clean shutdown checkpoint ends."""
    primary, standby = primary_standby()
    primary.pgbench(["-i", "-s", "1", "-q"])
    caught_up(primary, standby)
    standby.promote()
    standby.pgbench(["-t", "100"])
    standby.stop()
    primary.stop()
    switch = Lsn((standby.pg_wal / "00000002.history").read_text().split()[1])
    res = locate([standby.pg_wal])
    t1, t2 = res.timeline(1), res.timeline(2)
    assert res.overall is t2
    assert (t2.parent, t2.begins_at) == (1, switch)
    assert (t1.switched_at, t1.next_timeline) == (switch, 2)
    assert t1.end_lsn is not None and t1.end_lsn >= switch
    ctl = controldata(controldata_tool(pg_major), standby.datadir)
    assert t2.last_record_lsn == Lsn(ctl["Latest checkpoint location"])
    assert t2.last_checkpoint is not None and t2.last_checkpoint.kind == "shutdown"
    assert t2.last_checkpoint.timeline == 2
    proc = waldump(pg_major, standby.pg_wal, "-q", "-t", "2", "-s", str(switch))
    if proc is not None:
        assert f"error in WAL record at {t2.last_record_lsn}" in proc.stderr, proc.stderr
    text = subprocess.run([sys.executable, "-m", "xlogtools.cli", "locate", str(standby.pg_wal)],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0
    assert f"timeline 2 (from timeline 1 at {switch})" in text.stdout


# -- command line and bad input -----------------------------------------------------------------
def xlogtools(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "xlogtools.cli", *args],
                          capture_output=True, text=True, timeout=120)


def unpack(major: int, dest: Path) -> list[Path]:
    return unpack_fixture(major, dest)


def test_cli_json_is_the_documented_schema(tmp_path: Path) -> None:
    meta = json.loads((FIXTURES / "pg15" / "meta.json").read_text())
    unpack(15, tmp_path / "wal")
    proc = xlogtools("locate", str(tmp_path / "wal"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in ("timeline", "end_lsn", "last_record_lsn", "last_segment", "reason",
                "reason_detail", "last_checkpoint", "last_commit", "segments", "stale_segments",
                "gaps", "timelines"):
        assert key in doc, key
    assert set(doc["last_checkpoint"]) >= {"lsn", "redo"}
    assert set(doc["last_commit"]) >= {"xid", "lsn", "time"}
    assert doc["system_identifier"] == meta["system_identifier"]
    # the fixture ends with a clean shutdown: its checkpoint is the last record
    assert doc["last_record_lsn"] == doc["last_checkpoint"]["lsn"] == doc["last_checkpoint"]["redo"]
    assert Lsn(doc["end_lsn"]) > Lsn(meta["end_lsn"]) and doc["reason"] == "invalid_length"
    text = xlogtools("locate", str(tmp_path / "wal"))
    assert text.returncode == 0 and f"end of WAL:      {doc['end_lsn']}" in text.stdout


def assert_clean_failure(args: list[str], *words: str, prefix: tuple[str, ...] = ()) -> None:
    for as_json in (False, True):
        proc = xlogtools("locate", *args, *(["--json"] if as_json else []), prefix=prefix)
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        for w in words:
            assert w in proc.stderr, (w, proc.stderr)
        if as_json:
            err = json.loads(proc.stdout)["error"]
            assert err["message"] and all(w in err["message"] for w in words)
        else:
            assert proc.stdout == ""


def test_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_failure([str(empty)], "no WAL segment files found")
    nowal = tmp_path / "nowal"
    nowal.mkdir()
    (nowal / "000000010000000000000001").write_bytes(bytes(2**20))
    assert_clean_failure([str(nowal)], "no WAL found")
    assert_clean_failure([str(tmp_path / "missing")], "No such file")
    mixed = tmp_path / "mixed"
    unpack(15, mixed)
    intruder = mixed / "000000010000000000000009"
    intruder.write_bytes(unpack(16, tmp_path / "other")[0].read_bytes())
    assert_clean_failure([str(mixed)], "different database system", str(intruder))
    locked = tmp_path / "locked"
    segs = unpack(15, locked)
    segs[-1].chmod(0)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
    assert_clean_failure([str(locked)], "could not read", segs[-1].name, prefix=prefix)
    usage = xlogtools("locate", "--scan", "bogus", str(empty))
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_checkpoint_search_c_equals_python(monkeypatch) -> None:
    """The C search back for a checkpoint record's first 8 bytes (8-byte-aligned offsets only)
    finds what the Python path (bytes.rfind plus an alignment check) finds, on random buffers
    with the needle planted at aligned and unaligned offsets and every kind of upper bound."""
    import xlogtools.locate.ckptsearch as loc
    if os.environ.get("XLOGTOOLS_NO_C"):
        pytest.skip("XLOGTOOLS_NO_C is set: the Python path is under test")
    try:
        import xlogtools.parse._walscan  # noqa: F401
    except ImportError:
        pytest.skip("the C extension is not built")
    assert loc._c_rfind_aligned is not None, "built, but locate does not use it"
    rng = random.Random(11)
    needle = loc._CKPT_NEEDLE
    cases = []
    for _ in range(300):
        buf = bytearray(rng.choice([b"\0", b"\x72", b"\x72\0\0\0"]) * rng.randrange(0, 600))
        for _ in range(rng.randrange(0, 5)):
            at = rng.randrange(0, max(1, len(buf)))
            buf[at:at + 8] = needle
        his = [len(buf), rng.randrange(0, len(buf) + 9), rng.randrange(0, 16)]
        cases.append((bytes(buf), his))
    got_c = [[loc._rfind_needle(b, hi) for hi in his] for b, his in cases]
    monkeypatch.setattr(loc, "_c_rfind_aligned", None)
    got_py = [[loc._rfind_needle(b, hi) for hi in his] for b, his in cases]
    assert got_c == got_py
    assert sum(p >= 0 for row in got_c for p in row) > 100  # the needle was found often
