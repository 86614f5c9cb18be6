"""`xlogtools gap`: what a standby never got from its primary."""
from __future__ import annotations

import os
import re
import sys

from typing import TYPE_CHECKING, Any, cast

import click

from ..errors import InputError
from . import handled, load_catalog

if TYPE_CHECKING:
    from ..gap import Position

_CONN = re.compile(r"^(postgres(ql)?://|.*\w=)")


def _is_conn(s: str) -> bool:
    return bool(_CONN.match(s)) and not os.path.exists(s)


def _standby_position(conn: str) -> tuple[Position, int]:  # (its position, system identifier)
    """A live standby's position: pg_last_wal_receive_lsn(), the end of the WAL its
    walreceiver received and flushed to disk (it keeps that value after the walreceiver
    stops); when it never streamed, pg_last_wal_replay_lsn(), the end of the last record it
    replayed (a lower bound of what it has)."""
    from ..gap import Position
    from ..lsn import Lsn

    try:
        import psycopg
    except ImportError:
        raise InputError("reading a live standby needs psycopg (pip install 'psycopg[binary]')")
    try:
        with psycopg.connect(conn, connect_timeout=10) as c:
            row = c.execute("SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text, "
                            "pg_last_wal_replay_lsn()::text, "
                            "(SELECT received_tli FROM pg_stat_wal_receiver), "
                            "(SELECT timeline_id FROM pg_control_checkpoint()), "
                            "(SELECT system_identifier::text FROM pg_control_system())").fetchone()
    except psycopg.Error as exc:
        raise InputError(f"could not read the standby's position: {str(exc).strip()}") from None
    assert row is not None
    in_recovery, received, replayed, rtli, ctli, sysid = row
    if not in_recovery:
        raise InputError("the --standby server is not in recovery (it was promoted): give its "
                         "WAL directory instead, so the divergence can be read from its history")
    end = received or replayed
    pos = Position(Lsn(end) if end else None, None, rtli or ctli,
                   "received" if received else "replayed", source="server")
    return pos, int(sysid)


def _primary_paths(spec: str) -> list[str]:
    if not _is_conn(spec):
        return [spec]
    try:
        import psycopg
    except ImportError:
        raise InputError("a primary given as a connection string needs psycopg")
    try:
        with psycopg.connect(spec, connect_timeout=10) as c:
            d = cast("tuple[Any, ...]",
                     c.execute("SELECT current_setting('data_directory')").fetchone())[0]
    except psycopg.Error as exc:
        raise InputError(f"could not connect to the primary: {str(exc).strip()}") from None
    wal = os.path.join(d, "pg_wal")
    if not os.access(wal, os.R_OK):
        raise InputError(f"the primary's WAL ({wal}) is not readable from here: give a copy of "
                         "its pg_wal (or its archive) as --primary PATH")
    return [wal]


@click.command()
@click.option("--primary", "primary", required=True, multiple=True, metavar="PATH|CONNSTR",
              help="The old primary's pg_wal, data directory or archive (repeatable).")
@click.option("--standby", "standby", required=True, multiple=True, metavar="PATH|CONNSTR",
              help="The standby's (new primary's) pg_wal or data directory, or a connection "
                   "string of a live standby.")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False),
              help="Catalog snapshot (xlogtools catalog) to reconstruct the lost rows.")
@click.option("--pgdata", type=click.Path(exists=True, file_okay=False),
              help="Read the catalog from this data directory (e.g. the old primary's, never "
                   "started again) instead of --catalog; never written to.")
@click.option("--dbname", metavar="NAME", help="With --pgdata: the database to decode.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sql", "html"]),
              default="text", show_default=True)
@click.option("-o", "--output", metavar="PATH", help="Write the report to PATH.")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr (default: when stderr is a terminal and the run is long).")
@handled
def gap(primary: tuple[str, ...], standby: tuple[str, ...], catalog: str | None,
        pgdata: str | None, dbname: str | None, fmt: str,
        output: str | None, progress: bool | None) -> None:
    """Compare primary and standby after a crash or failover.

    Says where the standby's WAL ends (or where a promoted standby diverged, as pg_rewind
    would), and lists every transaction the primary committed that the standby never got,
    with commit times (the data-loss window) and, with --catalog, the rows and SQL to put
    them back.

    \b
    Examples:
      xlogtools gap --primary /backup/oldprimary/pg_wal --standby /var/lib/postgresql/15/main
      xlogtools gap --primary old/pg_wal --standby 'host=standby1 user=postgres' --format json
      xlogtools gap --primary old/pg_wal --standby new/pg_wal --catalog cat.json --format sql
    """
    from ..gap import analyze
    from ..gapreport import LostRows, render_html, render_json, render_sql, render_text

    p_paths = [x for spec in primary for x in _primary_paths(spec)]
    s_paths = [s for s in standby if not _is_conn(s)]
    s_conns = [s for s in standby if _is_conn(s)]
    if len(s_conns) > 1:
        raise InputError("give one live standby (--standby CONNSTR) at a time")
    position, s_sysid = _standby_position(s_conns[0]) if s_conns else (None, None)
    rows = None
    cat = load_catalog(catalog, pgdata, dbname, required=False)
    if cat is not None:
        # with --pgdata the lost rows are decoded with the schema in force at their LSN
        # (SchemaHistory over the primary's WAL: DDL among the lost transactions)
        rows = LostRows(cat, progress=progress,
                        history_from=(pgdata, dbname) if pgdata else None)
    report = analyze(p_paths, s_paths, standby_position=position,
                     standby_system_identifier=s_sysid,
                     catalog=rows.catalog if rows else None,
                     changes=rows.changes if rows else None, progress=progress)
    if fmt == "text":
        text = render_text(report, rows.keys if rows else None)
    elif fmt == "json":
        text = render_json(report)
    elif fmt == "html":
        text = render_html(report, rows)
    else:
        text = render_sql(report, rows)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
