"""Record filters of `dump`, with pg_waldump's meaning (-r, -x, -R, -B, -F, -w)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..errors import UsageError
from ..parse import layout as L
from ..parse.record import Record


@dataclass(frozen=True)
class RecordFilter:
    rmgrs: frozenset[int] | None = None  # -r (repeatable)
    xid: int | None = None  # -x: the record's xl_xid
    relation: tuple[int, int, int] | None = None  # -R T/D/R: a block reference to it
    block: int | None = None  # -B: ... to this block
    fork: int | None = None  # -F: ... in this fork
    fullpage: bool = False  # -w: records with a full-page image

    @property
    def active(self) -> bool:
        return bool(self.rmgrs is not None or self.xid is not None or self.relation is not None
                    or self.block is not None or self.fork is not None or self.fullpage)

    def __call__(self, rec: Record) -> bool:
        if self.rmgrs is not None and rec.rmid not in self.rmgrs:
            return False
        if self.xid is not None and rec.xid != self.xid:
            return False
        if self.relation is not None or self.block is not None or self.fork is not None:
            for b in rec.blocks:
                if self.fork is not None and b.fork != self.fork:
                    continue
                if self.relation is not None and (b.spc, b.db, b.rel) != self.relation:
                    continue
                if self.block is not None and b.blk != self.block:
                    continue
                break
            else:
                return False
        if self.fullpage and not any(b.has_image for b in rec.blocks):
            return False
        return True


def parse_rmgr(name: str) -> int:
    for i, n in enumerate(L.RMGR_NAMES):
        if n.lower() == name.lower():
            return i
    if name.lower().startswith("custom") and name[6:].isdigit():
        rmid = int(name[6:])
        if L.RM_MIN_CUSTOM_ID <= rmid <= L.RM_MAX_CUSTOM_ID:
            return rmid
    raise UsageError(f"invalid value {name!r} for option -r/--rmgr: resource manager names are "
                     + ", ".join(L.RMGR_NAMES) + " and custom128..custom255")


def parse_relation(text: str) -> tuple[int, int, int]:
    parts = text.split("/")
    try:
        if len(parts) != 3:
            raise ValueError
        spc, db, rel = (int(p) for p in parts)
        if min(spc, db, rel) < 0 or max(spc, db, rel) > 0xFFFFFFFF or rel == 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"invalid value {text!r} for option -R/--relation: expected "
                         "TABLESPACE/DATABASE/RELFILENODE, e.g. 1663/5/16384") from None
    return spc, db, rel


def parse_fork(name: str) -> int:
    try:
        return L.FORK_NAMES.index(name)
    except ValueError:
        raise UsageError(f"invalid value {name!r} for option -F/--fork: valid names are "
                         + ", ".join(L.FORK_NAMES)) from None


def record_filter(rmgr: str | Iterable[str] | None = None, xid: int | None = None,
                  relation: str | tuple[int, int, int] | None = None, block: int | None = None,
                  fork: str | None = None, fullpage: bool = False) -> RecordFilter:
    """The RecordFilter of pg_waldump's options as the command line and the engines' options
    give them: resource manager names (-r: names, or one text of comma-separated names), a
    T/D/R relation (-R: text, or the three numbers), a block of it (-B, only with -R), a
    fork name (-F) and -w."""
    if block is not None and relation is None:
        raise UsageError("option -B/--block needs -R/--relation")
    names = [r for r in rmgr.split(",") if r] if isinstance(rmgr, str) else list(rmgr or ())
    return RecordFilter(
        rmgrs=frozenset(parse_rmgr(r) for r in names) if names else None, xid=xid,
        relation=parse_relation(relation) if isinstance(relation, str) and relation
        else relation or None, block=block, fork=parse_fork(fork) if fork else None,
        fullpage=fullpage)
