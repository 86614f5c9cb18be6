"""RecordFilter (filters.py) on a WalBatch: each record's verdict as a boolean array, by
pyarrow over the batch's columns (the rmgr, xid, relation, block, fork and full-page-image
tests of pg_waldump's -r, -x, -R, -B, -F and -w), for the batch paths of dump and the engines'
partitions."""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..parse import layout as L
from ..parse.batch import WalBatch
from .filters import RecordFilter

_FORK_MASK = L.BKPBLOCK_FORK_MASK


def filter_mask(batch: WalBatch, flt: RecordFilter) -> Any:
    """RecordFilter's verdict on each record of the batch, as a boolean array."""
    mask = pa.repeat(pa.scalar(True), batch.n)
    if flt.rmgrs is not None:
        mask = pc.and_(mask, pc.is_in(pc.cast(batch.arrow("rmid"), pa.int64()),
                                      value_set=pa.array(sorted(flt.rmgrs), pa.int64())))
    if flt.xid is not None:
        mask = pc.and_(mask, pc.equal(pc.cast(batch.arrow("xid"), pa.int64()), flt.xid))
    parents = None
    if flt.relation is not None or flt.block is not None or flt.fork is not None or flt.fullpage:
        parents = pc.list_parent_indices(_block_lists(batch))
    if flt.relation is not None or flt.block is not None or flt.fork is not None:
        bm = pa.repeat(pa.scalar(True), batch.nblocks)
        if flt.fork is not None:
            fork = pc.bit_wise_and(batch.arrow("fork_flags"), pa.scalar(_FORK_MASK, pa.uint8()))
            bm = pc.and_(bm, pc.equal(pc.cast(fork, pa.int64()), flt.fork))
        if flt.relation is not None:
            for name, v in zip(("spc", "db", "rel"), flt.relation):
                bm = pc.and_(bm, pc.equal(pc.cast(batch.arrow(name), pa.int64()), v))
        if flt.block is not None:
            bm = pc.and_(bm, pc.equal(pc.cast(batch.arrow("blk"), pa.int64()), flt.block))
        mask = pc.and_(mask, _any_block(batch, parents, bm))
    if flt.fullpage:
        has = pc.not_equal(batch.arrow("has_image"), pa.scalar(0, pa.uint8()))
        mask = pc.and_(mask, _any_block(batch, parents, has))
    return mask


def _block_lists(batch: WalBatch) -> Any:
    return pa.ListArray.from_arrays(batch.arrow("block_offsets"), batch.arrow("block_id"))


def _any_block(batch: WalBatch, parents: Any, block_mask: Any) -> Any:
    """Per record: does one of its blocks pass block_mask?"""
    hit = pc.unique(pc.filter(parents, block_mask))
    return pc.is_in(pa.array(range(batch.n), pa.int64()), value_set=pc.cast(hit, pa.int64()))
