"""xlogtools.dask.read_wal on a Dask LocalCluster (2 worker processes): the rows equal
`dump --format jsonl` row for row on every major's fixtures and on a pg_wal with a timeline
switch, the counts per record type equal `--stats=record`, filters give dump's subsets, a
column selection reaches the decoder, and damage fails the computation or is skipped."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] is not installed "
                         "(pip install xlogtools[dask])")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")

import pyarrow as pa  # noqa: E402
from scale_common import (FIXTURES, MAJORS, as_jsonl, assert_same_rows, dump_rows,  # noqa: E402
                          filter_cases, make_live_wal, stats_by_type, type_counts)

import xlogtools.dask as xd  # noqa: E402
from xlogtools.scale.partition import WalRangeDamage, read_damage_log  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def live_wal(module_cluster_factory, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return make_live_wal(module_cluster_factory, tmp_path_factory.mktemp("live") / "pg_wal")


def computed(df: Any) -> list[dict[str, Any]]:
    return as_jsonl(pa.Table.from_pandas(df.compute(), preserve_index=False).to_pylist())


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_every_major_equals_dump(client: Any, major: int) -> None:
    wal = FIXTURES / f"pg{major}" / "wal"
    df = xd.read_wal([wal], segments_per_partition=1)
    assert df.npartitions >= 3
    ours = computed(df)
    assert_same_rows(ours, dump_rows(wal))
    assert type_counts(ours) == stats_by_type(wal)
    counts = df.groupby(["rmgr", "record_type"]).size().compute()
    assert {f"{r}/{t}": int(n) for (r, t), n in counts.items()} == stats_by_type(wal)


def test_timeline_switch_filters_and_projection(client: Any, live_wal: Path) -> None:
    theirs = dump_rows(live_wal)
    assert {r["timeline"] for r in theirs} == {1, 2}
    df = xd.read_wal(str(live_wal), segments_per_partition=2)
    ours = computed(df)
    assert_same_rows(ours, theirs)
    assert type_counts(ours) == stats_by_type(live_wal)
    for kw, args in filter_cases(theirs):
        assert_same_rows(computed(xd.read_wal(str(live_wal), segments_per_partition=2, **kw)),
                         dump_rows(live_wal, *args))
    picked = df[["lsn", "xid", "commit_time"]]
    assert list(picked.compute().columns) == ["lsn", "xid", "commit_time"]
    assert computed(picked) == [{k: r[k] for k in ("lsn", "xid", "commit_time")} for r in theirs]
    narrow = xd.read_wal(str(live_wal), columns=["lsn_int", "rmgr"], rmgr="Heap")
    assert list(narrow.compute().columns) == ["lsn_int", "rmgr"]
    assert len(narrow) == sum(r["rmgr"] == "Heap" for r in theirs)


def test_damage_fails_the_computation_unless_skipped(client: Any, tmp_path: Path) -> None:
    from test_scale import corrupt_middle

    wal, good, victim = corrupt_middle(tmp_path)
    df = xd.read_wal([wal], segments_per_partition=1)
    with pytest.raises(WalRangeDamage) as exc:
        df.compute()
    assert exc.value.damage.reason == "crc_mismatch" and "crc_mismatch" in str(exc.value)
    log = tmp_path / "damage"
    ours = computed(xd.read_wal([wal], segments_per_partition=1, on_damage="skip",
                                damage_log=str(log)))
    [skipped] = read_damage_log(log)
    assert skipped == exc.value.damage
    lsns = [r["lsn"] for r in ours]
    before = [r["lsn"] for r in good[:good.index(victim)]]
    assert lsns[:len(before)] == before and len(lsns) > len(before)
    assert victim["lsn"] not in lsns


def test_the_dataset_written_by_dask_tasks_reads_back(client: Any, live_wal: Path,
                                                      tmp_path: Path) -> None:
    from xlogtools.scale.dataset import partitioning

    res = xd.to_dataset(str(live_wal), str(tmp_path / "ds"), segments_per_partition=2)
    assert (tmp_path / "ds" / "_SUCCESS").is_file() and res.skipped == []
    back = dd.read_parquet(str(tmp_path / "ds"), dataset={"partitioning": partitioning()})
    theirs = dump_rows(live_wal)
    assert res.records == len(theirs)
    assert_same_rows(computed(back), theirs)
