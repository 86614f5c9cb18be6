"""dump --format jsonl|csv|parquet made from the reader's batches (export/columns.py) writes
what the Record path (rows.py, writers.py: the definition) writes: the same bytes for jsonl
and csv, the same table for parquet; with filters, limits, a start, commit times, relation
names and --jobs, on the fixtures of every major and on a pgbench run of a real server."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracle import unpack_fixture

from xlogtools.export import dump as D
from xlogtools.export.dump import DumpOptions, dump
from xlogtools.export.filters import RecordFilter
from xlogtools.lsn import Lsn
from xlogtools.parse import reader as reader_mod

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in range(13, 19) if (FIXTURES / f"pg{m}" / "meta.json").exists()]
FORMATS = ("jsonl", "csv", "parquet")


def run(paths: list[str], opts: DumpOptions, out: Path, batches: bool) -> tuple[Any, Any]:
    saved = D._BATCHES
    D._BATCHES = batches
    try:
        res = dump(paths, opts if opts.output else DumpOptions(**{**opts.__dict__, "output": str(out)}))
    finally:
        D._BATCHES = saved
    eow = res.end_of_wal.as_dict() if res.end_of_wal else None
    body = pq.read_table(out) if opts.format == "parquet" else out.read_bytes()
    return (res.records, eow, res.exit_status), body


def assert_same(paths: list[str], tmp: Path, **kw: Any) -> int:
    """Both paths give the same output and result; the number of rows."""
    n = 0
    for fmt in FORMATS:
        opts = DumpOptions(format=fmt, progress=False, **kw)
        new_res, new = run(paths, opts, tmp / f"new.{fmt}", True)
        old_res, old = run(paths, opts, tmp / f"old.{fmt}", False)
        assert new_res == old_res, (fmt, kw)
        if fmt == "parquet":
            assert new.schema == old.schema
            assert new.equals(old), (fmt, kw, [c for c in new.column_names
                                               if not new[c].equals(old[c])])
            n = new.num_rows
        else:
            assert new == old, (fmt, kw)
    return n


def relation_names(paths: list[str]) -> dict[tuple[int, int, int], str]:
    """Made-up names for some of the relations the WAL touches (one with a comma, one with
    a quote and one with non-ASCII characters, for the escaping)."""
    from xlogtools.parse.api import open_wal

    rels = sorted({b.relation for r in open_wal(paths) for b in r.blocks})
    odd = ["public.a,b", 'public."q"', "public.tablé_😀", "x.y\\z"]
    return {rel: (odd[i] if i < len(odd) else f"s.t{i}") for i, rel in enumerate(rels[::3])}


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_fixture_exports_from_batches_equal_the_record_path(major: int, tmp_path: Path) -> None:
    paths = [str(p) for p in unpack_fixture(major, tmp_path / "wal")]
    assert assert_same(paths, tmp_path) > 10000
    from xlogtools.parse.api import open_wal

    recs = list(open_wal(paths))
    mid = recs[len(recs) // 2]
    # from inside a record (the reader finds the next one) to the end of a later one
    assert assert_same(paths, tmp_path, start=Lsn(int(mid.lsn) + 3),
                       end=recs[len(recs) * 3 // 4].end) > 1000
    assert assert_same(paths, tmp_path, limit=777) == 777
    assert assert_same(paths, tmp_path, relation_names=relation_names(paths)) > 10000


@pytest.mark.parametrize("major", [m for m in (13, 15, 18) if m in MAJORS])
def test_filters_on_batches_equal_the_record_path(major: int, tmp_path: Path) -> None:
    from xlogtools.parse.api import open_wal

    paths = [str(p) for p in unpack_fixture(major, tmp_path / "wal")]
    recs = list(open_wal(paths))
    rng = random.Random(major)
    heap_rel = next(b.relation for r in recs if r.rmid == 10 for b in r.blocks)
    some_xid = rng.choice([r.xid for r in recs if r.xid])
    blk = next(b.blk for r in recs for b in r.blocks if b.relation == heap_rel)
    fork = max({b.fork for r in recs for b in r.blocks})  # vm or fsm where there are
    for flt in (RecordFilter(rmgrs=frozenset({10, 11})), RecordFilter(xid=some_xid),
                RecordFilter(relation=heap_rel), RecordFilter(relation=heap_rel, block=blk),
                RecordFilter(fork=fork), RecordFilter(fullpage=True),
                RecordFilter(rmgrs=frozenset({1}), fullpage=False)):
        assert assert_same(paths, tmp_path, filter=flt) > 0, flt
    assert assert_same(paths, tmp_path, filter=RecordFilter(rmgrs=frozenset({10})), limit=50) == 50


def test_jobs_on_batches_equal_the_record_path(tmp_path: Path) -> None:
    paths = [str(p) for p in unpack_fixture(17, tmp_path / "wal")]
    assert assert_same(paths, tmp_path, jobs=2) > 10000
    assert assert_same(paths, tmp_path, jobs=3, filter=RecordFilter(rmgrs=frozenset({10}))) > 100


def test_without_the_c_extension_the_batches_give_the_same(tmp_path: Path, monkeypatch) -> None:
    """The Python twins (PyBuilder, LSN and time texts, the pyarrow line joins)."""
    from xlogtools.export import columns as C

    for name in ("_c_lsn_texts", "_c_join_rows", "_c_time_texts"):
        monkeypatch.setattr(C, name, None)
    monkeypatch.setattr(reader_mod, "_CBuilder", None)
    import xlogtools.parse.batch as B

    monkeypatch.setattr(B, "_c_main_u64", None)
    paths = [str(p) for p in unpack_fixture(15, tmp_path / "wal")]
    assert assert_same(paths, tmp_path, relation_names=relation_names(paths)) > 10000


def test_c_text_helpers_write_what_python_writes() -> None:
    """join_rows' JSON strings and CSV fields, and time_texts, on odd values."""
    import csv
    import io

    from xlogtools.export import columns as C
    from xlogtools.export import rows

    if C._c_join_rows is None:
        pytest.skip("no C extension")
    rng = random.Random(5)
    alpha = ["a", '"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "€", "😀", ",",
             " ", "\b", "\f", "\u2028"]
    vals = ["".join(rng.choice(alpha) for _ in range(rng.randrange(8))) for _ in range(3000)]
    vals.append(None)  # type: ignore[arg-type]
    a = pa.array(vals, pa.string())
    _o, d = C._c_join_rows(len(a), [C._S(a, 1), (0, b"\x01")])
    assert d.decode().split("\x01")[:-1] == [json.dumps(v) if v is not None else "null"
                                             for v in vals]
    _o, d = C._c_join_rows(len(a), [C._S(a, 2), (0, b"\x01")])
    want = []
    for v in vals:
        if v is not None and "\r" in v:
            continue  # its quoting differs between Python versions: csv.writer writes those
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["x", v])
        want.append(buf.getvalue()[2:-1])
    got = [g for g, v in zip(d.decode().split("\x01")[:-1], vals) if v is None or "\r" not in v]
    assert got == want
    times = [rng.randrange(-10**17, 10**17) for _ in range(3000)] + [
        None, 0, -1, 1, -63113904000000000, 252423993599999999, 252423993600000000,
        -31557014167219200 - 1, -31557014167219200]
    got_t = C.time_text_array(pa.array(times, pa.int64())).to_pylist()
    assert got_t == [rows.time_text(t) for t in times]



