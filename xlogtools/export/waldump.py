"""pg_waldump's text output, line for line, for PostgreSQL 13-18 WAL.

`format_record` is XLogDumpDisplayRecord (pg_waldump.c) with the block references of
XLogRecGetBlockRefInfo (xlogdesc.c, 15+) or of pg_waldump's own loop (13-14); `format_stats`
is XLogDumpDisplayStats (`--stats` / `--stats=record`).  Both follow the major version of the
WAL they are given (rec.pg_major), as the pg_waldump of that major would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ..parse.layout import FORK_NAMES as _FORKS
from ..parse.record import BlockRef, Record
from ..parse.rmgr import describer, identify, identify_info, rmgr_name
from ..parse.rmgr.ids import RM_MAX_BUILTIN_ID, RM_MIN_CUSTOM_ID, RM_XACT_ID

__all__ = ["format_record", "format_records", "format_stats", "record_line", "block_refs"]



def _fork_name(b: BlockRef) -> str:
    f = b.fork
    return _FORKS[f] if f < len(_FORKS) else str(f)


# Per (major, rmid, info): the text before the lengths ("rmgr: Heap        len (rec/tot): "),
# the text between the prev LSN and the description (", desc: HOT_UPDATE ") and the describe
# function.  All three depend on nothing else, so they are made once per kind of record.
_Kind = tuple[str, str, Callable[[Record], str]]
_KINDS: dict[int, _Kind] = {}


def _kind(rec: Record) -> _Kind:
    k = _KINDS.get((rec.pg_major << 16) | (rec.rmid << 8) | rec.info)
    if k is None:
        name = identify(rec)
        kind = name if name is not None else f"UNKNOWN ({rec.info & 0xF0:x})"
        k = (f"rmgr: {rmgr_name(rec.rmid):<11} len (rec/tot): ", f", desc: {kind} ",
             describer(rec.rmid, rec.info, rec.pg_major))
        if 0 <= rec.rmid <= 255 and 0 <= rec.info <= 255:
            _KINDS[(rec.pg_major << 16) | (rec.rmid << 8) | rec.info] = k
    return k


# pg_waldump's "rmgr: %-11s len (rec/tot): %6u/%6u, tx: %10u, lsn: %X/%08X, prev %X/%08X, "
# "desc: %s %s".  %-formatting of one tuple is about twice as fast as an f-string with format
# specs.  _REC takes the LSNs as texts (format_records reuses them), _BLK is the block reference
# of the common one-block record (main fork, no image).
_LINE = "%s%6d/%6d, tx: %10d, lsn: %X/%08X, prev %X/%08X%s%s"
_REC = "%s%6d/%6d, tx: %10d, lsn: %s, prev %s%s%s"
_REC_BLK = _REC + ", blkref #%d: rel %d/%d/%d blk %d"
_LO = 0xFFFFFFFF


def record_line(rec: Record) -> str:
    """The fixed part and the description: 'rmgr: ... desc: TYPE text'."""
    head, mid, desc = _kind(rec)
    lsn, prev = rec.lsn, rec.prev
    return _LINE % (head, rec.tot_len - rec.fpi_len, rec.tot_len, rec.xid, lsn >> 32, lsn & _LO,
                    prev >> 32, prev & _LO, mid, desc(rec))


def _image_detail(rec: Record, b: BlockRef) -> str:
    verify = "" if b.apply_image else " for WAL verification"
    text = f" (FPW{verify}); hole: offset: {b.hole_offset}, length: {b.hole_length}"
    if b.compression is not None:
        saved = rec.block_size - b.hole_length - b.image_len
        text += f", compression saved: {saved}"
        if rec.pg_major >= 15:
            text += f", method: {b.compression}"
    return text


def block_refs(rec: Record, detailed: bool) -> list[str]:
    """The block references: one suffix of the record line, or one line per block (-b)."""
    if detailed:
        return [f"\tblkref #{b.block_id}: rel {b.spc}/{b.db}/{b.rel} fork {_fork_name(b)} "
                f"blk {b.blk}" + (_image_detail(rec, b) if b.has_image else "")
                for b in rec.blocks]
    parts = []
    for b in rec.blocks:
        fork = f" fork {_fork_name(b)}" if b.fork != 0 else ""
        s = f", blkref #{b.block_id}: rel {b.spc}/{b.db}/{b.rel}{fork} blk {b.blk}"
        if b.has_image:
            s += " FPW" if b.apply_image else " FPW for WAL verification"
        parts.append(s)
    return ["".join(parts)]


def format_record(rec: Record, bkp_details: bool = False) -> str:
    """pg_waldump's output for one record, without the final newline (`-b`: several lines)."""
    line = record_line(rec)
    if not bkp_details:
        return line + block_refs(rec, False)[0]
    return "\n".join([line, *block_refs(rec, True)])


