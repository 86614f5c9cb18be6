"""The event loop the streaming commands run on: uvloop when it is installed (a dependency on
Linux and macOS), else asyncio's own. uvloop's loop costs fewer microseconds per wake-up,
which is what a synchronous receiver spends per acknowledged commit. XLOGTOOLS_NO_UVLOOP=1
picks asyncio's loop."""
from __future__ import annotations

import asyncio
import os
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main) on the fastest loop available."""
    if not os.environ.get("XLOGTOOLS_NO_UVLOOP"):
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)

