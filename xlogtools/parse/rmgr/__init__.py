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
from typing import Callable

from ..record import Record
from .ids import RM_MAX_BUILTIN_ID, RMGR_NAMES, rmgr_name
from . import (brin, clog, committs, dbase, generic, gin, gist, hash, heap, heap2, logicalmsg,
               mxact, nbtree, relmap, replorigin, seq, smgr, spgist, standby, tblspc, xact, xlog)


@dataclass(frozen=True)
class Rmgr:
    rmid: int
    name: str
    module: ModuleType


# Row order = resource manager id (ids.RMGR_NAMES, with the ids RM_XLOG_ID ... RM_LOGICALMSG_ID).
RMGRS: tuple[Rmgr, ...] = tuple(Rmgr(i, name, mod) for i, (name, mod) in enumerate(zip(
    RMGR_NAMES, (xlog, xact, smgr, clog, dbase, tblspc, mxact, relmap, standby, heap2, heap,
                 nbtree, hash, gin, gist, seq, spgist, brin, committs, replorigin, generic,
                 logicalmsg), strict=True)))


def identify_info(rmid: int, info: int, major: int) -> str | None:
    """rm_identify(info) of resource manager `rmid` in `major`; None means 'UNKNOWN (%x)'."""
    key = (major << 16) | (rmid << 8) | info
    try:
        return _names[key]
    except KeyError:
        pass
    name = None
    if 0 <= rmid <= RM_MAX_BUILTIN_ID:
        name = RMGRS[rmid].module.identify(info, major)
    if 0 <= rmid <= 255 and 0 <= info <= 255:  # a name depends on nothing else: keep it
        _names[key] = name
    return name


# identify() and the describe function by (major << 16 | rmid << 8 | info): a record's type
# name and which code describes it depend only on these, and looking them up once per kind
# of record instead of per record saves the branch chains of the modules.
_names: dict[int, str | None] = {}
_describers: dict[int, Callable[[Record], str]] = {}


def identify(rec: Record) -> str | None:
    """Record type name as pg_waldump prints it ('INSERT+INIT'); None for an unknown type."""
    try:
        return _names[(rec.pg_major << 16) | (rec.rmid << 8) | rec.info]
    except KeyError:
        return identify_info(rec.rmid, rec.info, rec.pg_major)


def _custom(rec: Record) -> str:
    return f"rmid: {rec.rmid}"


def describer(rmid: int, info: int, major: int) -> Callable[[Record], str]:
    """The function that describes records of this resource manager, info and major: a
    module's `describer(info, major)` fast path when it has one, else its describe()."""
    key = (major << 16) | (rmid << 8) | info
    fn = _describers.get(key)
    if fn is None:
        if 0 <= rmid <= RM_MAX_BUILTIN_ID:
            module = RMGRS[rmid].module
            fast = getattr(module, "describer", None)
            fn = (fast(info, major) if fast is not None else None) or module.describe
        else:
            fn = _custom
        if 0 <= rmid <= 255 and 0 <= info <= 255:
            _describers[key] = fn
    return fn


def describe(rec: Record) -> str:
    """pg_waldump's desc text for the record (rm_desc of rec.pg_major)."""
    fn = _describers.get((rec.pg_major << 16) | (rec.rmid << 8) | rec.info)
    if fn is None:
        fn = describer(rec.rmid, rec.info, rec.pg_major)
    return fn(rec)


def record_type(rec: Record) -> str:
    """identify() with pg_waldump's fallback: 'UNKNOWN (%x)' of the rmgr's info bits."""
    name = identify(rec)
    return name if name is not None else f"UNKNOWN ({rec.info & 0xF0:x})"


__all__ = ["RMGRS", "Rmgr", "describe", "describer", "identify", "identify_info",
           "record_type", "rmgr_name"]
