"""The C descriptions and lines (xlogtools.parse._waldesc, via parse.native_desc) equal the
Python ones, record for record.

Scenarios:
- the committed every-rmgr fixtures of each major: every record's C type text equals
  record_type(), every description the C code makes equals describe(), and the whole
  `--format waldump` text (plain and -b) equals export.waldump.format_records;
- every (major, rmid, info) the header can hold gets the same type text from C and Python;
- records changed at random (seeded; payload bytes, counts, the info and rmid of the header,
  the fragment headers), re-decoded as the reader would after a good CRC: wherever the C code
  does not fall back it prints what Python prints, and nothing crashes (in-process: a segfault
  fails the run);
- pgbench on a real cluster of each major: under 1% of the records fall back to Python.

The byte-for-byte comparisons with pg_waldump itself (tests/test_dump.py, tests/test_rmgr_desc.py,
`-k waldump`) go through the same `--format waldump` chunks, so they check the C path when the
extension is built and the Python path under XLOGTOOLS_NO_C=1.
"""
from __future__ import annotations

import random
import struct
import sys
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzzwal import KINDS, mutate  # noqa: E402
from oracle import unpack_fixture  # noqa: E402

from xlogtools.export.waldump import format_records  # noqa: E402
from xlogtools.lsn import Lsn  # noqa: E402
from xlogtools.parse import native_desc  # noqa: E402
from xlogtools.parse.api import open_wal  # noqa: E402
from xlogtools.parse.record import DecodeError, Record, decode_fragments  # noqa: E402
from xlogtools.parse.rmgr import describe, identify_info, record_type, rmgr_name  # noqa: E402

pytestmark = pytest.mark.skipif(not native_desc.AVAILABLE,
                                reason="the _waldesc extension is not built (or XLOGTOOLS_NO_C)")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in (13, 14, 15, 16, 17, 18) if (FIXTURES / f"pg{m}" / "meta.json").exists()]
MUTATIONS = 20000  # mutated records per major
# resource managers the C code describes: all built-in ones (but a few record shapes)
NATIVE_RMIDS = set(range(22))


def texts(offsets: bytes, data: bytes) -> list[str]:
    o = array("i")
    o.frombytes(offsets)
    return [data[o[i]:o[i + 1]].decode("utf-8", "surrogateescape") for i in range(len(o) - 1)]


def native(records: list[Record]) -> tuple[list[str], list[int], list[str]]:
    """(descriptions, fallback flags, type texts) of the C code for records of one major."""
    arena, offsets = native_desc.arena(records)
    major = records[0].pg_major
    doffs, ddata, fallback = native_desc.describe_batch(arena, offsets, len(records), major,
                                                        records[0].block_size)
    ioffs, idata, ifallback = native_desc.identify_batch(arena, offsets, len(records), major)
    assert not any(ifallback)
    return texts(doffs, ddata), list(fallback), texts(ioffs, idata)


def kind(rec: Record) -> str:
    return f"{rmgr_name(rec.rmid)}/{record_type(rec)}"


def differences(records: list[Record]) -> tuple[list[str], Counter[str]]:
    """Records whose C text differs from Python's, and the fallbacks by record kind."""
    descs, fallback, types = native(records)
    diffs = []
    fell_back: Counter[str] = Counter()
    for rec, desc, fb, typ in zip(records, descs, fallback, types):
        if typ != record_type(rec):
            diffs.append(f"{rec.lsn} {kind(rec)}: type {typ!r}")
        if fb:
            assert desc == ""
            fell_back[kind(rec)] += 1
            continue
        want = describe(rec)
        if desc != want:
            diffs.append(f"{rec.lsn} {kind(rec)} info {rec.info:#x}:\n  C:      {desc}\n"
                         f"  Python: {want}")
    return diffs, fell_back


_RECORDS: dict[int, list[Record]] = {}


def fixture_records(major: int, tmp: Path) -> list[Record]:
    if major not in _RECORDS:
        _RECORDS[major] = list(open_wal(unpack_fixture(major, tmp / f"pg{major}")))
    return _RECORDS[major]


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_fixture_records_described_as_python_does(major: int, tmp_path: Path) -> None:
    records = fixture_records(major, tmp_path)
    diffs, fell_back = differences(records)
    assert not diffs, "\n".join(diffs[:20])
    # real WAL leaves nothing to Python
    assert not fell_back, fell_back


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
@pytest.mark.parametrize("bkp", [False, True], ids=["plain", "-b"])
def test_waldump_text_equals_format_records(major: int, bkp: bool, tmp_path: Path) -> None:
    records = fixture_records(major, tmp_path)
    for i in range(0, len(records), 1000):
        chunk = records[i:i + 1000]
        got, want = native_desc.describe_records(chunk, bkp), format_records(chunk, bkp)
        if got != want:
            for a, b in zip(got.split("\n"), want.split("\n")):
                assert a == b
            assert got == want


def _header_only(major: int, rmid: int, info: int) -> Record:
    data = struct.pack("<IIQBBxxI", 24, 0, 0, info, rmid, 0)
    return Record(Lsn(0), Lsn(24), Lsn(0), 0, info, rmid, 24, 0, 1, "", major, data)


