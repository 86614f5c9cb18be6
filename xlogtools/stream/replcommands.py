"""The replication commands a physical walsender takes (repl_gram.y / repl_scanner.l, the
physical subset): `parse_command(sql)` gives one of them, or raises CommandError (which the
session answers with an ErrorResponse).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from ..errors import XlogError
from ..lsn import Lsn
from .backend import FEATURE_NOT_SUPPORTED, SYNTAX_ERROR


@dataclass(frozen=True)
class IdentifySystem:
    pass


@dataclass(frozen=True)
class Show:
    name: str


@dataclass(frozen=True)
class TimelineHistory:
    timeline: int


@dataclass(frozen=True)
class StartReplication:
    start: Lsn
    timeline: int = 0  # 0: the server's current timeline
    slot: str | None = None


@dataclass(frozen=True)
class ReadReplicationSlot:
    slot: str


@dataclass(frozen=True)
class EmptyCommand:
    pass


ReplicationCommand = Union[IdentifySystem, Show, TimelineHistory, StartReplication,
                           ReadReplicationSlot, EmptyCommand]


class CommandError(XlogError):
    """A command we refuse: becomes an ErrorResponse (ERROR) with this SQLSTATE."""

    def __init__(self, sqlstate: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.detail = detail


_TOKEN = re.compile(r"""\s*(?:(?P<lsn>[0-9A-Fa-f]+/[0-9A-Fa-f]+)|(?P<num>\d+)(?![\w/])
                         |"(?P<qid>(?:[^"]|"")*)"|(?P<id>[A-Za-z_][A-Za-z0-9_$]*)
                         |(?P<punct>[;.,()=']))""", re.X)

_UNSUPPORTED = {"BASE_BACKUP", "CREATE_REPLICATION_SLOT", "DROP_REPLICATION_SLOT",
                "ALTER_REPLICATION_SLOT", "UPLOAD_MANIFEST"}


def _tokens(sql: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = sql.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise CommandError(SYNTAX_ERROR, "syntax error")
        kind = m.lastgroup or ""
        val = m.group(kind)
        if kind == "qid":
            val = val.replace('""', '"')
        out.append((kind, val))
        pos = m.end()
    while out and out[-1] == ("punct", ";"):
        out.pop()
    return out


def parse_command(sql: str) -> ReplicationCommand:
    """One replication command of a physical walsender; CommandError for the rest."""
    toks = _tokens(sql)
    if not toks:
        return EmptyCommand()
    kind, word = toks[0]
    head = word.upper() if kind == "id" else ""
    rest = toks[1:]

    def ident(i: int) -> str:
        k, v = rest[i]
        if k == "qid":
            return v
        if k == "id":
            return v.lower()
        raise CommandError(SYNTAX_ERROR, f"syntax error at or near \"{v}\"")

    try:
        if head == "IDENTIFY_SYSTEM" and not rest:
            return IdentifySystem()
        if head == "SHOW" and rest:
            name = ".".join(ident(i) for i in range(0, len(rest), 2))
            return Show(name)
        if head == "TIMELINE_HISTORY" and len(rest) == 1 and rest[0][0] == "num":
            tli = int(rest[0][1])
            if tli <= 0 or tli > 0xFFFFFFFF:
                raise CommandError(SYNTAX_ERROR, "invalid timeline %s" % rest[0][1])
            return TimelineHistory(tli)
        if head == "READ_REPLICATION_SLOT" and len(rest) == 1:
            return ReadReplicationSlot(ident(0))
        if head == "START_REPLICATION":
            i, slot = 0, None
            if i < len(rest) and rest[i][0] == "id" and rest[i][1].upper() == "SLOT":
                slot = ident(i + 1)
                i += 2
            if i < len(rest) and rest[i][0] == "id" and rest[i][1].upper() == "LOGICAL":
                raise CommandError(FEATURE_NOT_SUPPORTED, "logical replication is not supported "
                                   "by xlogtools serve")
            if i < len(rest) and rest[i][0] == "id" and rest[i][1].upper() == "PHYSICAL":
                i += 1
            if i >= len(rest) or rest[i][0] != "lsn":
                raise CommandError(SYNTAX_ERROR, "syntax error: START_REPLICATION needs a "
                                   "starting point X/X")
            try:
                start = Lsn(rest[i][1])
            except ValueError:
                raise CommandError(SYNTAX_ERROR, f"invalid LSN \"{rest[i][1]}\"") from None
            i += 1
            tli = 0
            if i < len(rest) and rest[i][0] == "id" and rest[i][1].upper() == "TIMELINE":
                if i + 1 >= len(rest) or rest[i + 1][0] != "num":
                    raise CommandError(SYNTAX_ERROR, "syntax error: TIMELINE needs a number")
                tli = int(rest[i + 1][1])
                if tli <= 0 or tli > 0xFFFFFFFF:
                    raise CommandError(SYNTAX_ERROR, f"invalid timeline {tli}")
                i += 2
            if i != len(rest):
                raise CommandError(SYNTAX_ERROR, f"syntax error at or near \"{rest[i][1]}\"")
            return StartReplication(start, tli, slot)
    except IndexError:
        raise CommandError(SYNTAX_ERROR, "syntax error at end of input") from None
    if head in _UNSUPPORTED:
        raise CommandError(FEATURE_NOT_SUPPORTED, f"{head} is not supported by xlogtools serve "
                           "(it serves WAL from an archive; there are no slots or data files)")
    if head in IDENTIFY_LIKE:
        raise CommandError(SYNTAX_ERROR, f"syntax error in {head} command")
    raise CommandError(FEATURE_NOT_SUPPORTED, "cannot execute SQL commands in WAL sender for "
                       "physical replication")


IDENTIFY_LIKE = {"IDENTIFY_SYSTEM", "SHOW", "TIMELINE_HISTORY", "START_REPLICATION",
                 "READ_REPLICATION_SLOT"}


__all__ = ["IdentifySystem", "Show", "TimelineHistory", "StartReplication", "ReadReplicationSlot",
           "EmptyCommand", "ReplicationCommand", "CommandError", "parse_command", "IDENTIFY_LIKE"]
