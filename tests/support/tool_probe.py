"""What the integration tests measure from inside the tools a framework's agent loop calls.

``Probe``: how many calls of a tool run at once, measured by the tool. With ``gate=n`` each call waits (up to
``patience_s``) until ``n`` calls have run at once, so a limit of ``n`` is *reached* whatever the machine's load —
the peak is then exactly ``n`` under a limit of ``n`` (and at least ``n`` with no limit), never a matter of
timing. Thread-safe: sync tools run in worker threads.

``BackoffProbe``: the ``sleep`` of a ``Retry`` in front of a limit of 1. At each back-off it waits for another
call (``other_done``) to finish. If the back-off held the only slot, that call could never run and the wait would
fail — so a retried call that succeeds, with the other call run *between* its attempts (the tests check the
server's count at that moment), proves the slot was free during the back-off.

``unique_name``: a fresh tool name valid for every model API (metrics are cumulative over the test session).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from types import TracebackType

_ids = itertools.count()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}"


class Probe:
    def __init__(self, gate: int | None = None, hold_s: float = 0.01, patience_s: float = 5.0) -> None:
        self.gate = gate
        self.hold_s = hold_s
        self.patience_s = patience_s
        self.running = 0
        self.peak = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._reached = threading.Event()

    def _enter(self) -> None:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
            if self.gate is None or self.peak >= self.gate:
                self._reached.set()

    def _exit(self) -> None:
        with self._lock:
            self.running -= 1

    async def __aenter__(self) -> Probe:
        self._enter()
        deadline = time.monotonic() + self.patience_s
        # A threading.Event (sync tools share the probe), polled: waiting on it in worker threads would take
        # the default executor's few threads from the very calls being counted.
        while not self._reached.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await asyncio.sleep(self.hold_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._exit()

    def __enter__(self) -> Probe:
        self._enter()
        self._reached.wait(self.patience_s)
        time.sleep(self.hold_s)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()


class BackoffProbe:
    def __init__(self, patience_s: float = 10.0) -> None:
        self.patience_s = patience_s
        self.backoffs = 0
        self.other_done = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.backoffs += 1
        await asyncio.wait_for(self.other_done.wait(), self.patience_s)
