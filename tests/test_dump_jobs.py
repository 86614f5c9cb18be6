"""dump --jobs N writes what --jobs 1 writes (text: the same bytes; Parquet: the same table,
schema and schema metadata, read by pyarrow and DuckDB), with filters, --start/--end and damage
at a range boundary; and the Parquet stitcher (export/pqstitch.py) on its own: Thrift compact
round trips, byte-identical footers, shifted offsets, files pyarrow and DuckDB read."""
from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracle import unpack_fixture

from xlogtools.export import pqstitch as S
from xlogtools.export.dump import DumpOptions, dump
from xlogtools.export.filters import RecordFilter
from xlogtools.lsn import Lsn

FORMATS = ("parquet", "jsonl", "csv", "waldump")


# --- the Thrift compact codec and the stitcher -------------------------------------------------

def test_thrift_compact_round_trips_every_type() -> None:
    rng = random.Random(3)
    ints = [0, 1, -1, 63, -64, 64, 127, 128, 2**31 - 1, -2**31, 2**63 - 1, -2**63]
    inner = [[1, S.I32, 5], [2, S.BINARY, b"x" * 200]]
    fields = [[1, S.BOOL_TRUE, True], [2, S.BOOL_TRUE, False], [3, S.BYTE, -5],
              [4, S.I16, -300], [5, S.I32, 2**31 - 1], [6, S.I64, -2**63],
              [7, S.DOUBLE, 1.5], [8, S.BINARY, b""], [9, S.LIST, [S.I64, ints]],
              [10, S.LIST, [S.STRUCT, [inner] * 20]],  # 15 or more: the long list header
              [11, S.SET, [S.BINARY, [b"a", b"b"]]],
              [12, S.MAP, [S.BINARY, S.I32, [(b"k", 1), (b"l", -2)]]],
              [13, S.MAP, [0, 0, []]], [14, S.LIST, [S.BOOL_TRUE, [True, False, True]]],
              [40, S.STRUCT, inner],  # a field-id jump of more than 15: the long field header
              [41, S.I64, rng.randrange(-2**63, 2**63)], [30000, S.I32, 1]]
    raw = S.encode(fields)
    back, end = S.decode(raw)
    assert end == len(raw) and back == fields and S.encode(back) == raw


def test_thrift_decoder_refuses_truncated_data() -> None:
    raw = S.encode([[1, S.BINARY, b"abcdef"], [2, S.I64, 10**15]])
    for cut in range(len(raw)):
        with pytest.raises(S.ThriftError):
            S.decode(raw[:cut])