def format_records(records: Sequence[Record], bkp_details: bool = False) -> str:
    """format_record() of each record, each line ended by a newline: the `--format waldump`
    chunk of dump.  The same text, made with one %-format per record where it can be
    (records without blocks, or with one block of the main fork and no image); a record's
    prev LSN is the previous record's LSN, whose text is reused."""
    if bkp_details:
        return "".join([format_record(r, True) + "\n" for r in records])
    kinds = _KINDS
    out: list[str] = []
    append = out.append
    last = -1
    last_text = ""
    for rec in records:
        k = kinds.get((rec.pg_major << 16) | (rec.rmid << 8) | rec.info) or _kind(rec)
        prev = rec.prev
        prev_text = last_text if prev == last else "%X/%08X" % (prev >> 32, prev & _LO)
        last = rec.lsn
        last_text = "%X/%08X" % (last >> 32, last & _LO) if last >> 32 else "0/%08X" % last
        tot_len = rec.tot_len
        blocks = rec.blocks
        if not blocks:
            append(_REC % (k[0], tot_len - rec.fpi_len, tot_len, rec.xid, last_text, prev_text,
                           k[1], k[2](rec)))
        elif len(blocks) == 1 and not blocks[0].fork_flags & 0x0F and not blocks[0].has_image:
            b = blocks[0]
            append(_REC_BLK % (k[0], tot_len - rec.fpi_len, tot_len, rec.xid, last_text,
                               prev_text, k[1], k[2](rec), b.block_id, b.spc, b.db, b.rel, b.blk))
        else:
            append(_REC % (k[0], tot_len - rec.fpi_len, tot_len, rec.xid, last_text, prev_text,
                           k[1], k[2](rec)) + block_refs(rec, False)[0])
    append("")
    return "\n".join(out) if len(out) > 1 else ""


# --- --stats --------------------------------------------------------------------------------

@dataclass
class _Counts:
    count: int = 0
    rec_len: int = 0
    fpi_len: int = 0


def _pct(part: int, total: int) -> float:
    return 100 * float(part) / float(total) if total else 0.0


def _row(name: str, c: _Counts, tot: _Counts) -> str:
    tot_len = c.rec_len + c.fpi_len
    total_len = tot.rec_len + tot.fpi_len
    return (f"{name:<27} "
            f"{c.count:20} ({_pct(c.count, tot.count):6.2f}) "
            f"{c.rec_len:20} ({_pct(c.rec_len, tot.rec_len):6.2f}) "
            f"{c.fpi_len:20} ({_pct(c.fpi_len, tot.fpi_len):6.2f}) "
            f"{tot_len:20} ({_pct(tot_len, total_len):6.2f})")


def _lsn(v: int) -> str:
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def format_stats(records: Iterable[Record], major: int, per_record: bool = False) -> str:
    """pg_waldump --stats (per resource manager) or --stats=record (per record type) of the
    given records, as the pg_waldump of `major` prints it (lines joined, final newline)."""
    by_rmgr: dict[int, _Counts] = {}
    by_type: dict[tuple[int, int], _Counts] = {}
    count = 0
    start = end = None
    for rec in records:
        if start is None:
            start = int(rec.lsn)
        end = int(rec.end)
        count += 1
        fpi = rec.fpi_len
        rl = rec.tot_len - fpi
        c = by_rmgr.get(rec.rmid)
        if c is None:
            c = by_rmgr[rec.rmid] = _Counts()
        c.count += 1
        c.rec_len += rl
        c.fpi_len += fpi
        recid = rec.info >> 4
        if rec.rmid == RM_XACT_ID:
            recid &= 0x07  # the xact rmgr's top info bit is a flag, not part of the type
        t = by_type.get((rec.rmid, recid))
        if t is None:
            t = by_type[(rec.rmid, recid)] = _Counts()
        t.count += 1
        t.rec_len += rl
        t.fpi_len += fpi
    if start is None and major >= 16:
        return ""  # nothing was read: pg_waldump prints no table at all
    total = _Counts(count,
                    sum(c.rec_len for c in by_rmgr.values()),
                    sum(c.fpi_len for c in by_rmgr.values()))
    lines = []
    if major >= 15:
        lines.append(f"WAL statistics between {_lsn(start or 0)} and {_lsn(end or 0)}:")
    lines.append(f"{'Type':<27} {'N':>20} {'(%)':>8} {'Record size':>20} {'(%)':>8} "
                 f"{'FPI size':>20} {'(%)':>8} {'Combined size':>20} {'(%)':>8}")
    lines.append(f"{'----':<27} {'-':>20} {'---':>8} {'-----------':>20} {'---':>8} "
                 f"{'--------':>20} {'---':>8} {'-------------':>20} {'---':>8}")
    rmids = list(range(RM_MAX_BUILTIN_ID + 1))
    if major >= 15:
        rmids += sorted(r for r in by_rmgr if r >= RM_MIN_CUSTOM_ID)
    for rmid in rmids:
        name = rmgr_name(rmid)
        if not per_record:
            lines.append(_row(name, by_rmgr.get(rmid, _Counts()), total))
            continue
        for rj in range(16):
            t = by_type.get((rmid, rj))
            if t is None or t.count == 0:
                continue
            kind = identify_info(rmid, rj << 4, major)
            if kind is None:
                kind = f"UNKNOWN ({rj << 4:x})"
            lines.append(_row(f"{name}/{kind}", t, total))
    total_len = total.rec_len + total.fpi_len
    lines.append(f"{'':<27} {'--------':>20} {'':>8} {'--------':>20} {'':>8} "
                 f"{'--------':>20} {'':>8} {'--------':>20}")
    rec_pct = f"[{_pct(total.rec_len, total_len):.2f}%]"
    fpi_pct = f"[{_pct(total.fpi_len, total_len):.2f}%]"
    lines.append(f"{'Total':<27} {count:20} {'':<9}{total.rec_len:20} {rec_pct:<9}"
                 f"{total.fpi_len:20} {fpi_pct:<9}{total_len:20} {'[100%]':<6}")
    return "\n".join(lines) + "\n"
