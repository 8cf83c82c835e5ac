"""Waiting for a condition in async tests, without busy-looping the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 5.0, *, every_s: float = 0.001
) -> None:
    """Poll ``predicate`` (a limiter's state, a counter) until it holds; ``TimeoutError`` after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the state polled is plain attributes, no event to wait on
            await asyncio.sleep(every_s)