def _table(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({
        "i": pa.array([rng.randrange(-2**40, 2**40) for _ in range(n)], pa.int64()),
        "s": pa.array([rng.choice(["a", "bb", None, "ccc"]) for _ in range(n)], pa.string()),
        "l": pa.array([[{"x": rng.randrange(100), "y": "z" * rng.randrange(3)}] * rng.randrange(3)
                       for _ in range(n)],
                      pa.list_(pa.struct([("x", pa.int32()), ("y", pa.string())]))),
        "t": pa.array([rng.randrange(10**15) if rng.random() > 0.2 else None for _ in range(n)],
                      pa.timestamp("us", tz="UTC")),
    }).replace_schema_metadata({"made": "by a test"})


def _write(path: Path, table: pa.Table, **kw: Any) -> Path:
    kw = {"compression": "zstd", "use_dictionary": ["s"], "write_statistics": ["i", "t"], **kw}
    with pq.ParquetWriter(path, table.schema, **kw) as w:
        w.write_table(table, row_group_size=300)
    return path


@pytest.mark.parametrize("kw", [{}, {"compression": "snappy", "use_dictionary": True,
                                     "write_statistics": True},
                                {"data_page_version": "2.0"}, {"write_page_index": True}])
def test_pyarrow_footers_decode_and_encode_to_the_same_bytes(kw: dict[str, Any],
                                                             tmp_path: Path) -> None:
    p = _write(tmp_path / "a.parquet", _table(1000, 1), **kw)
    raw = p.read_bytes()
    with open(p, "rb") as f:
        meta, start = S.read_footer(f)
    assert S.encode(meta) == raw[start:-8]
    assert struct.unpack("<I", raw[-8:-4])[0] == len(raw) - 8 - start


@pytest.mark.parametrize("kw", [{}, {"write_page_index": True}, {"data_page_version": "2.0"}])
def test_stitched_parts_read_as_the_whole(kw: dict[str, Any], tmp_path: Path) -> None:
    import duckdb

    whole = _table(2500, 2)
    cuts = [0, 700, 700, 1901, 2500]  # an empty part among them
    parts = [_write(tmp_path / f"p{i}.parquet", whole.slice(a, b - a), **kw)
             for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]
    out = tmp_path / "out.parquet"
    assert S.stitch([str(p) for p in parts], str(out)) == 2500
    got = pq.read_table(out)
    ref = pq.read_table(_write(tmp_path / "whole.parquet", whole, **kw))  # as one file reads
    assert got.equals(ref) and got.schema.equals(ref.schema, check_metadata=True)
    md = pq.ParquetFile(out).metadata
    part_groups = sum(1 for p in parts for g in range(pq.ParquetFile(p).metadata.num_row_groups)
                      if pq.ParquetFile(p).metadata.row_group(g).num_rows)  # empty ones left out
    assert md.num_rows == 2500 and md.num_row_groups == part_groups
    # every column chunk's offsets point at its own pages in the stitched file
    raw = out.read_bytes()
    pos = 4
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            first = col.dictionary_page_offset if col.has_dictionary_page else col.data_page_offset
            # contiguous, but for a part's page index left behind between parts
            assert first == pos or ("write_page_index" in kw and c == 0 and first > pos), (g, c)
            pos = first + col.total_compressed_size
        # statistics survive (they are copied with the rest of the metadata)
        assert rg.column(0).statistics.has_min_max
    assert pos <= len(raw) - 8
    for g in range(md.num_row_groups):  # row groups read one by one (offsets, not a scan)
        assert pq.ParquetFile(out).read_row_group(g).num_rows == md.row_group(g).num_rows
    rows = duckdb.sql(f"SELECT count(*), sum(i), count(s), sum(len(l)), max(t) "
                      f"FROM '{out}'").fetchall()
    want = duckdb.sql(f"SELECT count(*), sum(i), count(s), sum(len(l)), max(t) "
                      f"FROM '{_write(tmp_path / 'w.parquet', whole, **kw)}'").fetchall()
    assert rows == want
    back = duckdb.sql(f"SELECT * FROM '{out}'").arrow()
    if isinstance(back, pa.RecordBatchReader):
        back = back.read_all()
    assert back.column("i").to_pylist() == whole.column("i").to_pylist()


def test_a_part_of_another_schema_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.parquet", _table(10, 1))
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"other": [1, 2]}), b)
    with pytest.raises(S.ThriftError):
        S.stitch([str(a), str(b)], str(tmp_path / "out.parquet"))
    with pytest.raises(S.ThriftError):
        S.stitch([str(tmp_path / "a.parquet"), __file__], str(tmp_path / "out2.parquet"))


# --- dump --jobs N equals --jobs 1 -------------------------------------------------------------

def _run(paths: list[str], out: Path, fmt: str, jobs: int, **kw: Any) -> tuple[Any, Any]:
    res = dump(paths, DumpOptions(format=fmt, output=str(out), jobs=jobs, progress=False, **kw))
    eow = res.end_of_wal.as_dict() if res.end_of_wal else None
    if fmt == "parquet":
        body = pq.read_table(out)
    else:
        body = out.read_bytes()
    return (res.records, eow, res.exit_status), body


