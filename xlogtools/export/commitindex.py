"""Commit times over WalBatches, for the batch path of the exports: the commit and abort
records of a batch read from its columns (xl_xact_commit / xl_xact_abort of access/xact.h,
as rows.xact_end reads them), and CommitIndex, the xid -> commit time map of a range as two
sorted arrays."""
from __future__ import annotations

import bisect
from array import array
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..parse.batch import WalBatch
from ..parse.rmgr import xact as X
from ..parse.rmgr.ids import RM_XACT_ID
from . import rows

XACT_OPS = (X.COMMIT, X.ABORT, X.COMMIT_PREPARED, X.ABORT_PREPARED)
COMMIT_OPS = (X.COMMIT, X.COMMIT_PREPARED)


def _indices(mask: Any) -> list[int]:
    out: list[int] = pc.indices_nonzero(mask).to_pylist()
    return out


def xact_records(batch: WalBatch, ops: Sequence[int]) -> list[int]:
    """Indexes of the Transaction records of these ops (commit, abort, ...)."""
    op = pc.bit_wise_and(batch.arrow("info"), pa.scalar(X.OPMASK, pa.uint8()))
    mask = pc.and_(pc.equal(batch.arrow("rmid"), pa.scalar(RM_XACT_ID, pa.uint8())),
                   pc.is_in(op, value_set=pa.array(ops, pa.uint8())))
    return _indices(mask)


def xact_time_and_xinfo(batch: WalBatch, idx: list[int]) -> tuple[Any, Any]:
    """xl_xact_commit/abort's xact_time and xinfo (0 without XLOG_XACT_HAS_INFO) of the
    records idx names, as parse_commit_or_abort reads them (zeros past the end)."""
    when = pc.cast(pa.Array.from_buffers(pa.uint64(), len(idx), [None, pa.py_buffer(
        batch.main_u64(idx, 0))]), pa.int64(), safe=False)
    xinfo = pa.Array.from_buffers(pa.uint64(), len(idx), [None, pa.py_buffer(
        batch.main_u64(idx, 8))])
    info = batch.arrow("info").take(pa.array(idx, pa.int64()))
    has_info = pc.not_equal(pc.bit_wise_and(info, pa.scalar(X.HAS_INFO, pa.uint8())),
                            pa.scalar(0, pa.uint8()))
    xinfo = pc.if_else(has_info, pc.bit_wise_and(xinfo, pa.scalar(0xFFFFFFFF, pa.uint64())),
                       pa.scalar(0, pa.uint64()))
    return when, xinfo


def xact_ends(batch: WalBatch, ops: Sequence[int] = XACT_OPS
              ) -> tuple[list[int], list[int], list[int], list[bool], dict[int, list[int]]]:
    """The commit and abort records of the batch (of `ops`: also of prepared transactions),
    in record order, as rows.xact_end reads them (a record it cannot parse is left out), as
    columns: (record index, top-level xid, xact_time, is_commit, {position: subtransactions}
    for those that have any). One without subtransactions or a two-phase xid (nearly all) is
    read from the columns; the others are made as Records."""
    idx = xact_records(batch, ops)
    if not idx:
        return [], [], [], [], {}
    when, xinfo = xact_time_and_xinfo(batch, idx)
    sel = pa.array(idx, pa.int64())
    info = batch.arrow("info").take(sel)
    op = pc.bit_wise_and(info, pa.scalar(X.OPMASK, pa.uint8()))
    has_info = pc.not_equal(pc.bit_wise_and(info, pa.scalar(X.HAS_INFO, pa.uint8())),
                            pa.scalar(0, pa.uint8()))
    need = pc.if_else(has_info, pa.scalar(12, pa.uint32()), pa.scalar(8, pa.uint32()))
    plain = pc.and_(
        pc.greater_equal(batch.arrow("main_len").take(sel), need),
        pc.equal(pc.bit_wise_and(xinfo, pa.scalar(X.XINFO_HAS_SUBXACTS | X.XINFO_HAS_TWOPHASE,
                                                  pa.uint64())), pa.scalar(0, pa.uint64())))
    top = batch.arrow("xid").take(sel).to_pylist()
    times = when.to_pylist()
    commit = pc.is_in(op, value_set=pa.array(COMMIT_OPS, pa.uint8())).to_pylist()
    subs: dict[int, list[int]] = {}
    if pc.all(plain).as_py():
        return idx, top, times, commit, subs
    keep = []
    for j, p in enumerate(plain.to_pylist()):
        if p:
            keep.append(j)
            continue
        end = rows.xact_end(batch.record(idx[j]))
        if end is None:
            continue
        top[j], times[j], commit[j] = end[0], end[2], end[3]
        if end[1]:
            subs[len(keep)] = end[1]
        keep.append(j)
    if len(keep) < len(idx):
        idx, top, times, commit = ([v[j] for j in keep] for v in (idx, top, times, commit))
    return idx, top, times, commit, subs


