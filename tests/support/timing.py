"""Timing helpers for async tests that must not depend on how loaded the machine is."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 5.0, *, every_s: float = 0.001
) -> None:
    """Poll ``predicate`` (a limiter's state, a counter) until it holds; ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the state polled is plain attributes, no event to wait on
            await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def while_progressing(count: Callable[[], int], stall_s: float) -> AsyncIterator[None]:
    """Run the body as long as it makes progress: ``TimeoutError`` once ``count()`` (calls finished, say) has not
    grown for ``stall_s``. A hang stops progress; a loaded machine only slows it, so this tells them apart where a
    bound on the whole run's wall time cannot."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(stall_s) as bound:

        async def watch() -> None:
            seen = count()
            while True:
                await asyncio.sleep(min(1.0, stall_s / 10))
                if count() != seen:
                    seen = count()
                    bound.reschedule(loop.time() + stall_s)

        watcher = asyncio.create_task(watch())
        try:
            yield
        finally:
            watcher.cancel()


class LoopLag:
    """The event loop's worst lateness while the ``async with`` body runs: how much later than asked a 20 ms
    sleep woke up. A deadline can only be honoured up to it — the loop's lateness is the machine's load, not
    the library's."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + 0.02
            await asyncio.sleep(0.02)
            self.worst_s = max(self.worst_s, loop.time() - asked)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