def test_c_join_rows_numbers_and_short_pieces() -> None:
    """join_rows' decimal integers (every digit count, each power of ten and its neighbours,
    of each width) and its copies of short literals and raw strings (every length up to 40,
    where fixed-size moves overlap), against Python's str."""
    from xlogtools.export import columns as C

    if C._c_join_rows is None:
        pytest.skip("no C extension")
    rng = random.Random(7)
    for code, width, top in (("Q", 8, 2**64 - 1), ("I", 4, 2**32 - 1), ("H", 2, 2**16 - 1),
                             ("B", 1, 255)):
        vals = {0, 1, top, top - 1}
        for k in range(1, 21):
            for v in (10**k - 1, 10**k, 10**k + 1, 2**k, 2**(3 * k) - 1):
                if v <= top:
                    vals.add(v)
        vals |= {rng.randrange(top + 1) for _ in range(500)}
        ordered = sorted(vals)
        arr = pa.array(ordered, getattr(pa, f"uint{8 * width}")())
        _o, d = C._c_join_rows(len(ordered), [C._U(arr), (0, b"|")])
        assert d.decode().split("|")[:-1] == [str(v) for v in ordered], code
    texts = ["".join(rng.choice("abcdefgh") for _ in range(n)) for n in range(41)]
    a = pa.array(texts, pa.string())
    for lit in texts:
        offs, d = C._c_join_rows(len(texts), [(0, lit.encode()), C._S(a, 0), (0, b"|")])
        assert d.decode() == "".join(lit + t + "|" for t in texts)
        assert list(memoryview(offs).cast("i")) == [
            sum(len(lit) + len(t) + 1 for t in texts[:i]) for i in range(len(texts) + 1)]