def assert_jobs_same(paths: list[str], tmp: Path, formats: tuple[str, ...] = FORMATS,
                     **kw: Any) -> int:
    n = 0
    for fmt in formats:
        one_res, one = _run(paths, tmp / f"j1.{fmt}", fmt, 1, **kw)
        for jobs in (2, 3):
            res, got = _run(paths, tmp / f"j{jobs}.{fmt}", fmt, jobs, **kw)
            assert res == one_res, (fmt, jobs, kw)
            if fmt == "parquet":
                assert got.schema.equals(one.schema, check_metadata=True)
                assert got.equals(one), (fmt, jobs, kw, [c for c in got.column_names
                                                         if not got[c].equals(one[c])])
                n = got.num_rows
            else:
                assert got == one, (fmt, jobs, kw)
    return n


def test_jobs_equal_one_job_with_filters_and_ranges(tmp_path: Path) -> None:
    import duckdb

    from xlogtools.parse.api import open_wal

    paths = [str(p) for p in unpack_fixture(16, tmp_path / "wal")]
    assert assert_jobs_same(paths, tmp_path) > 10000
    j1 = duckdb.sql(f"SELECT * FROM '{tmp_path / 'j1.parquet'}' ORDER BY lsn_int").fetchall()
    j2 = duckdb.sql(f"SELECT * FROM '{tmp_path / 'j2.parquet'}' ORDER BY lsn_int").fetchall()
    assert j1 == j2
    recs = list(open_wal(paths))
    assert assert_jobs_same(paths, tmp_path, start=Lsn(int(recs[len(recs) // 3].lsn) + 5),
                            end=recs[len(recs) * 5 // 6].end) > 1000
    assert assert_jobs_same(paths, tmp_path, filter=RecordFilter(rmgrs=frozenset({10, 1}))) > 0


def _segment_start_damage(kind: str, segs: list[Path]) -> None:
    """Damage where the second segment begins (a range boundary of --jobs)."""
    from xlogtools.parse.api import open_wal

    data = bytearray(segs[1].read_bytes())
    seg_size = len(data)
    recs = list(open_wal([str(s) for s in segs]))
    seg1 = int(recs[0].lsn) // seg_size + 1
    crossing = next(r for r in recs if int(r.lsn) // seg_size < seg1 <= (int(r.end) - 1) // seg_size)
    starting = next(r for r in recs if int(r.lsn) // seg_size == seg1)
    if kind == "first record":  # the first record that starts in the segment
        data[int(starting.lsn) % seg_size + 26] ^= 0x10
    elif kind == "crossing record":  # the record read across the boundary, in its tail
        data[40 + 3] ^= 0x10
    elif kind == "rem_len":  # the page header says another length of the continuation
        rem = struct.unpack_from("<I", data, 16)[0]
        struct.pack_into("<I", data, 16, rem + 8)
    elif kind == "missing":
        segs[1].unlink()
        return
    segs[1].write_bytes(bytes(data))
    del crossing


@pytest.mark.parametrize("kind", ["first record", "crossing record", "rem_len", "missing"])
def test_jobs_equal_one_job_with_damage_at_a_range_boundary(kind: str, tmp_path: Path) -> None:
    segs = unpack_fixture(17, tmp_path / "wal")
    _segment_start_damage(kind, segs)
    paths = [str(tmp_path / "wal")]
    assert assert_jobs_same(paths, tmp_path, formats=("parquet", "jsonl", "waldump")) > 100


def test_jobs_to_a_stream_without_a_file_descriptor(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A library caller's text stream (no fileno, no buffer): the workers' parts are decoded
    and written to it in pieces of whole lines, the same text as one process writes."""
    import io

    from xlogtools.export import writers

    monkeypatch.setattr(writers, "TEXT_PIECE", 1000)  # pieces cut in lines and characters

    paths = [str(p) for p in unpack_fixture(16, tmp_path / "wal")]

    class Lines(io.StringIO):
        def write(self, s: str) -> int:
            assert s.endswith("\n"), s[-80:]  # every write ends a line
            return super().write(s)

    for fmt in ("jsonl", "waldump", "csv"):
        got = {}
        for jobs in (1, 2):
            out = Lines()
            res = dump(paths, DumpOptions(format=fmt, jobs=jobs, progress=False), stdout=out)
            got[jobs] = (res.records, out.getvalue())
        assert got[1][0] > 10000 and got[1] == got[2], fmt
