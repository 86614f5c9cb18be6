"""What one walsender client's handlers share: its socket (the asyncio streams), the
protocol state (`backend.Backend`), its ClientStatus, and the way a connection is ended
(`Drop`); also which peers count as loopback (for --trust).
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import XlogError
from .backend import Backend
from .messages import NEED_DATA
from .status import ClientStatus

if TYPE_CHECKING:
    from .sendable import Archive

log = logging.getLogger("xlogtools.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def peer_is_loopback(host: str) -> bool:
    return is_loopback(host.split("%")[0]) or host.startswith("::ffff:127.")


class Drop(XlogError):
    """End this client's connection (the reason was logged / sent)."""

    def __init__(self, message: str = "") -> None:  # raised as Drop()
        super().__init__(message)


class SessionIO:
    """One client's connection; `server` is the WalSender that accepted it."""

    def __init__(self, server: Any, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, st: ClientStatus) -> None:
        self.server = server
        self.opts = server.options
        self.archive: Archive = server.archive
        self.reader = reader
        self.writer = writer
        self.st = st
        self.be = Backend()
        self.last_recv = time.monotonic()
        self.got_message = asyncio.Event()

    def send(self, *events: object) -> None:
        self.writer.write(b"".join(self.be.send(e) for e in events))

    def try_send(self, ev: object) -> None:
        with contextlib.suppress(Exception):
            self.send(ev)

    async def drain(self) -> None:
        t = self.opts.timeout or None
        try:
            await asyncio.wait_for(self.writer.drain(), t)
        except asyncio.TimeoutError:
            self.timed_out()

    def timed_out(self) -> None:
        log.warning("client #%d (%s): terminating walsender process due to replication "
                    "timeout", self.st.id, self.st.application_name or self.st.peer)
        self.writer.transport.abort()
        raise Drop()

    async def next_event(self, timeout: float | None) -> Any:
        while True:
            ev = self.be.next_event()
            if ev is not NEED_DATA:
                self.last_recv = time.monotonic()
                return ev
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            self.be.receive_data(data)


__all__ = ["Drop", "SessionIO", "is_loopback", "peer_is_loopback"]
