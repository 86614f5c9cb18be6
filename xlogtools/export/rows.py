"""The record schema of `dump --format jsonl|csv|parquet` (DESIGN.md 4.1, docs/dump.md).

One function turns a Record into a plain dict; `ARROW_SCHEMA` is the same schema for Parquet.
Descriptions are computed only when asked for (they are most of the cost).
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from ..parse.record import Record
from ..parse.rmgr import describe, identify
from ..parse.rmgr import xact as X
from ..parse.pgtime import format_time, pg_timestamp
from ..parse.rmgr.ids import RM_XACT_ID

# xid -> TimestampTz (microseconds since 2000-01-01 UTC) of its top-level commit
CommitTimes = dict[int, int]
# (tablespace, database, relfilenode) -> schema.name, from a catalog (Catalog.file_names)
Names = dict[tuple[int, int, int], str]

FIELDS = ("lsn", "lsn_int", "end_lsn", "prev_lsn", "timeline", "segment", "xid",
          "toplevel_xid", "rmgr", "record_type", "info", "rec_len", "tot_len", "fpi_len",
          "desc", "blocks", "origin", "xact_time", "commit_time")
BLOCK_FIELDS = ("block_id", "spc", "db", "rel", "fork", "blk", "has_image", "image_len",
                "apply_image", "compression", "has_data", "data_len")


def record_type(rec: Record) -> str:
    name = identify(rec)
    return name if name is not None else f"UNKNOWN ({rec.info & 0xF0:x})"


def block_dicts(rec: Record) -> list[dict[str, Any]]:
    return [{"block_id": b.block_id, "spc": b.spc, "db": b.db, "rel": b.rel,
             "fork": b.fork_name, "blk": b.blk, "has_image": b.has_image,
             "image_len": b.image_len, "apply_image": b.apply_image,
             "compression": b.compression, "has_data": b.has_data, "data_len": b.data_len}
            for b in rec.blocks]


def xact_end(rec: Record) -> tuple[int, list[int], int, bool] | None:
    """For a commit or abort record (also of a prepared transaction): (top-level xid, its
    committed or aborted subtransactions, xact_time, is_commit); else None."""
    if rec.rmid != RM_XACT_ID:
        return None
    op = rec.info & X.OPMASK
    if op not in (X.COMMIT, X.ABORT, X.COMMIT_PREPARED, X.ABORT_PREPARED):
        return None
    commit = op in (X.COMMIT, X.COMMIT_PREPARED)
    try:
        p = X.parse_commit_or_abort(rec, commit)
    except Exception:  # a short or odd record: describe() says what it can, no time here
        return None
    top = p.twophase_xid if op in (X.COMMIT_PREPARED, X.ABORT_PREPARED) and p.twophase_xid \
        else rec.xid
    return top, list(p.subxacts), p.xact_time, commit


def commit_times(records: Iterable[Record]) -> CommitTimes:
    """xid -> commit time of its top-level transaction (the top-level xid and its committed
    subtransactions), from the commit records among `records`."""
    out: CommitTimes = {}
    for rec in records:
        if rec.rmid == RM_XACT_ID:
            end = xact_end(rec)
            if end is not None and end[3]:
                top, subs, when, _ = end
                out[top] = when
                for s in subs:
                    out[s] = when
    return out


def time_text(usec: int | None) -> str | None:
    """As psql prints a timestamptz with TimeZone UTC: 2025-01-31 12:00:00.123456+00."""
    return format_time(pg_timestamp(usec))


def record_times(rec: Record, times: CommitTimes | None) -> tuple[int | None, int | None]:
    """(xact_time, commit_time) of a record in microseconds since 2000-01-01 UTC: the time in
    a commit/abort record; the commit time of the record's top-level transaction (by its xid
    or toplevel_xid) where `times` knows it."""
    xact_time = None
    if rec.rmid == RM_XACT_ID:
        end = xact_end(rec)
        if end is not None:
            xact_time = end[2]
    commit_time = None
    if times:
        x = rec.xid or rec.toplevel_xid
        commit_time = times.get(x)
        if commit_time is None and rec.toplevel_xid:
            commit_time = times.get(rec.toplevel_xid)
    return xact_time, commit_time


def fields(names: Names | None) -> tuple[str, ...]:
    """The columns: FIELDS, and `relation` last when a catalog gives names."""
    return FIELDS if names is None else FIELDS + ("relation",)


def relation_name(rec: Record, names: Names) -> str | None:
    """schema.name of the first block's relation (a TOAST table or index by its table)."""
    if not rec.blocks:
        return None
    b = rec.blocks[0]
    return names.get((b.spc, b.db, b.rel))


def record_row(rec: Record, with_desc: bool = True, times: CommitTimes | None = None,
               names: Names | None = None) -> dict[str, Any]:
    xact_time, commit_time = record_times(rec, times)
    row = {
        "lsn": rec.lsn.waldump(), "lsn_int": int(rec.lsn), "end_lsn": rec.end.waldump(),
        "prev_lsn": rec.prev.waldump(), "timeline": rec.timeline, "segment": rec.segment,
        "xid": rec.xid, "toplevel_xid": rec.toplevel_xid, "rmgr": rec.rmgr_name,
        "record_type": record_type(rec), "info": rec.info, "rec_len": rec.rec_len,
        "tot_len": rec.tot_len, "fpi_len": rec.fpi_len,
        "desc": describe(rec) if with_desc else None, "blocks": block_dicts(rec),
        "origin": rec.origin, "xact_time": time_text(xact_time),
        "commit_time": time_text(commit_time),
    }
    if names is not None:
        row["relation"] = relation_name(rec, names)
    return row


def csv_row(rec: Record, times: CommitTimes | None = None,
            names: Names | None = None) -> list[Any]:
    """The same fields flattened for CSV: `blocks` becomes a JSON text."""
    row = record_row(rec, times=times, names=names)
    row["blocks"] = json.dumps(row["blocks"], separators=(",", ":"))
    return [row[f] for f in fields(names)]


def arrow_schema(with_relation: bool = False) -> Any:  # a pyarrow.Schema (pyarrow: Parquet only)
    import pyarrow as pa

    block = pa.struct([
        ("block_id", pa.uint8()), ("spc", pa.uint32()), ("db", pa.uint32()),
        ("rel", pa.uint32()), ("fork", pa.string()), ("blk", pa.uint32()),
        ("has_image", pa.bool_()), ("image_len", pa.uint32()), ("apply_image", pa.bool_()),
        ("compression", pa.string()), ("has_data", pa.bool_()), ("data_len", pa.uint32()),
    ])
    cols = [
        ("lsn", pa.string()), ("lsn_int", pa.uint64()), ("end_lsn", pa.string()),
        ("prev_lsn", pa.string()), ("timeline", pa.uint32()), ("segment", pa.string()),
        ("xid", pa.uint32()), ("toplevel_xid", pa.uint32()), ("rmgr", pa.string()),
        ("record_type", pa.string()), ("info", pa.uint8()), ("rec_len", pa.uint32()),
        ("tot_len", pa.uint32()), ("fpi_len", pa.uint32()), ("desc", pa.string()),
        ("blocks", pa.list_(block)), ("origin", pa.uint16()),
        ("xact_time", pa.timestamp("us", tz="UTC")), ("commit_time", pa.timestamp("us", tz="UTC")),
    ]
    if with_relation:
        cols.append(("relation", pa.string()))
    return pa.schema(cols)
