"""An asyncio event loop on virtual time: when nothing is ready to run, time jumps to the next timer.

Deterministic, and a minute of simulated load runs in a fraction of a second: the adaptive-limit tests run the
real layer, the real admission and the real backend model on it, with ``loop.time`` as the layer's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        # Private hooks of BaseEventLoop (stable since 3.4): nothing ready means advance to the earliest timer.
        ready: Any = self._ready
        scheduled: Any = self._scheduled
        if not ready and scheduled:
            self._now = max(self._now, scheduled[0].when())
        super()._run_once()  # type: ignore[misc]


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