class CommitIndex:
    """rows.CommitTimes (xid -> commit time of its top-level transaction) as two sorted
    arrays, for the batch path: a few MB where the dict takes a hundred, cheap to hand to
    --jobs workers, and looked up per batch by pyarrow (index_in over the keys in the range
    of the batch's xids). As in commit_times(), a later commit of the same xid wins."""

    def __init__(self) -> None:
        self._xids = array("I")
        self._times = array("q")
        self.keys: Any = None
        self.values: Any = None

    def add_batch(self, batch: WalBatch) -> None:
        """The commit records of the batch, in record order (batch_commit_times)."""
        _idx, tops, whens, _commits, subs = xact_ends(batch, COMMIT_OPS)
        if not subs:
            self._xids.extend(tops)
            self._times.extend(whens)
            return
        for j, (top, when) in enumerate(zip(tops, whens)):
            for x in (top, *subs.get(j, ())):
                self._xids.append(x)
                self._times.append(when)

    def finish(self) -> "CommitIndex":
        """Sort by xid, keeping the last time of each (stable sort: record order within)."""
        keys = pa.array(self._xids, pa.uint32())
        vals = pa.array(self._times, pa.int64())
        order = pc.sort_indices(keys)  # stable
        keys, vals = keys.take(order), vals.take(order)
        if len(keys) > 1:
            last = pc.not_equal(keys.slice(0, len(keys) - 1), keys.slice(1))
            keep = pa.concat_arrays([last, pa.array([True])])
            keys, vals = keys.filter(keep), vals.filter(keep)
        self.keys, self.values = keys, vals
        self._sorted = memoryview(keys.buffers()[1]).cast("I")[keys.offset:keys.offset + len(keys)]
        self._xids, self._times = array("I"), array("q")
        return self

    def __len__(self) -> int:
        return len(self.keys) if self.keys is not None else 0

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": self.keys, "values": self.values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._xids, self._times = array("I"), array("q")
        self.keys, self.values = state["keys"], state["values"]
        k = self.keys
        self._sorted = memoryview(k.buffers()[1]).cast("I")[k.offset:k.offset + len(k)] \
            if k is not None and len(k) else memoryview(array("I"))

    def lookup(self, xids: Any) -> Any:
        """The commit time of each xid (uint32 array), null where there is none."""
        n = len(xids)
        if not len(self) or n == 0:
            return pa.nulls(n, pa.int64())
        # the keys in the range of the batch's xids, leaving out 0 (records without one:
        # the range would start at the first key); a key 0 (damaged WAL) is kept in
        lo, hi = pc.min_max(pc.filter(xids, pc.not_equal(xids, 0))).values()
        keys = self._sorted
        if lo.is_valid:
            a = bisect.bisect_left(keys, lo.as_py())
            b = bisect.bisect_right(keys, hi.as_py())
        else:
            a = b = 0
        if keys[0] == 0:
            a, b = 0, max(b, 1)
        if a >= b:
            return pa.nulls(n, pa.int64())
        return self.values.slice(a, b - a).take(
            pc.index_in(xids, value_set=self.keys.slice(a, b - a)))


def commit_index_of(times: rows.CommitTimes) -> CommitIndex:
    """The CommitIndex of an xid -> commit time map (commit_times(), or an engine task's)."""
    idx = CommitIndex()
    idx._xids.extend(times.keys())
    idx._times.extend(times.values())
    return idx.finish()


def commit_index(batches: Any) -> CommitIndex:
    """The CommitIndex of the commit records of these batches (one pass over the range)."""
    idx = CommitIndex()
    for batch in batches:
        idx.add_batch(batch)
    return idx.finish()
