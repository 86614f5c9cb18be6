"""Plain one-line-per-record text output of `xlogtools dump`."""
from __future__ import annotations

import sys
from typing import IO, Sequence

from ..lsn import Lsn
from ..parse.api import open_wal
from ..parse.record import Record


def format_record(rec: Record, bkp_details: bool = False) -> str:
    line = (f"lsn {rec.lsn.waldump()} prev {rec.prev.waldump()} tx {rec.xid} "
            f"rmgr {rec.rmgr_name} info 0x{rec.info:02X} len {rec.rec_len}/{rec.tot_len}"
            f" fpi {rec.fpi_len}")
    refs = []
    for b in rec.blocks:
        s = f"#{b.block_id} {b.spc}/{b.db}/{b.rel}"
        if b.fork:
            s += f" {b.fork_name}"
        s += f" blk {b.blk}"
        if b.has_image:
            s += " FPW" if b.apply_image else " FPI"
            if b.compression:
                s += f" {b.compression}"
        refs.append(s)
    if refs and not bkp_details:
        line += " blkref " + ", ".join(refs)
    elif refs:
        line += "".join("\n\tblkref " + r for r in refs)
    return line


def dump_lines(paths: Sequence[str], out: IO[str], *, start: Lsn | None = None,
               end: Lsn | None = None, timeline: int | None = None, limit: int | None = None,
               bkp_details: bool = False, err: IO[str] | None = None) -> int:
    """Write one line per record; report where and why reading stopped. Returns exit status:
    0 when the requested range/limit was read, 1 when damage or the end of WAL stopped it."""
    err = err or sys.stderr
    reader = open_wal(list(paths) or None, start=start, end=end, timeline=timeline)
    n = 0
    write = out.write
    for rec in reader:
        write(format_record(rec, bkp_details) + "\n")
        n += 1
        if limit is not None and n >= limit:
            return 0
    eow = reader.end_of_wal
    if eow is None or not eow.is_damage:
        return 0
    out.flush()
    err.write(f"xlogtools: end of WAL: {eow.waldump_message()} [{eow.reason}]\n")
    return 1
