"""PostgreSQL's times: TimestampTz (microseconds since 2000-01-01 00:00 UTC, datatype/
timestamp.h) and pg_time_t (seconds since 1970), and the texts they are shown as.

    pg_timestamp(usec)      TimestampTz -> aware datetime (None outside years 1-9999)
    format_time(t)          datetime -> '2025-01-31 12:00:00.123456+00' (psql, TimeZone UTC)
    timestamptz_to_str(ts)  pg_waldump's text: local time of the process with its '%Z' zone
    unix_time(secs)         pg_time_t (a checkpoint's time) -> aware datetime (None if none)

The C code keeps its own copies of the epoch (_walscan.c, waldesc_util.h, _syncpump.c).
"""
from __future__ import annotations

import datetime as _dt
import time

PG_EPOCH_UNIX = 946684800  # seconds between 1970-01-01 and 2000-01-01
PG_EPOCH_UNIX_USECS = PG_EPOCH_UNIX * 1_000_000
PG_EPOCH = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)
USECS_PER_SEC = 1_000_000


def pg_timestamp(usec: int | None) -> _dt.datetime | None:
    """A TimestampTz (microseconds since 2000-01-01 UTC) as a datetime; None for None or out
    of Python's years 1-9999."""
    if usec is None:
        return None
    try:
        return PG_EPOCH + _dt.timedelta(microseconds=usec)
    except OverflowError:
        return None


def format_time(t: _dt.datetime | None) -> str | None:
    """As psql prints a timestamptz with TimeZone UTC, always with microseconds:
    2025-01-31 12:00:00.123456+00."""
    return None if t is None else t.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def unix_time(secs: int) -> _dt.datetime | None:
    """A pg_time_t (seconds since 1970, as CheckPoint.time) as a datetime in UTC; None where
    Python has none."""
    try:
        return _dt.datetime.fromtimestamp(secs, _dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


# (seconds, time.tzname when computed, "stamp" ... "zone" text) of the last timestamp: the
# commit records of a stretch of WAL share their second, and localtime + strftime cost more
# than the rest of a COMMIT's description. time.tzset() makes a new tzname tuple.
_ts_last: tuple[int | None, object, str, str] = (None, None, "", "")


def timestamptz_to_str(ts: int) -> str:
    """pg_waldump's frontend timestamptz_to_str(): local time of the process, '%Z' zone."""
    global _ts_last
    if ts >= 0:
        secs, frac = divmod(ts, USECS_PER_SEC)
    else:  # C's division and remainder (toward zero): a negative fraction keeps its sign
        secs = -(-ts // USECS_PER_SEC)
        frac = ts - secs * USECS_PER_SEC
    secs += PG_EPOCH_UNIX
    last = _ts_last
    if last[0] == secs and last[1] is time.tzname:
        return "%s.%06d %s" % (last[2], frac, last[3])
    tzname = time.tzname
    try:
        lt = time.localtime(secs)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", lt)
        zone = time.strftime("%Z", lt)
    except (OverflowError, ValueError, OSError):
        stamp, zone = "", ""
    _ts_last = (secs, tzname, stamp, zone)
    return f"{stamp}.{frac:06d} {zone}"  # C's %06d: a negative fraction keeps its sign
