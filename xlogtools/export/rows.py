"""The record schema of `dump --format jsonl|csv|parquet` (DESIGN.md 4.1, docs/dump.md).

One function turns a Record into a plain dict; `ARROW_SCHEMA` is the same schema for Parquet.
Descriptions are computed only when asked for (they are most of the cost).
"""
from __future__ import annotations

import json
from typing import Any

from ..parse.record import Record
from ..parse.rmgr import describe, identify

FIELDS = ("lsn", "lsn_int", "end_lsn", "prev_lsn", "timeline", "segment", "xid",
          "toplevel_xid", "rmgr", "record_type", "info", "rec_len", "tot_len", "fpi_len",
          "desc", "blocks", "origin")
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


def record_row(rec: Record, with_desc: bool = True) -> dict[str, Any]:
    return {
        "lsn": rec.lsn.waldump(), "lsn_int": int(rec.lsn), "end_lsn": rec.end.waldump(),
        "prev_lsn": rec.prev.waldump(), "timeline": rec.timeline, "segment": rec.segment,
        "xid": rec.xid, "toplevel_xid": rec.toplevel_xid, "rmgr": rec.rmgr_name,
        "record_type": record_type(rec), "info": rec.info, "rec_len": rec.rec_len,
        "tot_len": rec.tot_len, "fpi_len": rec.fpi_len,
        "desc": describe(rec) if with_desc else None, "blocks": block_dicts(rec),
        "origin": rec.origin,
    }


def csv_row(rec: Record) -> list[Any]:
    """The same fields flattened for CSV: `blocks` becomes a JSON text."""
    row = record_row(rec)
    row["blocks"] = json.dumps(row["blocks"], separators=(",", ":"))
    return [row[f] for f in FIELDS]


def arrow_schema():  # -> pyarrow.Schema (pyarrow is imported only by the Parquet writer)
    import pyarrow as pa

    block = pa.struct([
        ("block_id", pa.uint8()), ("spc", pa.uint32()), ("db", pa.uint32()),
        ("rel", pa.uint32()), ("fork", pa.string()), ("blk", pa.uint32()),
        ("has_image", pa.bool_()), ("image_len", pa.uint32()), ("apply_image", pa.bool_()),
        ("compression", pa.string()), ("has_data", pa.bool_()), ("data_len", pa.uint32()),
    ])
    return pa.schema([
        ("lsn", pa.string()), ("lsn_int", pa.uint64()), ("end_lsn", pa.string()),
        ("prev_lsn", pa.string()), ("timeline", pa.uint32()), ("segment", pa.string()),
        ("xid", pa.uint32()), ("toplevel_xid", pa.uint32()), ("rmgr", pa.string()),
        ("record_type", pa.string()), ("info", pa.uint8()), ("rec_len", pa.uint32()),
        ("tot_len", pa.uint32()), ("fpi_len", pa.uint32()), ("desc", pa.string()),
        ("blocks", pa.list_(block)), ("origin", pa.uint16()),
    ])
