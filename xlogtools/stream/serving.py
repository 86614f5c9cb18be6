"""`xlogtools serve`: a walsender over DIR (`sender.WalSender`), or with an upstream server a
relay (`relay.relay`) whose receiver writes DIR while the walsender serves it.
"""
from __future__ import annotations

from typing import Callable

from .recvopts import ReceiveOptions
from .relay import relay
from .sender import ServeOptions, WalSender


async def serve(options: ServeOptions, *, ready: Callable[[WalSender], None] | None = None,
                upstream: ReceiveOptions | None = None) -> None:
    """Serve DIR until cancelled. With `upstream` (relay mode), a receiver in this event loop
    writes DIR from that server and clients get its WAL as soon as it is durable: see
    `relay.relay()`, which this then runs."""
    if upstream is not None:
        await relay(options, upstream, ready=ready)
        return
    sender = WalSender(options)
    await sender.start()
    if ready:
        ready(sender)
    try:
        await sender.serve_forever()
    finally:
        await sender.close()


__all__ = ["serve"]
