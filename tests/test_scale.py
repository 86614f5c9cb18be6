"""Scale-out without an engine: segment ranges decoded one by one equal a single-process
`dump`, across every boundary and a timeline switch; the partitioned Parquet dataset equals the
single-file export; damage in a middle range fails the read or, when asked, is skipped and
listed. (The Dask and Spark adapters: test_scale_dask.py, test_scale_spark.py.)"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from oracle import unpack_fixture
from scale_common import (FIXTURES, MAJORS, as_jsonl, assert_same_rows, dump_rows, make_live_wal,
                          xlogtools)

from xlogtools.export import rows
from xlogtools.export.filters import record_filter
from xlogtools.lsn import Lsn
from xlogtools.scale.dataset import partitioning, write_dataset
from xlogtools.scale.partition import (ReadOptions, WalRangeDamage, plan_partitions,
                                       read_damage_log, read_partition)


def library_rows(wal: Path | str, per: int = 1, **kw: object) -> list[dict[str, object]]:
    parts = plan_partitions([wal], segments_per_partition=per)
    batches = [b for p in parts for b in read_partition(p, ReadOptions(**kw))]  # type: ignore[arg-type]
    return as_jsonl(pa.Table.from_batches(batches, schema=rows.arrow_schema()).to_pylist())


@pytest.fixture(scope="module")
def live_wal(module_cluster_factory, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return make_live_wal(module_cluster_factory, tmp_path_factory.mktemp("live") / "pg_wal")


def test_a_partition_is_paths_and_lsns_only() -> None:
    parts = plan_partitions([FIXTURES / "pg17" / "wal"], segments_per_partition=1)
    assert [p.index for p in parts] == list(range(len(parts))) and len(parts) >= 3
    for a, b in zip(parts, parts[1:]):
        assert a.until == b.start and a.timeline == b.timeline
    assert parts[-1].until is None
    for p in parts:
        blob = pickle.dumps(p)
        assert len(blob) < 600 and pickle.loads(blob) == p


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_ranges_one_segment_each_equal_dump(major: int) -> None:
    wal = FIXTURES / f"pg{major}" / "wal"
    assert_same_rows(library_rows(wal), dump_rows(wal))


def test_the_range_read_twice_when_its_batches_are_too_big_to_keep(
        live_wal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task keeps its range's batches from the commit-time pass (one read); past
    KEEP_BATCHES_BYTES it reads the range again: the same rows either way, and the same as
    dump's (timeline switch, records across segments, a filter)."""
    from xlogtools.scale import partition

    kept = library_rows(live_wal)
    heap = library_rows(live_wal, filter=record_filter(rmgr="Heap"))
    monkeypatch.setattr(partition, "KEEP_BATCHES_BYTES", 0)
    assert library_rows(live_wal) == kept
    assert library_rows(live_wal, filter=record_filter(rmgr="Heap")) == heap
    assert_same_rows(kept, dump_rows(live_wal))
    assert heap and all(r["rmgr"] == "Heap" for r in heap)


def test_timeline_switch_and_records_across_segments(live_wal: Path) -> None:
    """Promoted standby's pg_wal: both timelines, 7 kB records across boundaries, 2.5 MB
    messages spanning segments that no record starts in."""
    theirs = dump_rows(live_wal)
    assert {r["timeline"] for r in theirs} == {1, 2}
    ends = [(Lsn(r["lsn"]), Lsn(r["end_lsn"])) for r in theirs]
    assert any(a >> 20 != (b - 1) >> 20 for a, b in ends)  # a record across a boundary
    assert any(b - a > 2 << 20 for a, b in ends)  # a record over whole segments
    for per in (1, 3):
        assert_same_rows(library_rows(live_wal, per), theirs)
    parts = plan_partitions([live_wal], segments_per_partition=1)
    empty = [p for p in parts
             if not sum(b.num_rows for b in read_partition(p, ReadOptions(columns=("lsn",))))]
    assert empty  # the middle of a long record: that range owns no record


def test_commit_time_look_ahead_bound_is_the_only_limit(live_wal: Path) -> None:
    """With no look-ahead, records whose commit lies in the next range lose commit_time; the
    default look-ahead finds every one (the equality tests above)."""
    theirs = dump_rows(live_wal)
    none = library_rows(live_wal, commit_lookahead=0)
    lost = [a for a, b in zip(none, theirs) if a["commit_time"] != b["commit_time"]]
    assert lost and all(a["commit_time"] is None for a in lost)
    assert [{**a, "commit_time": None} for a in none] == [{**b, "commit_time": None} for b in theirs]


def duckdb_rows(query: str) -> list[dict[str, object]]:
    duckdb = pytest.importorskip("duckdb")
    rel = duckdb.sql(query)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


