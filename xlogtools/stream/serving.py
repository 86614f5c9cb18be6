"""`xlogtools serve`: a walsender over DIR (`sender.WalSender`), or with an upstream server a
relay (`relay.relay`) whose receiver writes DIR while the walsender serves it.

    from xlogtools.stream.sender import ServeOptions
    from xlogtools.stream.serving import serve_archive

    serve_archive(ServeOptions("/archive", port=5499), auth_file="users.txt")  # until SIGTERM
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from typing import Callable

from ..errors import UsageError
from .loop import run as run_loop
from .recvopts import ReceiveOptions
from .relay import relay
from .sender import ServeError, ServeOptions, WalSender
from .users import load_users


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


def serve_archive(options: ServeOptions, *, auth_file: str | os.PathLike[str] | None = None,
                  upstream: str | None = None, slot: str | None = None,
                  create_slot: bool = False, verbose: bool = False,
                  ready: Callable[[WalSender], None] | None = None) -> None:
    """Serve `options.directory` on a fresh event loop until SIGINT or SIGTERM, as
    `xlogtools serve` does. The users come from the file `auth_file` (unless
    `options.users` or `options.trust` is given); with `upstream` (a connection string) the
    archive is written from that server, through replication slot `slot` (created first with
    `create_slot`), while it is served. Logging goes to stderr: the status text every
    `options.status_interval`, and each connection and command with `verbose`. Options that
    do not go together, and a directory that does not exist, are a UsageError before
    anything listens."""
    if (slot or create_slot) and not upstream:
        raise UsageError(f"{'--slot' if slot else '--create-slot'} needs --upstream")
    if create_slot and not slot:
        raise UsageError("--create-slot needs a slot to be specified using --slot")
    if options.trust and auth_file:
        raise UsageError("--auth and --trust exclude each other")
    if not options.trust and not auth_file and options.users is None:
        raise UsageError("name a users file with --auth FILE, or --trust (loopback only)")
    if not os.path.isdir(options.directory):
        raise UsageError(f"directory \"{os.fspath(options.directory)}\" does not exist")
    _setup_logging(verbose or bool(options.status_interval), verbose)
    if auth_file:
        options = dataclasses.replace(options, users=load_users(auth_file))
    try:
        options.validate()
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    recv_opts = None
    if upstream:
        recv_opts = ReceiveOptions(directory=options.directory, conninfo=upstream, slot=slot,
                                   ensure_slot=create_slot, verbose=verbose, status_line=False)
        recv_opts.validate()  # a bad slot name is a usage error, before listening
    run_loop(_serve_until_signal(options, ready, recv_opts))


async def _serve_until_signal(options: ServeOptions, ready: Callable[[WalSender], None] | None,
                              upstream: ReceiveOptions | None) -> None:
    """serve() until SIGINT or SIGTERM cancels it (a clean end, not an error)."""
    task = asyncio.ensure_future(serve(options, ready=ready, upstream=upstream))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


def _setup_logging(status: bool, verbose: bool) -> None:
    """serve's log lines on stderr: INFO with the status text or -v, else warnings only; the
    receiver's own progress (each finished segment...) only with -v, its warnings always."""
    logging.basicConfig(level=logging.INFO if status else logging.WARNING,
                        format="%(asctime)s xlogtools serve: %(message)s", stream=sys.stderr)
    logging.getLogger("xlogtools.stream").setLevel(logging.INFO if verbose else logging.WARNING)


__all__ = ["serve", "serve_archive"]
