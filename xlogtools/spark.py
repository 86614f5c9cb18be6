"""WAL as a Spark 4 Python Data Source named `xlogtools` (pyspark.sql.datasource).

    import xlogtools.spark
    xlogtools.spark.register(spark)
    df = spark.read.format("xlogtools").option("rmgr", "Heap,Heap2").load("/archive")

One Spark partition per segment range (xlogtools.scale.partition); each task yields pyarrow
RecordBatches. Needs `pip install xlogtools[spark]` (pyspark >= 4.0, Java 17).

Options (dump's filters): `start`, `end` (LSN text), `timeline`, `rmgr` (comma-separated
names), `xid`, `relation` (T/D/R), `block`, `fork`, `fullpage` (true/false); `paths` (more
inputs, comma-separated, besides load()'s path); `columns` (comma-separated projection: without
commit_time no task reads ahead for commit records); `segmentsPerPartition`,
`commitLookahead` (bytes), `onDamage` (fail | skip), `damageLog` (a directory for the skipped
ranges, skip mode).

Schema: the record schema of docs/dump.md in Spark types. Spark has no unsigned integers, so
uint8 is short, uint16 int, uint32 and uint64 long (an LSN fits a long: PostgreSQL's WAL
positions stay far below 2^63); LSNs are also there as text; `blocks` is array<struct>; the
times are timestamps (UTC instants).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, cast

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import (ArrayType, BooleanType, DataType, IntegerType, LongType, ShortType,
                               StringType, StructField, StructType, TimestampType)

from .export import rows
from .export.filters import record_filter
from .scale.partition import (DEFAULT_COMMIT_LOOKAHEAD, DEFAULT_SEGMENTS_PER_PARTITION,
                              ReadOptions, WalPartition, plan_partitions, read_partition)

# Arrow type of the record schema -> (Spark type, the Arrow type Spark takes for it)
_INTS: dict[Any, tuple[DataType, Any]] = {
    pa.uint8(): (ShortType(), pa.int16()), pa.uint16(): (IntegerType(), pa.int32()),
    pa.uint32(): (LongType(), pa.int64()), pa.uint64(): (LongType(), pa.int64()),
}


def _convert(t: Any) -> tuple[DataType, Any]:
    if t in _INTS:
        return _INTS[t]
    if t == pa.string():
        return StringType(), t
    if t == pa.bool_():
        return BooleanType(), t
    if pa.types.is_timestamp(t):
        return TimestampType(), t
    if pa.types.is_list(t):
        s, a = _convert(t.value_type)
        return ArrayType(s, True), pa.list_(a)
    if pa.types.is_struct(t):
        fields = [(f.name, *_convert(f.type)) for f in t]
        return (StructType([StructField(n, s, True) for n, s, _a in fields]),
                pa.struct([(n, a) for n, _s, a in fields]))
    raise TypeError(f"no Spark type for {t}")


def spark_schema(columns: list[str] | None = None) -> StructType:
    """The record schema in Spark types (projected to `columns`)."""
    schema = rows.arrow_schema()
    return StructType([StructField(c, _convert(schema.field(c).type)[0], True)
                       for c in columns or schema.names])


def _arrow_target(columns: list[str]) -> pa.Schema:
    schema = rows.arrow_schema()
    return pa.schema([(c, _convert(schema.field(c).type)[1]) for c in columns])


class _Partition(InputPartition):
    def __init__(self, part: WalPartition) -> None:
        super().__init__(part.index)
        self.part = part


def _bool(v: str | None) -> bool:
    return v is not None and v.strip().lower() in ("1", "true", "yes", "on")


def _options(options: dict[str, str]) -> tuple[list[str], dict[str, Any], ReadOptions, int]:
    o = {k.lower(): v for k, v in options.items()}
    paths = [p for p in (o.get("path"),) if p]
    paths += [p for p in (o.get("paths") or "").split(",") if p]
    intv: Callable[[str], int | None] = \
        (lambda k: int(o[k]) if o.get(k) not in (None, "") else None)
    flt = record_filter(rmgr=o.get("rmgr") or None, xid=intv("xid"),
                        relation=o.get("relation") or None, block=intv("block"),
                        fork=o.get("fork") or None, fullpage=_bool(o.get("fullpage")))
    cols = tuple(c.strip() for c in o["columns"].split(",")) if o.get("columns") else None
    ropts = ReadOptions(filter=flt, columns=cols,
                        commit_lookahead=intv("commitlookahead") or DEFAULT_COMMIT_LOOKAHEAD,
                        on_damage=o.get("ondamage") or "fail", damage_log=o.get("damagelog"))
    plan = {"start": o.get("start") or None, "end": o.get("end") or None,
            "timeline": intv("timeline")}
    per = intv("segmentsperpartition") or DEFAULT_SEGMENTS_PER_PARTITION
    return paths, plan, ropts, per


class XlogtoolsDataSource(DataSource):
    """spark.read.format("xlogtools"): WAL records of the paths given."""

    @classmethod
    def name(cls) -> str:
        return "xlogtools"

    def schema(self) -> StructType:
        _p, _plan, ropts, _per = _options(dict(self.options))
        return spark_schema(list(ropts.columns) if ropts.columns else None)

    def reader(self, schema: StructType) -> DataSourceReader:
        return _WalReader(dict(self.options), schema)


class _WalReader(DataSourceReader):
    def __init__(self, options: dict[str, str], schema: StructType) -> None:
        self.paths, self.plan, ropts, self.per = _options(options)
        names = [f.name for f in schema.fields]
        if ropts.columns is None and names != list(rows.FIELDS):
            ropts = ReadOptions(ropts.filter, tuple(names), ropts.commit_lookahead,
                                ropts.on_damage, ropts.damage_log)
        self.opts = ropts
        self.columns = list(ropts.columns or rows.FIELDS)

    def partitions(self) -> list[InputPartition]:
        if not self.paths:
            from .errors import UsageError

            raise UsageError("xlogtools data source: give the WAL with load(PATH) or "
                             "option('paths', 'A,B')")
        return [_Partition(p) for p in plan_partitions(self.paths, segments_per_partition=self.per,
                                                       **self.plan)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        target = _arrow_target(self.columns)
        # the partitions are those partitions() made (Spark hands them back)
        for batch in read_partition(cast(_Partition, partition).part, self.opts):
            yield batch.cast(target)


def register(spark: Any) -> None:
    """Make spark.read.format("xlogtools") available in this session."""
    spark.dataSource.register(XlogtoolsDataSource)
