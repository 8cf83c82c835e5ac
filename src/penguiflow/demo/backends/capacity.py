"""A backend with a hidden capacity, the model the adaptive-concurrency demo, tests and benchmark run against.

Up to ``capacity`` requests are served at once, each in ``service_s``; more wait for a server in FIFO order, so
latency grows with the excess (queueing); a request arriving when ``overload_factor × capacity`` are already
present is refused at once (the HTTP API answers it 429 with ``Retry-After``). The capacity can change at any
time (:meth:`CapacityGate.set_capacity`): requests already being served finish, the next ones see the new
capacity. Plain asyncio, so a test runs it in virtual time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from penguiflow.middleware.validation import check_count, check_positive


class CapacityGate:
    """Serves or refuses one request at a time (``await gate.serve()``); counts what it did."""

    def __init__(self, capacity: int, service_s: float, *, overload_factor: int = 2) -> None:
        self.capacity = check_count(capacity, "capacity", minimum=1)
        self.service_s = check_positive(service_s, "service_s", unit="seconds")
        self.overload_factor = check_count(overload_factor, "overload_factor", minimum=1)
        self.present = 0  # being served or waiting for a server
        self.serving = 0
        self.served = 0
        self.refused = 0
        self.peak_present = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def set_capacity(self, capacity: int) -> None:
        self.capacity = check_count(capacity, "capacity", minimum=1)
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.serving < self.capacity:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.serving += 1
                waiter.set_result(None)

    async def serve(self) -> bool:
        """Serve one request (``True``) or refuse it at once for overload (``False``)."""
        if self.present >= self.overload_factor * self.capacity:
            self.refused += 1
            return False
        self.present += 1
        self.peak_present = max(self.peak_present, self.present)
        try:
            if self.serving < self.capacity and not self._waiters:
                self.serving += 1
            else:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():  # granted, then cancelled: pass it on
                        self.serving -= 1
                        self._grant()
                    else:
                        waiter.cancel()
                    raise
            try:
                await asyncio.sleep(self.service_s)
            finally:
                self.serving -= 1
                self._grant()
            self.served += 1
            return True
        finally:
            self.present -= 1
