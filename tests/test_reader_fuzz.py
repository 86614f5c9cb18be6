"""Damaged WAL is normal input: mutate real segments (bit flips, truncation, zeroed ranges,
shuffled pages) and check the reader yields records and then a typed end, or a typed error,
never any other exception; and that every record before the damage is decoded unchanged."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from crc32c import crc32c
from oracle import unpack_fixture

from xlogtools.errors import XlogError
from xlogtools.parse import reader as reader_mod
from xlogtools.parse.api import open_wal
from xlogtools.parse.reader import EndOfWal

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = [m for m in (13, 15, 17, 18) if (FIXTURES / f"pg{m}" / "meta.json").exists()]
ROUNDS = 60


def unpack(major: int, dest: Path) -> list[Path]:
    return unpack_fixture(major, dest)


def read_all(path: Path) -> tuple[list[tuple[int, int, bytes]], EndOfWal | None, list[bytes]]:
    reader = open_wal(path)
    recs, pages = [], []
    for r in reader:
        recs.append((int(r.lsn), r.tot_len, r.data))
        for b in r.blocks:
            if b.has_image:
                try:
                    pages.append(r.restore_page(b))
                except XlogError:
                    pages.append(b"")
    return recs, reader.end_of_wal, pages


def scan_result(path: Path, c_walk: bool
                ) -> tuple[int, object, dict[str, object] | None, object]:
    """scan() of the whole WAL: its count, last record, end and where the record after the
    last one starts (resume_lsn), with or without the C walk."""
    saved = reader_mod._cscan
    if not c_walk:
        reader_mod._cscan = None
    try:
        reader = open_wal(path)
        n = reader.scan()
    finally:
        reader_mod._cscan = saved
    eow = reader.end_of_wal
    return n, reader.last_record_lsn, eow.as_dict() if eow else None, reader.resume_lsn


def assert_scan_is_iteration(path: Path, recs: list[tuple[int, int, bytes]],
                             end: EndOfWal | None) -> None:
    """scan() (C walk and Python walk) counts what iteration yields and ends where it ends;
    both name the same resume_lsn (where a streaming verifier goes on from)."""
    want = (len(recs), recs[-1][0] if recs else None, end.as_dict() if end else None)
    resume = []
    for c_walk in (True, False):
        n, last, eow, res = scan_result(path, c_walk)
        assert (n, int(last) if last is not None else None, eow) == want, (c_walk, path)
        if recs:
            assert res is not None and int(res) > recs[-1][0], (c_walk, path, res)
        resume.append(res)
    if recs:
        assert resume[0] == resume[1], (path, resume)


def test_the_c_walk_is_built() -> None:
    """The C walk is part of the package wherever a C compiler is (setup.py); CI has one.
    XLOGTOOLS_NO_C=1 runs the suite without it, on purpose."""
    if os.environ.get("XLOGTOOLS_NO_C"):
        pytest.skip("XLOGTOOLS_NO_C is set: the pure-Python walk is under test")
    from xlogtools.parse import _walscan
    assert reader_mod._cscan is _walscan.scan
    data = random.Random(1).randbytes(100_003)
    assert _walscan.crc32c(data) == crc32c(data) and _walscan.crc32c(data, 7) == crc32c(data, 7)
    was = _walscan.set_hw(False)  # the table-driven CRC, as on CPUs without SSE4.2
    try:
        assert _walscan.crc32c(data) == crc32c(data) and _walscan.crc32c(data[1:], 9) == \
            crc32c(data[1:], 9)
    finally:
        _walscan.set_hw(was)


def mutate(rng: random.Random, segs: list[Path], blcksz: int = 8192) -> int:
    """Damage one file; return the lowest LSN whose bytes changed (records wholly before it
    must come out unchanged)."""
    seg = rng.choice(segs)
    data = bytearray(seg.read_bytes())
    seg_size = 1 << 20
    base = int(seg.name[8:16], 16) * (0x100000000 // seg_size) * seg_size + \
        int(seg.name[16:], 16) * seg_size
    kind = rng.choice(["flip", "flip", "zero", "truncate", "shuffle", "garbage"])
    if kind == "flip":
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        first = pos
    elif kind == "zero":
        pos = rng.randrange(len(data))
        n = rng.choice([1, 8, 24, 100, 4096, 20000])
        data[pos:pos + n] = bytes(len(data[pos:pos + n]))
        first = pos
    elif kind == "truncate":
        pos = rng.randrange(len(data))
        del data[pos:]
        first = pos
    elif kind == "garbage":
        pos = rng.randrange(len(data))
        n = rng.choice([4, 40, 300])
        data[pos:pos + n] = rng.randbytes(len(data[pos:pos + n]))
        first = pos
    else:
        npages = len(data) // blcksz
        a, b = sorted(rng.sample(range(npages), 2))
        pa, pb = data[a * blcksz:(a + 1) * blcksz], data[b * blcksz:(b + 1) * blcksz]
        data[a * blcksz:(a + 1) * blcksz], data[b * blcksz:(b + 1) * blcksz] = pb, pa
        first = a * blcksz
    seg.write_bytes(bytes(data))
    return base + first


@pytest.mark.parametrize("major", CASES, ids=[f"pg{m}" for m in CASES])
def test_mutated_segments_give_records_then_a_typed_end(major: int, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    unpack(major, clean)
    good, good_end, _ = read_all(clean)
    assert good and good_end is not None
    assert_scan_is_iteration(clean, good, good_end)
    rng = random.Random(major)
    ends: set[str] = set()
    for i in range(ROUNDS):
        work = tmp_path / f"m{i}"
        shutil.copytree(clean, work)
        first_bad = mutate(rng, sorted(work.iterdir()))
        try:
            recs, end, _pages = read_all(work)
        except XlogError as exc:  # a typed error (e.g. the first page is no longer WAL)
            assert str(exc)
            ends.add(type(exc).__name__)
            shutil.rmtree(work)
            continue
        assert end is not None
        ends.add(end.reason.value)
        assert_scan_is_iteration(work, recs, end)
        # Every record that lies wholly before the damage is decoded exactly as before.
        # (a damaged page is unreadable as a whole, so the margin is its first byte)
        intact = [g for g in good if g[0] + g[1] <= first_bad - first_bad % 8192]
        assert recs[:len(intact)] == intact, f"round {i}: records before the damage changed"
        shutil.rmtree(work)
    assert len(ends) >= 3, ends  # the mutations reach several different kinds of end
