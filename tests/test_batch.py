"""WalReader.batches(): the columns of every batch hold exactly what iterating gives, record
for record (header fields, fragments, blocks, the bytes), with the C decoder and without it,
and the reader ends the same way (reason, LSN, message) on clean and on damaged WAL."""
from __future__ import annotations

import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from fuzzwal import KINDS, Wal, mutate
from oracle import unpack_fixture
from test_reader_fuzz import mutate as damage

from xlogtools.errors import XlogError
from xlogtools.lsn import Lsn
from xlogtools.parse import reader as reader_mod
from xlogtools.parse.api import open_wal
from xlogtools.parse.batch import COMPRESSIONS, WalBatch
from xlogtools.parse.reader import WalReader
from xlogtools.parse.record import Record

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in range(13, 19) if (FIXTURES / f"pg{m}" / "meta.json").exists()]


@contextmanager
def c_decoder(on: bool) -> Iterator[None]:
    saved = reader_mod._CBuilder
    if not on:
        reader_mod._CBuilder = None
    try:
        yield
    finally:
        reader_mod._CBuilder = saved


def record_row(r: Record) -> tuple[Any, ...]:
    """Everything a record is, as the batch columns hold it."""
    blocks = tuple((b.block_id, b.fork_flags, b.spc, b.db, b.rel, b.blk, b.has_image,
                    b.apply_image, COMPRESSIONS.index(b.compression), b.image_len,
                    b.hole_offset, b.hole_length, b.bimg_info, b.data_len,
                    b.image_off if b.has_image else 0, b.data_off if b.data_len else 0)
                   for b in r.blocks)
    return (int(r.lsn), int(r.end), int(r.prev), r.xid, r.toplevel_xid, r.info, r.rmid,
            r.tot_len, r.fpi_len, r.origin, r.main_data_off, r.main_data_len, r.timeline,
            r.segment, bytes(r.data), r.main_data, blocks)


def batch_rows(b: WalBatch) -> list[tuple[Any, ...]]:
    col = {name: b.column(name) for name in b.buffers if name != "arena"}
    arena = b.arena
    out = []
    for i in range(b.n):
        lo, hi = col["block_offsets"][i], col["block_offsets"][i + 1]
        blocks = tuple(tuple(bool(col[n][k]) if n in ("has_image", "apply_image") else col[n][k]
                             for n in ("block_id", "fork_flags", "spc", "db", "rel", "blk",
                                       "has_image", "apply_image", "compression", "image_len",
                                       "hole_offset", "hole_length", "bimg_info", "data_len",
                                       "image_off", "data_off"))
                       for k in range(lo, hi))
        off, tot = col["rec_off"][i], col["tot_len"][i]
        assert off % 8 == 0
        data = arena[off:off + tot]
        mo, ml = col["main_off"][i], col["main_len"][i]
        out.append((col["lsn"][i], col["end"][i], col["prev"][i], col["xid"][i],
                    col["toplevel_xid"][i], col["info"][i], col["rmid"][i], tot,
                    col["fpi_len"][i], col["origin"][i], mo, ml, b.timeline(i), b.segment(i),
                    data, data[mo:mo + ml], blocks))
    return out


def outcome(reader: WalReader) -> tuple[Any, ...]:
    eow = reader.end_of_wal
    return (reader.records_read, reader.last_record_lsn, eow.as_dict() if eow else None)


def assert_batches_are_iteration(make: Any, max_records: int = 20000,
                                 rmgr: int | None = None) -> int:
    """batches() of make() (a fresh WalReader), C and Python, equal iteration of make() (with
    rmgr: its records of that resource manager; the reader's outcome that of all)."""
    it = make()
    every = [record_row(r) for r in it]
    want = [r for r in every if rmgr is None or r[6] == rmgr]
    want_end = outcome(it)
    for c in (True, False):
        with c_decoder(c):
            reader = make()
            got: list[tuple[Any, ...]] = []
            batches = list(reader.batches(max_records=max_records, rmgr=rmgr))
            for b in batches:
                assert 0 < b.n <= max_records
                got += batch_rows(b)
            assert got == want, f"C decoder {c}: columns differ from iteration"
            assert outcome(reader) == want_end, f"C decoder {c}"
            if every:
                assert reader.resume_lsn == Lsn(every[-1][1])
            # the full Record again, from the arena
            again = [b.record(i) for b in batches for i in range(b.n)]
            assert [record_row(r) for r in again] == want
    return len(want)


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_fixture_batches_are_iteration(major: int, tmp_path: Path) -> None:
    paths = unpack_fixture(major, tmp_path / "wal")
    n = assert_batches_are_iteration(lambda: open_wal(paths))
    assert n > 1000
    # small batches: every place a batch can end (mid segment, at a Python-read record)
    assert_batches_are_iteration(lambda: open_wal(paths), max_records=97)
    # from a start LSN that is not a record boundary, to an end
    import json

    meta = json.loads((FIXTURES / f"pg{major}" / "meta.json").read_text())
    lo, hi = int(Lsn(meta["start_lsn"])), int(Lsn(meta["end_lsn"]))
    mid = lo + (hi - lo) // 3 + 5
    assert_batches_are_iteration(lambda: open_wal(paths, start=Lsn(mid), end=Lsn(hi - 1000)))
    assert_batches_are_iteration(lambda: open_wal(paths, start=Lsn(mid), until=Lsn(mid + 300000)),
                                 max_records=50)
    # the Transaction records only (the exports' commit-time pass), every batch end again
    assert assert_batches_are_iteration(lambda: open_wal(paths), max_records=97, rmgr=1) > 10
    assert_batches_are_iteration(lambda: open_wal(paths, start=Lsn(mid), end=Lsn(hi - 1000)),
                                 rmgr=1)