def test_c_join_rows_lsns_tables_and_times() -> None:
    """join_rows' LSN, string-table and time parts against Python: %X/%08X of edge LSNs; table
    entries by code (a code out of the table is an error, not a read past it); times as
    rows.time_text writes them, quoted or not, nulls, repeats, and Columns' choice of the
    text path for values outside the years 1000-9999."""
    from xlogtools.export import columns as C
    from xlogtools.export import rows

    if C._c_join_rows is None:
        pytest.skip("no C extension")
    rng = random.Random(3)
    lsns = [0, 1, 0xFFFFFFFF, 1 << 32, 2**64 - 1, 0x0000000A_00000028] + \
        [rng.randrange(2**64) for _ in range(300)]
    a = pa.array(lsns, pa.uint64())
    _o, d = C._c_join_rows(len(a), [C._LSN(a), (0, b"|")])
    assert d.decode().split("|")[:-1] == ["%X/%08X" % (v >> 32, v & 0xFFFFFFFF) for v in lsns]
    table = ['"Heap"', '"a,b"', "", "\u00e9"]
    codes = [rng.randrange(len(table)) for _ in range(500)]
    _o, d = C._c_join_rows(len(codes), [C._D(pa.array(codes, pa.int32()), table), (0, b"|")])
    assert d.decode().split("|")[:-1] == [table[c] for c in codes]
    with pytest.raises(ValueError):
        C._c_join_rows(1, [C._D(pa.array([len(table)], pa.int32()), table)])
    lo, hi = C._Y1000_US, C._MAX_US
    times: list[int | None] = [lo, hi, 0, -1, 1, None, None, 5, 5, 5, None, 5] + \
        [rng.randrange(lo, hi) for _ in range(300)]
    t = pa.array(times, pa.int64())
    for quoted, null in ((True, b"null"), (False, b"")):
        _o, d = C._c_join_rows(len(t), [C._T(t, null, quoted), (0, b"|")])
        want = [null.decode() if v is None else
                (f'"{rows.time_text(v)}"' if quoted else rows.time_text(v)) for v in times]
        assert d.decode().split("|")[:-1] == want
    with pytest.raises(ValueError):  # outside the years the C text is for
        C._c_join_rows(1, [C._T(pa.array([hi + 1], pa.int64()), b"", False)])
    assert C._in_text_years(t) and C._in_text_years(pa.nulls(3, pa.int64()))
    for odd in (lo - 1, hi + 1):
        assert not C._in_text_years(pa.array([0, odd, None], pa.int64()))
        part = C._time_part(pa.array([odd, None], pa.int64()), 1)
        _o, d = C._c_join_rows(2, [part, (0, b"|")])
        assert d.decode() == f"{json.dumps(rows.time_text(odd))}|null|"


