"""Scale-out: WAL archives cut into independent segment ranges for Dask, Spark and a
partitioned Parquet dataset (issue 14; user doc: docs/scale.md).

`partition.py` plans the ranges and decodes one of them into Arrow batches of the documented
record schema; `dataset.py` writes a hive-partitioned Parquet dataset; `xlogtools.dask` and
`xlogtools.spark` are the engine adapters.
"""
from .partition import (DamagedRange, ReadOptions, WalPartition, WalRangeDamage, plan_partitions,
                        read_partition)

__all__ = ["DamagedRange", "ReadOptions", "WalPartition", "WalRangeDamage", "plan_partitions",
           "read_partition"]
