"""``ConcurrencyLimit``: a FIFO, cancellation-safe, resizable semaphore layer with an optional bounded queue.

A released slot is handed directly to the oldest waiter (never left for a newcomer to grab), which is what makes
the queue strictly FIFO. A waiter that is cancelled (or times out) while queued is skipped lazily, so leaving
the queue is O(1); a waiter cancelled after being handed a slot passes that slot on, so no slot ever leaks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from penguiflow.errors import LimiterRejectedError
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.events import QUEUE_WAIT, emit
from penguiflow.middleware.validation import check_count, check_name
from penguiflow.telemetry import instruments, names


class ConcurrencyLimit:
    """At most ``max_concurrency`` calls run at once; the rest wait in FIFO order.

    ``max_queue`` bounds the queue: a call arriving at a full queue fails at once with
    :class:`~penguiflow.errors.LimiterRejectedError` instead of growing memory. ``name`` labels the limiter's
    metrics and spans. The limit can be changed while calls run (:meth:`set_limit`).
    """

    def __init__(
        self,
        max_concurrency: int,
        *,
        name: str,
        max_queue: int | None = None,
        latency_callback: LatencyCallback | None = None,
    ) -> None:
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        self._name = check_name(name, "name")
        self.max_queue = None if max_queue is None else check_count(max_queue, "max_queue", minimum=0)
        self.latency_callback = latency_callback
        self._in_flight = 0
        self._queued = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._wait_attributes = {
            False: {names.LIMITER_NAME: name, names.LIMITER_WAITED: False},
            True: {names.LIMITER_NAME: name, names.LIMITER_WAITED: True},
        }
        instruments.register_limiter(self)

    # --- what the gauges and users read ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return self._queued

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, max_concurrency: int) -> None:
        """Change the limit now. Raising it admits waiters at once; lowering it lets running calls finish."""
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        self._grant()

    def __repr__(self) -> str:
        return f"ConcurrencyLimit({self._limit}, name={self._name!r}, in_flight={self._in_flight}, queued={self._queued})"

    # --- acquire / release -----------------------------------------------------------------------------
    async def acquire(self, call: Call | None = None) -> float:
        """Take a slot, waiting in FIFO order; returns the seconds waited. Pair with :meth:`release`."""
        telemetry = instruments.current()
        # Not ``not self._queued``: a waiter cancelled in this loop iteration is still counted there until its
        # task runs, and a newcomer sent to the queue behind it would wait with a slot free. Waiters left in
        # the deque imply every slot is taken (each release or raise of the limit drains the deque first).
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            if telemetry is not None and telemetry.metrics is not None:
                telemetry.metrics.record(names.LIMITER_WAIT, 0.0, self._wait_attributes[False])
            return 0.0
        return await self._wait(call, telemetry)

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`; it goes straight to the oldest waiter."""
        if self._in_flight <= 0:
            raise RuntimeError(f"ConcurrencyLimit {self._name!r}: release() without a matching acquire()")
        self._in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        waiters = self._waiters
        while waiters and self._in_flight < self._limit:
            waiter = waiters.popleft()
            if waiter.done():  # cancelled while queued; already uncounted
                continue
            self._in_flight += 1
            self._queued -= 1
            waiter.set_result(None)

    async def _wait(self, call: Call | None, telemetry: instruments.Telemetry | None) -> float:
        if self.max_queue is not None and self._queued >= self.max_queue:
            self._reject(call, telemetry)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._queued += 1
        start = time.perf_counter()
        span = token = None
        if telemetry is not None and telemetry.tracer is not None:
            span = telemetry.tracer.start_span(
                names.SPAN_QUEUE_WAIT.format(limiter=self._name),
                attributes={
                    names.LIMITER_NAME: self._name,
                    names.LIMITER_QUEUED_AT_ARRIVAL: self._queued,
                    names.LIMITER_LIMIT_AT_ARRIVAL: self._limit,
                },
            )
            token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled before using it: pass it on
            else:
                waiter.cancel()
                self._queued -= 1
            raise
        finally:
            if span is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
                span.end()
        waited = time.perf_counter() - start
        try:
            if telemetry is not None and telemetry.metrics is not None:
                telemetry.metrics.record(names.LIMITER_WAIT, waited, self._wait_attributes[True])
            if call is not None:
                emit(call, self.latency_callback, QUEUE_WAIT, waited * 1000, limiter=self._name)
        except BaseException:
            self.release()  # the caller never learns it holds the slot: give it back
            raise
        return waited

    def _reject(self, call: Call | None, telemetry: instruments.Telemetry | None) -> None:
        if telemetry is not None:
            if telemetry.metrics is not None:
                telemetry.metrics.add(
                    names.LIMITER_REJECTED,
                    1,
                    {names.LIMITER_NAME: self._name, names.REJECT_REASON: "queue_full"},
                )
            trace.get_current_span().add_event(names.EVENT_REJECTED, {names.LIMITER_NAME: self._name})
        raise LimiterRejectedError(self._name, self.max_queue or 0)

    # --- as a layer --------------------------------------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        await self.acquire(call)
        try:
            return await call_next(call)
        finally:
            self.release()


class CallerLimits:
    """Acquires the limiters the *caller* put on ``call.limits`` (the planner's Level 1 and Level 2), in order.

    Sits in a tool's stack between retry and the tool source's own limit, so a call sleeping in back-off holds
    no slot at any level. With no caller limits it is a pass-through. A call holds the slots it has while it
    waits for the next limiter, so put the narrowest limiter first (Level 2 before Level 1): a query limited to
    5 then holds at most 5 of the planner's slots, instead of taking them all to wait for its own 5. If a later
    limiter rejects the call or it is cancelled while waiting, every slot already taken is given back.
    """

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        limits = call.limits
        if not limits:
            return await call_next(call)
        taken: list[ConcurrencyLimit] = []
        try:
            for limiter in limits:
                await limiter.acquire(call)
                taken.append(limiter)
            return await call_next(call)
        finally:
            for limiter in reversed(taken):
                limiter.release()
