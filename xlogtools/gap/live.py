"""What gap asks live servers (psycopg): a running standby's position, a primary's WAL
directory. Given as connection strings on the command line."""
from __future__ import annotations

import os
import re

from ..errors import InputError
from ..lsn import Lsn
from .analysis import Position

_CONN = re.compile(r"^(postgres(ql)?://|.*\w=)")


def is_conninfo(s: str) -> bool:
    """A connection string (URI or key=value), not a path that exists."""
    return bool(_CONN.match(s)) and not os.path.exists(s)


def standby_position(conn: str) -> tuple[Position, int]:
    """A live standby's position and system identifier: pg_last_wal_receive_lsn(), the end of
    the WAL its walreceiver received and flushed to disk (it keeps that value after the
    walreceiver stops); when it never streamed, pg_last_wal_replay_lsn(), the end of the last
    record it replayed (a lower bound of what it has)."""
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


def primary_paths(spec: str) -> list[str]:
    """The WAL to read of a --primary: the path itself, or a live primary's pg_wal (which
    must be readable from here)."""
    if not is_conninfo(spec):
        return [spec]
    try:
        import psycopg
    except ImportError:
        raise InputError("a primary given as a connection string needs psycopg")
    try:
        with psycopg.connect(spec, connect_timeout=10) as c:
            row = c.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.Error as exc:
        raise InputError(f"could not connect to the primary: {str(exc).strip()}") from None
    assert row is not None
    wal = os.path.join(row[0], "pg_wal")
    if not os.access(wal, os.R_OK):
        raise InputError(f"the primary's WAL ({wal}) is not readable from here: give a copy of "
                         "its pg_wal (or its archive) as --primary PATH")
    return [wal]
