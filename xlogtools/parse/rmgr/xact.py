"""Transaction (RM_XACT_ID): commit, abort, prepare, assignment and invalidation records of
access/xact.h (ParseCommitRecord/ParseAbortRecord/ParsePrepareRecord of xactdesc.c),
PostgreSQL 13-18.

Version notes: INVALIDATION is 14+; dropped-stats items are 15+ (their object id is 64-bit
in 18); 14+ print the origin of aborts, 15+ that of prepares and the apply_feedback flag.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from ...errors import RecordDataError
from ...lsn import Lsn
from ..record import Record
from ..layout import maxalign
from ..pgtime import timestamptz_to_str
from ._util import (Buf, SIZEOF_INVAL_MSG, invalidations_desc, lsn, main, relpathperm,
                    unpack_main)

COMMIT = 0x00
PREPARE = 0x10
ABORT = 0x20
COMMIT_PREPARED = 0x30
ABORT_PREPARED = 0x40
ASSIGNMENT = 0x50
INVALIDATIONS = 0x60  # 14+
OPMASK = 0x70
HAS_INFO = 0x80
ENDS = (COMMIT, ABORT, COMMIT_PREPARED, ABORT_PREPARED)  # the records that end a transaction

XINFO_HAS_DBINFO = 1 << 0
XINFO_HAS_SUBXACTS = 1 << 1
XINFO_HAS_RELFILENODES = 1 << 2
XINFO_HAS_INVALS = 1 << 3
XINFO_HAS_TWOPHASE = 1 << 4
XINFO_HAS_ORIGIN = 1 << 5
XINFO_HAS_AE_LOCKS = 1 << 6
XINFO_HAS_GID = 1 << 7
XINFO_HAS_DROPPED_STATS = 1 << 8  # 15+
COMPLETION_APPLY_FEEDBACK = 1 << 29
COMPLETION_UPDATE_RELCACHE_FILE = 1 << 30
COMPLETION_FORCE_SYNC_COMMIT = 1 << 31

_NAMES = {COMMIT: "COMMIT", PREPARE: "PREPARE", ABORT: "ABORT",
          COMMIT_PREPARED: "COMMIT_PREPARED", ABORT_PREPARED: "ABORT_PREPARED",
          ASSIGNMENT: "ASSIGNMENT"}


def identify(info: int, major: int) -> str | None:
    op = info & OPMASK
    if op == INVALIDATIONS:
        return "INVALIDATION" if major >= 14 else None
    return _NAMES.get(op)


@dataclass
class Parsed:
    """xl_xact_parsed_commit / _abort / _prepare, with offsets into the main data."""

    xact_time: int = 0
    xinfo: int = 0
    db_id: int = 0
    ts_id: int = 0
    subxacts: list[int] = field(default_factory=list)
    rels: list[tuple[int, int, int]] = field(default_factory=list)
    abort_rels: list[tuple[int, int, int]] = field(default_factory=list)
    stats: list[tuple[int, int, int]] = field(default_factory=list)
    abort_stats: list[tuple[int, int, int]] = field(default_factory=list)
    nmsgs: int = 0
    msgs_off: int = 0
    twophase_xid: int = 0
    twophase_gid: str = ""
    origin_lsn: int = 0
    origin_timestamp: int = 0
    initfileinval: bool = False
    past_end: str = ""  # the marker of counts that run past the record's end
    # How many bytes of main data reading the fields a transaction's outcome needs takes
    # (times, xinfo, counts, subxact array, two-phase xid): decode(strict=True) refuses a
    # record with fewer.
    need: int = 0


def _stats_items(d: Buf, off: int, n: int, major: int) -> tuple[list[tuple[int, int, int]], int]:
    """xl_xact_stats_item: kind, dboid, objoid (18: objid as two uint32, low word first)."""
    items = []
    size = 16 if major >= 18 else 12
    for i in range(d.fit(off, n, size)):
        p = off + i * size
        objid = d.u32(p + 8) | (d.u32(p + 12) << 32) if major >= 18 else d.u32(p + 8)
        items.append((d.i32(p), d.u32(p + 4), objid))
    return items, n * size


def _rels(d: Buf, off: int, n: int) -> list[tuple[int, int, int]]:
    return [(d.u32(off + 12 * i), d.u32(off + 12 * i + 4), d.u32(off + 12 * i + 8))
            for i in range(d.fit(off, n, 12))]


def parse_commit_or_abort(rec: Record, is_commit: bool) -> Parsed:
    d = main(rec)
    major = rec.pg_major
    p = Parsed(xact_time=d.i64(0), need=8)
    pos = 8
    if rec.info & HAS_INFO:
        p.xinfo = d.u32(pos)
        pos += 4
        p.need = pos
    x = p.xinfo
    if x & XINFO_HAS_DBINFO:
        p.db_id, p.ts_id = d.u32(pos), d.u32(pos + 4)
        p.need = pos + 4
        pos += 8
    if x & XINFO_HAS_SUBXACTS:
        n = d.i32(pos)
        p.subxacts = d.u32_array(pos + 4, max(n, 0))
        p.past_end += d.past_end(pos + 4, n, 4)
        pos += 4 + 4 * max(n, 0)
        p.need = pos
    if x & XINFO_HAS_RELFILENODES:
        p.need = pos + 4
        n = max(d.i32(pos), 0)
        p.rels = _rels(d, pos + 4, n)
        p.past_end += d.past_end(pos + 4, n, 12)
        pos += 4 + 12 * n
    if major >= 15 and x & XINFO_HAS_DROPPED_STATS:
        p.need = pos + 4
        n = max(d.i32(pos), 0)
        p.stats, size = _stats_items(d, pos + 4, n, major)
        p.past_end += d.past_end(pos + 4, n, 16 if major >= 18 else 12)
        pos += 4 + size
    if is_commit and x & XINFO_HAS_INVALS:
        p.need = pos + 4
        p.nmsgs = d.i32(pos)
        p.msgs_off = pos + 4
        pos += 4 + SIZEOF_INVAL_MSG * max(p.nmsgs, 0)
    if x & XINFO_HAS_TWOPHASE:
        p.twophase_xid = d.u32(pos)
        pos += 4
        p.need = pos
        if x & XINFO_HAS_GID:
            p.twophase_gid = d.cstring(pos)
            pos += len(p.twophase_gid.encode("utf-8", "surrogateescape")) + 1
    if x & XINFO_HAS_ORIGIN:  # stored unaligned
        p.origin_lsn = d.u64(pos)
        p.origin_timestamp = d.i64(pos + 8)
    return p


def parse_prepare(rec: Record) -> Parsed:
    """xl_xact_prepare (14: no stats counts), then MAXALIGNed arrays."""
    d = main(rec)
    major = rec.pg_major
    p = Parsed(xact_time=d.i64(16), twophase_xid=d.u32(8), db_id=d.u32(12))
    nsub, ncommit, nabort = d.i32(28), d.i32(32), d.i32(36)
    if major >= 15:
        ncstats, nastats = d.i32(40), d.i32(44)
        p.nmsgs, p.initfileinval, gidlen = d.i32(48), d.boolean(52), d.u16(54)
        p.origin_lsn, p.origin_timestamp = d.u64(56), d.i64(64)
        pos, p.need = 72, 56
    else:
        ncstats = nastats = 0
        p.nmsgs, p.initfileinval, gidlen = d.i32(40), d.boolean(44), d.u16(46)
        p.origin_lsn, p.origin_timestamp = d.u64(48), d.i64(56)
        pos, p.need = 64, 48
    p.twophase_gid = d.raw(pos, gidlen).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    pos += maxalign(gidlen)
    p.subxacts = d.u32_array(pos, max(nsub, 0))
    p.past_end += d.past_end(pos, nsub, 4)
    if nsub > 0:
        p.need = max(p.need, pos + 4 * nsub)
    pos += maxalign(4 * max(nsub, 0))
    p.rels = _rels(d, pos, max(ncommit, 0))
    p.past_end += d.past_end(pos, ncommit, 12)
    pos += maxalign(12 * max(ncommit, 0))
    p.abort_rels = _rels(d, pos, max(nabort, 0))
    p.past_end += d.past_end(pos, nabort, 12)
    pos += maxalign(12 * max(nabort, 0))
    p.stats, size = _stats_items(d, pos, max(ncstats, 0), major)
    pos += maxalign(size)
    p.abort_stats, size = _stats_items(d, pos, max(nastats, 0), major)
    pos += maxalign(size)
    p.msgs_off = pos
    return p


# --- the typed decoder --------------------------------------------------------------------
_KINDS = {COMMIT: "commit", ABORT: "abort", PREPARE: "prepare",
          COMMIT_PREPARED: "commit_prepared", ABORT_PREPARED: "abort_prepared",
          ASSIGNMENT: "assignment"}


@dataclass(frozen=True, slots=True)
class XactRecord:
    """What a commit, abort, prepare or assignment record says about transaction outcomes."""

    kind: str  # commit | abort | prepare | commit_prepared | abort_prepared | assignment
    # The transaction it is about: a commit/abort's record xid, or the two-phase xid when it
    # carries one (COMMIT/ABORT PREPARED); a prepare's prepared xid; an assignment's top xid.
    xid: int
    subxids: tuple[int, ...]  # committed/aborted/prepared subtransactions; assigned ones
    time: int  # TimestampTz (microseconds since 2000-01-01 UTC); 0 for an assignment
    lsn: Lsn
    twophase_xid: int = 0  # xl_xact_twophase (COMMIT/ABORT PREPARED) or the prepare's xid
    gid: str = ""  # as pg_waldump prints it (undecodable bytes kept, surrogateescape)
    db_id: int = 0

    @property
    def is_commit(self) -> bool:
        return self.kind in ("commit", "commit_prepared")

    @property
    def is_abort(self) -> bool:
        return self.kind in ("abort", "abort_prepared")


def decode(rec: Record, *, strict: bool = True) -> XactRecord | None:
    """The record as an XactRecord; None for the other transaction records (INVALIDATION).

    strict (the default): a record whose main data is shorter than its counts and fields say
    raises RecordDataError (naming its LSN). strict=False reads such data as pg_waldump's
    describe does, zeros past the end (never raises)."""
    op = rec.info & OPMASK
    kind = _KINDS.get(op)
    if kind is None:
        return None
    if op == ASSIGNMENT:
        d = main(rec)
        n = max(d.i32(4), 0)
        _check(rec, strict, 8 + 4 * n)
        return XactRecord(kind, d.u32(0), tuple(d.u32_array(8, n)), 0, rec.lsn)
    if op == PREPARE:
        p = parse_prepare(rec)
        _check(rec, strict, p.need)
        return XactRecord(kind, p.twophase_xid, tuple(p.subxacts), p.xact_time, rec.lsn,
                          p.twophase_xid, p.twophase_gid, p.db_id)
    p = parse_commit_or_abort(rec, op in (COMMIT, COMMIT_PREPARED))
    _check(rec, strict, p.need)
    xid = p.twophase_xid if p.xinfo & XINFO_HAS_TWOPHASE else rec.xid
    return XactRecord(kind, xid, tuple(p.subxacts), p.xact_time, rec.lsn, p.twophase_xid,
                      p.twophase_gid, p.db_id)


def _check(rec: Record, strict: bool, need: int) -> None:
    if strict and len(rec.main_data) < need:
        raise RecordDataError(f"Transaction record at {rec.lsn} (info {rec.info:#04x}): its "
                              f"data does not add up (it needs {need} bytes of main data, "
                              f"has {len(rec.main_data)})", lsn=rec.lsn)


def _relations(label: str, rels: list[tuple[int, int, int]], major: int) -> str:
    if not rels:
        return ""
    return f"; {label}:" + "".join(f" {relpathperm(s, db, r, 0, major)}" for s, db, r in rels)


def _subxacts(subxacts: list[int]) -> str:
    if not subxacts:
        return ""
    return "; subxacts:" + "".join(f" {x}" for x in subxacts)


def _stats(label: str, items: list[tuple[int, int, int]]) -> str:
    if not items:
        return ""
    return f"; {label}dropped stats:" + "".join(f" {k}/{db}/{obj}" for k, db, obj in items)


def _origin(origin_id: int, p: Parsed) -> str:
    return (f"; origin: node {origin_id}, lsn {lsn(p.origin_lsn)}, "
            f"at {timestamptz_to_str(p.origin_timestamp)}")


def _desc_commit(rec: Record) -> str:
    major = rec.pg_major
    p = parse_commit_or_abort(rec, True)
    out = [f"{p.twophase_xid}: " if p.twophase_xid else "", timestamptz_to_str(p.xact_time),
           _relations("rels", p.rels, major), _subxacts(p.subxacts)]
    if major >= 15:
        out.append(_stats("", p.stats))
    out.append(invalidations_desc(main(rec), p.msgs_off, p.nmsgs, p.db_id, p.ts_id,
                                  bool(p.xinfo & COMPLETION_UPDATE_RELCACHE_FILE), major))
    if major >= 15 and p.xinfo & COMPLETION_APPLY_FEEDBACK:
        out.append("; apply_feedback")
    if p.xinfo & COMPLETION_FORCE_SYNC_COMMIT:
        out.append("; sync")
    if p.xinfo & XINFO_HAS_ORIGIN:
        out.append(_origin(rec.origin, p))
    out.append(p.past_end)
    return "".join(out)


def _desc_abort(rec: Record) -> str:
    major = rec.pg_major
    p = parse_commit_or_abort(rec, False)
    out = [f"{p.twophase_xid}: " if p.twophase_xid else "", timestamptz_to_str(p.xact_time),
           _relations("rels", p.rels, major), _subxacts(p.subxacts)]
    if major >= 14 and p.xinfo & XINFO_HAS_ORIGIN:
        out.append(_origin(rec.origin, p))
    if major >= 15:
        out.append(_stats("", p.stats))
    out.append(p.past_end)
    return "".join(out)


def _desc_prepare(rec: Record) -> str:
    major = rec.pg_major
    p = parse_prepare(rec)
    out = [f"gid {p.twophase_gid}: ", timestamptz_to_str(p.xact_time),
           _relations("rels(commit)", p.rels, major),
           _relations("rels(abort)", p.abort_rels, major)]
    if major >= 15:
        out.append(_stats("commit ", p.stats))
        out.append(_stats("abort ", p.abort_stats))
    out.append(_subxacts(p.subxacts))
    out.append(invalidations_desc(main(rec), p.msgs_off, p.nmsgs, p.db_id, 0,
                                  p.initfileinval, major))
    if major >= 15 and rec.origin != 0:
        out.append(_origin(rec.origin, p))
    out.append(p.past_end)
    return "".join(out)


def describe(rec: Record) -> str:
    op = rec.info & OPMASK
    if op in (COMMIT, COMMIT_PREPARED):
        return _desc_commit(rec)
    if op in (ABORT, ABORT_PREPARED):
        return _desc_abort(rec)
    if op == PREPARE:
        return _desc_prepare(rec)
    if op == ASSIGNMENT:
        d = main(rec)
        n = max(d.i32(4), 0)
        return (f"xtop {d.u32(0)}: subxacts:" + "".join(f" {x}" for x in d.u32_array(8, n))
                + d.past_end(8, n, 4))
    if op == INVALIDATIONS and rec.pg_major >= 14:
        d = main(rec)
        return invalidations_desc(d, 4, d.i32(0), 0, 0, False, rec.pg_major)
    return ""


# --- fast paths ---------------------------------------------------------------------------
# Most commits carry no xinfo (no XLOG_XACT_HAS_INFO: no subtransactions, relations, stats,
# invalidations, two-phase or origin): _desc_commit then prints only the commit time.
_XACT_TIME = struct.Struct("<q")


def _commit_fast(rec: Record) -> str:
    if rec.info & HAS_INFO:
        return _desc_commit(rec)
    if rec.main_data_len >= 8:
        return timestamptz_to_str(_XACT_TIME.unpack_from(rec.data, rec.main_data_off)[0])
    return timestamptz_to_str(unpack_main(rec, _XACT_TIME)[0])


def describer(info: int, major: int) -> Callable[[Record], str] | None:
    """A fast describe() for records with this info in this major, if there is one."""
    if info & OPMASK in (COMMIT, COMMIT_PREPARED):
        return _commit_fast
    return None
