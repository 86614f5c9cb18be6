"""The default text of `xlogtools dump`: one line per record, readable in a terminal.

The fields in pg_waldump's order, without its labels' width: LSN, resource manager and record
type (identify), xid, lengths (rec/tot, and the full-page image bytes when there are any),
pg_waldump's description and the block references as pg_waldump writes them, e.g.

    0/016B3748  Heap/INSERT+INIT  tx 735  len 59/59  off: 1, flags: 0x08  blkref #0: rel 1663/5/16384 blk 0

`-b` puts each block reference on a line of its own, with its image details (as pg_waldump
-b). `--format waldump` is pg_waldump's exact text.
"""
from __future__ import annotations

from ..parse.record import Record
from ..parse.rmgr import describe
from . import rows
from .waldump import block_refs


def format_record(rec: Record, bkp_details: bool = False) -> str:
    lengths = f"len {rec.rec_len}/{rec.tot_len}" + (f" fpi {rec.fpi_len}" if rec.fpi_len else "")
    desc = describe(rec).strip()  # pg_waldump's texts end in a space here and there
    line = (f"{rec.lsn.waldump()}  {rec.rmgr_name}/{rows.record_type(rec)}  tx {rec.xid}  "
            f"{lengths}" + (f"  {desc}" if desc else ""))
    if not rec.blocks:
        return line
    if bkp_details:
        return "\n".join([line, *block_refs(rec, True)])
    return line + "  " + block_refs(rec, False)[0][2:]