def test_c_json_strings_past_eight_bytes_and_repeated_times() -> None:
    """join_rows' 8-bytes-at-a-time JSON copy (an odd character at every position of long
    strings) and time_texts' reuse of a repeated value's text, against Python."""
    from xlogtools.export import columns as C
    from xlogtools.export import rows

    if C._c_join_rows is None:
        pytest.skip("no C extension")
    rng = random.Random(11)
    odd = ['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\x80", "é", "€", "😀", "\u2028", " ", "~"]
    vals = []
    for n in range(40):
        for c in odd:
            for at in range(0, n + 1, 3):
                vals.append("x" * at + c + "y" * (n - at))
    vals += ["".join(rng.choice("ab~ " + "".join(odd)) for _ in range(rng.randrange(40)))
             for _ in range(2000)] + [None, ""]  # type: ignore[list-item]
    a = pa.array(vals, pa.string())
    _o, d = C._c_join_rows(len(a), [C._S(a, 1), (0, b"\x01")])
    assert d.decode().split("\x01")[:-1] == [json.dumps(v) if v is not None else "null"
                                             for v in vals]
    base = [rng.randrange(-10**17, 10**17) for _ in range(50)]
    times = [t for t in base for _ in range(rng.randrange(1, 4))]
    times += [None, times[0], 0, 0, None, 0, -63113904000000000, -63113904000000000, 1, 1]
    got = C.time_text_array(pa.array(times, pa.int64())).to_pylist()
    assert got == [rows.time_text(t) for t in times]

@pytest.mark.pg
def test_pgbench_exports_from_batches_equal_the_record_path(pg_major: int, cluster_factory,
                                                            tmp_path: Path) -> None:
    """A real server's WAL: pgbench (full-page images, wal_compression where there is one),
    a prepared transaction and subtransactions, a logical message with odd bytes."""
    c = cluster_factory(wal_compression="pglz" if pg_major >= 15 else "on",
                        conf={"max_prepared_transactions": 5})
    c.pgbench(["-i", "-s", "1", "-q"])
    c.execute("CHECKPOINT;")
    c.pgbench(["-c", "2", "-t", "300"])
    c.execute("BEGIN; CREATE TABLE t (a int); SAVEPOINT s; INSERT INTO t VALUES (1); "
              "RELEASE s; PREPARE TRANSACTION 'p1'; COMMIT PREPARED 'p1';")
    c.execute("SELECT pg_logical_emit_message(false, 'pré\"fix', E'x\\\\001\"y');")
    c.stop()
    paths = [str(c.pg_wal)]
    assert assert_same(paths, tmp_path) > 5000
    assert assert_same(paths, tmp_path, jobs=2) > 5000


def test_the_program_goes_without_pandas(tmp_path: Path) -> None:
    """pandas (installed with the test extra) is not imported by a dump to Parquet and JSON
    lines: pyarrow's probe for it is refused (cli._NoPandas), and the files are the same as a
    process with pandas makes."""
    import subprocess
    import sys

    paths = [str(p) for p in unpack_fixture(16, tmp_path / "wal")]
    probe = ("import atexit, sys; atexit.register(lambda: print('PANDAS', 'pandas' in "
             "sys.modules)); {pre}from xlogtools import cli; sys.argv = ['xlogtools', 'dump', "
             "*sys.argv[2:]]; cli.{fn}()")
    for fmt in ("parquet", "jsonl"):
        outs = []
        for pre, fn, loaded in (("", "run", "False"), ("import pandas; ", "main", "True")):
            out = tmp_path / f"{fn}.{fmt}"
            proc = subprocess.run([sys.executable, "-c", probe.format(pre=pre, fn=fn), "-",
                                   *paths, "--format", fmt, "-o", str(out), "--no-progress"],
                                  capture_output=True, text=True, check=False)
            assert proc.returncode in (0, 1) and f"PANDAS {loaded}" in proc.stdout, proc.stderr
            outs.append(out.read_bytes())
        assert outs[0] == outs[1] and len(outs[0]) > 10000, fmt
