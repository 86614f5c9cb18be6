"""`gap`: after a crash or failover, what the standby never got from its primary.

    from xlogtools.gap import gap_report
    text = gap_report(["old/pg_wal"], ["new/pg_wal"], fmt="json")

analysis.py compares the two sides (positions, divergence as pg_rewind finds it, the lost
transactions); report.py renders text, JSON and SQL, htmlpage.py the self-contained HTML page;
live.py asks running servers (a standby's position, a primary's data directory).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..errors import InputError
from .analysis import Divergence, GapReport, Position, Transaction, analyze

__all__ = ["Divergence", "FORMATS", "GapReport", "Position", "Transaction", "analyze",
           "gap_report"]

FORMATS = ("text", "json", "sql", "html")


def gap_report(primary: Sequence[str | os.PathLike[str]], standby: Sequence[str], *,
               catalog: Any = None, history_from: tuple[str, str | None] | None = None,
               fmt: str = "text", progress: bool | None = False) -> str:
    """The report of a gap analysis in one of FORMATS. `primary`: paths or connection strings
    of the old primary (a live primary's pg_wal must be readable from here); `standby`: paths,
    or one connection string of a live standby (its position is asked). With `catalog` (a
    replay Catalog) the lost rows are decoded; `history_from` = (data directory, database) to
    follow the schema through the primary's WAL (the catalog is that directory's)."""
    from .live import is_conninfo, primary_paths, standby_position
    from .report import LostRows, render_json, render_sql, render_text

    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})")
    p_paths = [x for spec in primary for x in primary_paths(str(spec))]
    s_paths = [s for s in standby if not is_conninfo(s)]
    s_conns = [s for s in standby if is_conninfo(s)]
    if len(s_conns) > 1:
        raise InputError("give one live standby (--standby CONNSTR) at a time")
    position, s_sysid = standby_position(s_conns[0]) if s_conns else (None, None)
    rows = None
    if catalog is not None:
        rows = LostRows(catalog, progress=progress, history_from=history_from)
    report = analyze(p_paths, s_paths, standby_position=position,
                     standby_system_identifier=s_sysid,
                     catalog=rows.catalog if rows else None,
                     changes=rows.changes if rows else None, progress=progress)
    if fmt == "text":
        return render_text(report, rows.keys if rows else None)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        from .htmlpage import render_html

        return render_html(report, rows)
    return render_sql(report, rows)