def test_batches_stop_at_the_arena_limit(tmp_path: Path) -> None:
    paths = unpack_fixture(15, tmp_path / "wal")
    for c in (True, False):
        with c_decoder(c):
            batches = list(open_wal(paths).batches(max_arena=1 << 16))
        assert len(batches) > 10
        assert all(len(b.arena) < (1 << 16) + 40000 for b in batches)


@pytest.mark.parametrize("major", [m for m in (13, 15, 17, 18) if m in MAJORS])
def test_damaged_segments_end_the_batches_as_iteration(major: int, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    unpack_fixture(major, clean)
    rng = random.Random(major * 7)
    for i in range(25):
        work = tmp_path / f"m{i}"
        shutil.copytree(clean, work)
        damage(rng, sorted(work.iterdir()))
        try:
            assert_batches_are_iteration(lambda: open_wal(work), max_records=500)
            assert_batches_are_iteration(lambda: open_wal(work), max_records=50, rmgr=1)
        except XlogError:
            pass  # e.g. the first page is no longer WAL: open_wal says so, both ways
        shutil.rmtree(work)


def test_crc_valid_mutations_end_the_batches_as_iteration(tmp_path: Path) -> None:
    """Records changed with their CRC made right (tests/fuzzwal.py): the C decoder stops
    before what the Python reader rejects, and decodes the same columns for the rest."""
    for major in [m for m in (14, 16, 18) if m in MAJORS]:
        wal = Wal.load(unpack_fixture(major, tmp_path / f"pg{major}"))
        rng = random.Random(major)
        done = 0
        for case in range(400):
            group = wal.groups[rng.randrange(len(wal.groups))]
            i = group[rng.randrange(len(group))]
            rec = wal.records[i]
            data = mutate(rng, rec, rng.choice(KINDS))
            if data is None:
                continue
            segs = wal.patched(rec, data)
            stop = wal.records[min(i + 3, len(wal.records) - 1)].end

            def make() -> WalReader:
                r = wal.reader(segs, int(wal.records[max(i - 2, 0)].lsn))
                r.end = stop
                return r

            assert_batches_are_iteration(make, max_records=3)
            done += 1
        assert done > 200


@pytest.mark.pg
def test_batches_across_segments_a_switch_and_a_timeline_switch(pg_major: int,
                                                                primary_standby) -> None:
    """Records crossing into the next segment, XLOG_SWITCH, a promotion (timeline 2, with its
    history file) and full-page images: the batches are what iteration gives."""
    primary, standby = primary_standby(wal_segsize_mb=1)
    primary.pgbench(["-i", "-s", "1", "-q"])
    primary.execute("SELECT pg_switch_wal(); CHECKPOINT;")
    primary.pgbench(["-t", "200"])
    from oracle import caught_up

    caught_up(primary, standby)
    standby.promote()
    standby.pgbench(["-t", "200"])
    standby.execute("SELECT pg_switch_wal(); CHECKPOINT;")
    standby.pgbench(["-t", "50"])
    standby.stop()
    primary.stop()
    records = list(open_wal(standby.pg_wal))
    assert {r.timeline for r in records} == {1, 2}
    assert any(r.rmid == 0 and r.info & 0xF0 == 0x40 for r in records)  # XLOG_SWITCH
    seg_size = open_wal(standby.pg_wal).seg_size
    assert any(int(r.lsn) // seg_size != (int(r.lsn) + r.tot_len - 1) // seg_size
               for r in records), "no record crosses a segment boundary"
    assert_batches_are_iteration(lambda: open_wal(standby.pg_wal))
    assert_batches_are_iteration(lambda: open_wal(standby.pg_wal), max_records=333)

