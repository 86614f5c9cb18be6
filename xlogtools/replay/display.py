"""Row changes for a reader: values cut to a readable width (with their length and md5),
updates as the changed columns old -> new plus the key, lines wrapped under a width.

Used by the text renderings (`replay` table, `gap` text, the HTML gap report); JSON, SQL and
Parquet keep the full values.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

VALUE_WIDTH = 32  # characters of a value shown before it is cut
LINE_WIDTH = 160  # text lines are wrapped before this
_PLAIN = re.compile(r"[-+.\w:/@]+")
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def cut(v: str | None, width: int = VALUE_WIDTH) -> str:
    """A value as one short token: NULL; a plain word as it is; other text quoted, control
    characters escaped; a longer one cut with its length and md5 (of the full value, as
    md5(col::text) gives it in SQL): 'toast-me toast-me ...' (27000 chars, md5 3f2a9c01b7e4)."""
    if v is None:
        return "NULL"
    if len(v) <= width and _PLAIN.fullmatch(v):
        return v
    shown = v[:width].translate(_ESCAPES)
    if len(v) <= width:
        return "'" + shown.replace("'", "''") + "'"
    md5 = hashlib.md5(v.encode("utf-8", "surrogateescape")).hexdigest()
    return f"'{shown.replace(chr(39), chr(39) * 2)}...' ({len(v)} chars, md5 {md5[:12]})"


def changed_columns(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """Columns of an update whose value differs (only those known on both sides)."""
    if not old or not new:
        return []
    return [k for k, v in new.items() if k in old and old[k] != v]


def change_parts(c: dict[str, Any], key: Iterable[str] = ()) -> list[str]:
    """The pieces that describe one row change (a 4.4 dict): an insert's new row, a delete's
    key (or old row), an update's key then each changed column `col: old -> new`. With the
    old row unknown, an update shows its new values marked so."""
    op = c.get("op")
    old, new = c.get("old") or {}, c.get("new") or {}
    keys = [k for k in key if k in (new or old)]
    if op == "insert":
        return [f"{k}={cut(v)}" for k, v in new.items()]
    if op == "delete":
        if keys and all(k in old for k in keys):
            return [f"{k}={cut(old[k])}" for k in keys]
        return [f"{k}={cut(v)}" for k, v in old.items()] or ["(old row unknown)"]
    if op == "update":
        src = old if keys and all(k in old for k in keys) else new
        parts = [f"{k}={cut(src.get(k))}" for k in keys]
        if not old:
            return parts + ["(old row unknown)"] + [f"{k}: ? -> {cut(v)}" for k, v in new.items()
                                                    if k not in keys]
        changed = changed_columns(old, new)
        parts += [f"{k}: {cut(old[k])} -> {cut(new[k])}" for k in changed]
        unknown = [k for k in new if k not in old]
        parts += [f"{k}: ? -> {cut(new[k])}" for k in unknown]
        if not changed and not unknown:
            parts.append("(no column changed)")
        return parts
    return []


def wrap(head: str, parts: list[str], indent: str, width: int = LINE_WIDTH) -> list[str]:
    """head + parts joined by ', ', continued on lines starting with indent, each under
    width where the parts allow."""
    lines: list[str] = []
    cur, fresh = head, not head or head.endswith(" ")
    for i, p in enumerate(parts):
        piece = p + ("," if i + 1 < len(parts) else "")
        if not fresh and len(cur) + 1 + len(piece) > width:
            lines.append(cur)
            cur, fresh = indent, True
        cur += ("" if fresh else " ") + piece
        fresh = False
    lines.append(cur)
    return lines
