"""How a receiver's session ends when a new connection may fix it (Retry), which failures
are not retried, and the backoff between attempts (0.5 s doubling to 10 s).
"""
from __future__ import annotations

import asyncio

from ..errors import XlogError
from .connerrors import ConnectError, ServerError

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
PERMANENT_SQLSTATES = {"42704", "58P01", "42501", "28000", "28P01", "55000"}


class Retry(XlogError):
    """The session ended in a way a new connection may fix; `storage`: because the archive's
    storage refused a write or fsync (full, read-only, I/O error), not the connection."""

    def __init__(self, reason: str, streamed: bool, storage: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.streamed = streamed
        self.storage = storage


def connect_retry(exc: ConnectError, first: bool, retry_first: bool) -> Retry | None:
    """The Retry of a connection attempt that failed, or None when `exc` ends the receiver:
    an authentication failure, any failure of the first attempt (unless `retry_first`), a
    first attempt refused by pg_hba, the role or its privileges."""
    if exc.auth_failed or first and not retry_first:
        return None
    if first and exc.server_error is not None and exc.server_error.sqlstate[:2] == "28":
        return None  # refused (pg_hba, role, privilege): a later attempt will not do better
    return Retry(str(exc), False)


def is_permanent(exc: ServerError) -> bool:
    """A server error a new connection would meet again (a missing slot or file, no
    privilege, a start point not in the server's history)."""
    return exc.sqlstate in PERMANENT_SQLSTATES or "not in this server's history" in str(exc)


class Backoff:
    """The wait before the next connection attempt: BACKOFF_FIRST, doubled after each
    attempt up to BACKOFF_MAX, back to BACKOFF_FIRST after a session that streamed."""

    def __init__(self) -> None:
        self.delay = BACKOFF_FIRST

    def reset(self) -> None:
        self.delay = BACKOFF_FIRST

    async def wait(self, wakeup: asyncio.Event) -> None:
        """Sleep the delay, or until `wakeup` is set (a stop request); then double it."""
        wakeup.clear()
        try:
            await asyncio.wait_for(wakeup.wait(), self.delay)
        except asyncio.TimeoutError:
            pass
        self.delay = min(self.delay * 2, BACKOFF_MAX)


__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "Backoff", "PERMANENT_SQLSTATES", "Retry",
           "connect_retry", "is_permanent"]
