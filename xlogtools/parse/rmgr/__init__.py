"""Resource managers: record type names and descriptions as pg_waldump prints them.

One explicit table, in on-disk id order (access/rmgrlist.h), maps each built-in resource
manager to its module; every module has ``identify(info, major)`` and ``describe(rec)``.
Ids 128-255 are custom resource managers (15+): pg_waldump does not know them, names them
``custom###`` and describes them as ``rmid: N``; so do we.

    >>> from xlogtools.parse.rmgr import identify, describe
    >>> identify(rec), describe(rec)          # doctest: +SKIP
    ('INSERT+INIT', 'off: 1, flags: 0x00')
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ..record import Record
from . import (brin, clog, committs, dbase, generic, gin, gist, hash, heap, heap2, logicalmsg,
               mxact, nbtree, relmap, replorigin, seq, smgr, spgist, standby, tblspc, xact, xlog)


@dataclass(frozen=True)
class Rmgr:
    rmid: int
    name: str
    module: ModuleType


# Row order = resource manager id (RM_XLOG_ID = 0 ... RM_LOGICALMSG_ID = 21).
RMGRS: tuple[Rmgr, ...] = tuple(Rmgr(i, name, mod) for i, (name, mod) in enumerate((
    ("XLOG", xlog),
    ("Transaction", xact),
    ("Storage", smgr),
    ("CLOG", clog),
    ("Database", dbase),
    ("Tablespace", tblspc),
    ("MultiXact", mxact),
    ("RelMap", relmap),
    ("Standby", standby),
    ("Heap2", heap2),
    ("Heap", heap),
    ("Btree", nbtree),
    ("Hash", hash),
    ("Gin", gin),
    ("Gist", gist),
    ("Sequence", seq),
    ("SPGist", spgist),
    ("BRIN", brin),
    ("CommitTs", committs),
    ("ReplicationOrigin", replorigin),
    ("Generic", generic),
    ("LogicalMessage", logicalmsg),
)))

RM_MAX_BUILTIN_ID = len(RMGRS) - 1
RM_MIN_CUSTOM_ID = 128
RM_MAX_CUSTOM_ID = 255


def rmgr_name(rmid: int) -> str:
    """The name pg_waldump prints: built-in names, 'custom###' for 128-255."""
    if 0 <= rmid <= RM_MAX_BUILTIN_ID:
        return RMGRS[rmid].name
    if RM_MIN_CUSTOM_ID <= rmid <= RM_MAX_CUSTOM_ID:
        return f"custom{rmid:03d}"
    return f"unknown{rmid}"


def identify_info(rmid: int, info: int, major: int) -> str | None:
    """rm_identify(info) of resource manager `rmid` in `major`; None means 'UNKNOWN (%x)'."""
    if 0 <= rmid <= RM_MAX_BUILTIN_ID:
        return RMGRS[rmid].module.identify(info, major)  # type: ignore[no-any-return]
    return None


def identify(rec: Record) -> str | None:
    """Record type name as pg_waldump prints it ('INSERT+INIT'); None for an unknown type."""
    return identify_info(rec.rmid, rec.info, rec.pg_major)


def describe(rec: Record) -> str:
    """pg_waldump's desc text for the record (rm_desc of rec.pg_major)."""
    if 0 <= rec.rmid <= RM_MAX_BUILTIN_ID:
        return RMGRS[rec.rmid].module.describe(rec)  # type: ignore[no-any-return]
    return f"rmid: {rec.rmid}"


def record_type(rec: Record) -> str:
    """identify() with pg_waldump's fallback: 'UNKNOWN (%x)' of the rmgr's info bits."""
    name = identify(rec)
    return name if name is not None else f"UNKNOWN ({rec.info & 0xF0:x})"


__all__ = ["RMGRS", "Rmgr", "describe", "identify", "identify_info", "record_type",
           "rmgr_name"]
