"""`xlogtools receive`: a Receiver (`receiver.py`) with its metrics and status file
(`metrics.Publisher`), signal handling and logging.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Callable

from .loop import run as run_loop
from .metrics import Publisher
from .receiver import Receiver
from .recvopts import ReceiveError, ReceiveOptions, ReceiveResult, ReceiverProgress


async def receive(options: ReceiveOptions, *, install_signals: bool = False,
                  on_start: Callable[[Receiver], None] | None = None,
                  on_progress: Callable[[ReceiverProgress], None] | None = None
                  ) -> ReceiveResult:
    """Run a receiver until endpos, a signal (install_signals) or an error it does not
    retry (ReceiveError, ConnectError, ArchiveError, ClusterMismatch: all XlogError).
    `on_progress` is the Receiver's hook (see ReceiverProgress)."""
    rec = Receiver(options, on_progress=on_progress)
    pub = Publisher(rec, options.metrics, options.status_file) \
        if options.metrics or options.status_file else None
    if pub is not None:
        await pub.start()
    if on_start is not None:
        on_start(rec)
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM) if install_signals else ()
    for s in sigs:
        loop.add_signal_handler(s, rec.request_stop, "signal")
    try:
        return await rec.run()
    finally:
        for s in sigs:
            loop.remove_signal_handler(s)
        if pub is not None:
            await pub.stop()


def run_receiver(options: ReceiveOptions) -> ReceiveResult:
    """receive() on a fresh event loop, with SIGINT/SIGTERM meaning "stop cleanly"."""
    _setup_logging(options.verbose)
    try:
        return run_loop(receive(options, install_signals=True))
    except OSError as exc:  # a local I/O error the layers below did not word themselves
        raise ReceiveError(f"I/O error: {exc}") from None


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("xlogtools.stream")
    if not any(getattr(h, "_xlogtools", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("xlogtools: %(message)s"))
        h._xlogtools = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)



__all__ = ["receive", "run_receiver"]