@pytest.mark.parametrize("which", ["pg17", "live"])
def test_partitioned_dataset_equals_single_file_parquet(which: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    wal = FIXTURES / "pg17" / "wal" if which == "pg17" else request.getfixturevalue("live_wal")
    single = tmp_path / "one.parquet"
    assert xlogtools("dump", str(wal), "--format", "parquet", "-o", str(single)).returncode == 0
    out = tmp_path / "ds"
    proc = xlogtools("dump", str(wal), "--format", "parquet", "-o", str(out),
                     "--partition-by", "timeline,segment", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert (out / "_SUCCESS").is_file() and json.loads((out / "_SUCCESS").read_text())["skipped"] == []
    files = sorted(out.rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]
    for f in files:
        if f.suffix == ".parquet":
            t, s = f.parent.parent.name, f.parent.name
            assert t.startswith("timeline=") and s.startswith("segment=")
    cols = ", ".join(f"\"{c}\"" for c in rows.FIELDS if c != "timeline")
    ours = duckdb_rows(f"SELECT {cols}, timeline::UINTEGER AS timeline FROM read_parquet("
                       f"'{out}/**/*.parquet', hive_partitioning=true) ORDER BY lsn_int")
    theirs = duckdb_rows(f"SELECT {cols}, timeline FROM '{single}' ORDER BY lsn_int")
    assert len(ours) == len(theirs) and ours == theirs
    import pandas as pd

    frame = pd.read_parquet(out, partitioning=partitioning())
    assert len(frame) == len(theirs) and set(frame["segment"]) == {r["segment"] for r in theirs}


def corrupt_middle(tmp_path: Path) -> tuple[Path, list[dict[str, object]], dict[str, object]]:
    """pg17 fixture with one byte flipped in a record in the middle of its second segment."""
    segs = unpack_fixture(17, tmp_path / "wal")
    good = dump_rows(tmp_path / "wal")
    seg = segs[1]
    victim = next(r for r in good if r["segment"] == seg.name and int(r["lsn_int"]) % (1 << 20) > 400000)
    data = bytearray(seg.read_bytes())
    data[int(victim["lsn_int"]) % (1 << 20) + 30] ^= 0x40
    seg.write_bytes(bytes(data))
    return tmp_path / "wal", good, victim


def test_damage_in_a_middle_range_fails_or_is_skipped_and_listed(tmp_path: Path) -> None:
    wal, good, victim = corrupt_middle(tmp_path)
    before = good[:good.index(victim)]
    with pytest.raises(WalRangeDamage) as exc:
        library_rows(wal)
    d = exc.value.damage
    assert d.reason == "crc_mismatch" and d.lsn == Lsn(str(before[-1]["end_lsn"]))
    assert f"incorrect resource manager data checksum in record at {Lsn(str(victim['lsn']))}" in str(exc.value)
    assert pickle.loads(pickle.dumps(exc.value)).damage == d  # travels back from workers

    log = tmp_path / "damage"
    ours = library_rows(wal, on_damage="skip", damage_log=str(log))
    [skipped] = read_damage_log(log)
    assert skipped == d
    assert [r["lsn"] for r in ours[:len(before)]] == [r["lsn"] for r in before]
    after = [r for r in ours if Lsn(str(r["lsn"])) >= d.until]  # the ranges after the damage
    assert after and ours == ours[:len(before)] + after
    assert [r["lsn"] for r in after] == [r["lsn"] for r in good if Lsn(str(r["lsn"])) >= d.until]

    out = tmp_path / "ds"
    proc = xlogtools("dump", str(wal), "--format", "parquet", "-o", str(out), "--partition-by",
                     "segment", "--jobs", "2")
    assert proc.returncode == 1 and "crc_mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "_SUCCESS").exists()
    res = write_dataset([wal], tmp_path / "ds2", partition_by=("segment",),
                        opts=ReadOptions(on_damage="skip"), segments_per_partition=1)
    assert res.skipped == [d] and res.records == len(ours)
    assert json.loads((tmp_path / "ds2" / "_SUCCESS").read_text())["skipped"][0]["lsn"] == str(d.lsn)


def test_a_missing_middle_segment_is_damage(tmp_path: Path) -> None:
    segs = unpack_fixture(16, tmp_path / "wal")
    shutil.move(str(segs[1]), str(tmp_path / segs[1].name))
    with pytest.raises(WalRangeDamage) as exc:
        library_rows(tmp_path / "wal")
    assert exc.value.damage.reason == "missing_segment"


def test_dump_jobs_reads_the_ancestor_timeline_too(live_wal: Path) -> None:
    """dump --jobs cut its ranges from the newest timeline's segments only and left out the
    records of timeline 1 before the switch (found while generalising its split here)."""
    one = xlogtools("dump", str(live_wal), "--format", "jsonl")
    two = xlogtools("dump", str(live_wal), "--format", "jsonl", "--jobs", "2")
    assert one.returncode == two.returncode == 0
    assert '"timeline":1' in two.stdout and two.stdout == one.stdout


def test_partition_by_usage_errors_name_the_option(tmp_path: Path) -> None:
    w = str(FIXTURES / "pg15" / "wal")
    for args in (["--format", "jsonl", "-o", str(tmp_path / "a")],
                 ["--format", "parquet", "-o", str(tmp_path / "b"), "--partition-by", "xid"],
                 ["--format", "parquet", "-o", str(tmp_path / "c"), "-n", "5"]):
        proc = xlogtools("dump", w, "--partition-by", "segment", *args)
        assert proc.returncode == 2 and "--partition-by" in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
