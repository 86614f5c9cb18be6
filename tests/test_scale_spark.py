"""The Spark 4 Python Data Source `xlogtools` in one local[2] session: rows equal
`dump --format jsonl` row for row on every major's fixtures and on a pg_wal with a timeline
switch, counts per record type equal `--stats=record`, options give dump's filtered subsets,
the partitioned Parquet dataset reads back, and damage fails the job or is skipped."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install xlogtools[spark])")
if shutil.which("java") is None:
    pytest.skip("no java on PATH: Spark needs a JRE 17 (apt-get install openjdk-17-jre-headless)",
                allow_module_level=True)

from scale_common import (FIXTURES, MAJORS, as_jsonl, assert_same_rows, dump_rows,  # noqa: E402
                          filter_cases, make_live_wal, stats_by_type, type_counts, xlogtools)

import xlogtools.spark as xs  # noqa: E402
from xlogtools.scale.partition import read_damage_log  # noqa: E402


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # every Python worker (the data source's planning ones too) runs this venv's interpreter
    mp = pytest.MonkeyPatch()
    mp.setenv("PYSPARK_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("xlogtools-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.pyspark.python", sys.executable)  # workers: this venv
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    xs.register(session)
    yield session
    session.stop()
    mp.undo()


@pytest.fixture(scope="module")
def live_wal(module_cluster_factory, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return make_live_wal(module_cluster_factory, tmp_path_factory.mktemp("live") / "pg_wal")


def read(spark: Any, wal: Path | str, **options: Any) -> Any:
    r = spark.read.format("xlogtools")
    for k, v in options.items():
        r = r.option(k, ",".join(v) if isinstance(v, list) else str(v))
    return r.load(str(wal))


def collected(df: Any) -> list[dict[str, Any]]:
    return as_jsonl(df.toArrow().to_pylist())


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_every_major_equals_dump(spark: Any, major: int) -> None:
    wal = FIXTURES / f"pg{major}" / "wal"
    df = read(spark, wal, segmentsPerPartition=1)
    assert df.rdd.getNumPartitions() >= 3
    ours = collected(df)
    assert_same_rows(ours, dump_rows(wal))
    counts = df.groupBy("rmgr", "record_type").count().collect()
    assert {f"{r.rmgr}/{r.record_type}": r["count"] for r in counts} == stats_by_type(wal)


def test_timeline_switch_and_filters(spark: Any, live_wal: Path) -> None:
    theirs = dump_rows(live_wal)
    assert {r["timeline"] for r in theirs} == {1, 2}
    ours = collected(read(spark, live_wal, segmentsPerPartition=2))
    assert_same_rows(ours, theirs)
    assert type_counts(ours) == stats_by_type(live_wal)
    for kw, args in filter_cases(theirs):
        kw = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in kw.items()}
        assert_same_rows(collected(read(spark, live_wal, segmentsPerPartition=2, **kw)),
                         dump_rows(live_wal, *args))
    narrow = read(spark, live_wal, columns="lsn,rmgr", rmgr="Heap")
    assert narrow.columns == ["lsn", "rmgr"]
    assert narrow.count() == sum(r["rmgr"] == "Heap" for r in theirs)


def test_the_partitioned_dataset_reads_back(spark: Any, live_wal: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = xlogtools("dump", str(live_wal), "--format", "parquet", "-o", str(out),
                     "--partition-by", "timeline,segment", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    df = spark.read.option("recursiveFileLookup", "true").parquet(str(out))
    theirs = dump_rows(live_wal)
    ours = as_jsonl(df.toArrow().to_pylist())
    assert_same_rows(ours, theirs)


def test_damage_fails_the_job_unless_skipped(spark: Any, tmp_path: Path) -> None:
    from test_scale import corrupt_middle

    wal, good, victim = corrupt_middle(tmp_path)
    with pytest.raises(Exception) as exc:
        read(spark, wal, segmentsPerPartition=1).count()
    text = str(exc.value)
    assert "WalRangeDamage" in text and "crc_mismatch" in text and "end of WAL in the middle" in text
    log = tmp_path / "damage"
    ours = collected(read(spark, wal, segmentsPerPartition=1, onDamage="skip", damageLog=str(log)))
    [skipped] = read_damage_log(log)
    assert skipped.reason == "crc_mismatch"
    lsns = [r["lsn"] for r in ours]
    before = [r["lsn"] for r in good[:good.index(victim)]]
    assert lsns[:len(before)] == before and len(lsns) > len(before)