@pytest.mark.parametrize("major", [13, 14, 15, 16, 17, 18])
def test_every_header_gets_pythons_type_text(major: int) -> None:
    records = [_header_only(major, rmid, info) for rmid in range(256) for info in range(256)]
    arena, offsets = native_desc.arena(records)
    ioffs, idata, _ = native_desc.identify_batch(arena, offsets, len(records), major)
    got = texts(ioffs, idata)
    for rec, typ in zip(records, got):
        name = identify_info(rec.rmid, rec.info, major)
        assert typ == (name if name is not None else f"UNKNOWN ({rec.info & 0xF0:x})")


def _redecoded(rec: Record, data: bytes) -> Record | None:
    """The record the reader would hand out for these bytes (CRC made right), or None when
    its fragments no longer add up."""
    tot_len, xid, prev, info, rmid = struct.unpack_from("<IIQBB", data)
    if tot_len != len(data) or tot_len < 24:
        return None
    new = Record(rec.lsn, Lsn(int(rec.lsn) + tot_len), Lsn(prev), xid, info, rmid, tot_len, 0,
                 rec.timeline, rec.segment, rec.pg_major, data, block_size=rec.block_size)
    try:
        decode_fragments(new)
    except DecodeError:
        return None
    return new


def mutated(records: list[Record], seed: int, n: int) -> list[Record]:
    rng = random.Random(seed)
    by_kind: dict[tuple[int, int], list[Record]] = {}
    for r in records:
        by_kind.setdefault((r.rmid, r.info & 0xF0), []).append(r)
    groups = [by_kind[k] for k in sorted(by_kind) if k[0] in NATIVE_RMIDS]
    out: list[Record] = []
    while len(out) < n:
        rec = rng.choice(rng.choice(groups))
        how = rng.choice(KINDS + ("retype", "retype"))
        if how == "retype":  # another type (and rmgr) over this payload
            d = bytearray(rec.data)
            d[16] = rng.randrange(256)
            if rng.random() < 0.5:
                d[17] = rng.choice(sorted(NATIVE_RMIDS))
            data: bytes | None = bytes(d)
        else:
            data = mutate(rng, rec, how)
        if data is None:
            continue
        new = _redecoded(rec, data)
        if new is not None:
            out.append(new)
    return out


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_mutated_records_described_as_python_does_or_left_to_it(major: int,
                                                                tmp_path: Path) -> None:
    records = fixture_records(major, tmp_path)
    seed = 11_000 + major
    recs = mutated(records, seed, MUTATIONS)
    diffs, fell_back = differences(recs)
    assert not diffs, f"seed {seed}:\n" + "\n".join(diffs[:20])
    # the lines too (with the Python texts of the fallbacks)
    for bkp in (False, True):
        got, want = native_desc.describe_records(recs, bkp), format_records(recs, bkp)
        assert got == want
    assert sum(fell_back.values()) < len(recs)


@pytest.mark.pg_majors(13, 14, 15, 16, 17, 18)
def test_pgbench_wal_almost_all_native(pg_major: int, cluster_factory: Any) -> None:
    c = cluster_factory(wal_compression="pglz")
    c.pgbench(["-i", "-s", "1", "-q"])
    c.execute("CHECKPOINT;")
    c.pgbench(["-c", "2", "-t", "300"])
    c.stop()
    records = list(open_wal(c.pg_wal))
    diffs, fell_back = differences(records)
    assert not diffs, "\n".join(diffs[:20])
    share = sum(fell_back.values()) / len(records)
    print(f"pg{pg_major}: {len(records)} records, {share:.4%} fall back: {dict(fell_back)}")
    assert share < 0.01, fell_back
    for bkp in (False, True):
        for i in range(0, len(records), 1000):
            chunk = records[i:i + 1000]
            assert native_desc.describe_records(chunk, bkp) == format_records(chunk, bkp)


def test_batches_in_threads_give_the_same_texts(tmp_path: Path) -> None:
    """The C loops run without the GIL: batches described in four threads at once give what
    one thread gives."""
    from concurrent.futures import ThreadPoolExecutor

    records = fixture_records(MAJORS[-1], tmp_path)
    arena, offsets = native_desc.arena(records)
    args = (arena, offsets, len(records), records[0].pg_major, records[0].block_size)
    want = native_desc.describe_batch(*args)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: native_desc.describe_batch(*args), range(8)))
    assert all(g == want for g in got)


def test_records_of_two_majors_go_to_format_records(tmp_path: Path) -> None:
    mixed = fixture_records(MAJORS[0], tmp_path)[:50] + fixture_records(MAJORS[-1], tmp_path)[:50]
    for bkp in (False, True):
        assert native_desc.describe_records(mixed, bkp) == format_records(mixed, bkp)


def test_records_outside_the_arena_fall_back() -> None:
    rec = _header_only(15, 10, 0)
    offsets = array("Q", [0, 10, 1 << 40]).tobytes()
    _, data, fallback = native_desc.describe_batch(rec.data, offsets, 3, 15, 8192)
    assert list(fallback) == [1, 1, 1] and data == b""  # a 24-byte header with no main data
    with pytest.raises(ValueError):
        native_desc.describe_batch(rec.data, offsets, 4, 15, 8192)
