"""``RateLimit``: a local token bucket per key, FIFO for waiters, cancellation-safe.

``rate`` tokens are added every ``per`` seconds, continuously, up to ``burst`` (default 1: calls are paced
evenly, ``per / rate`` apart, so no window of any length ever sees more than its share — the safe reading of
an API quota). A bucket starts full. A call takes one token; without one it waits in FIFO order.

How the waiting works: waiters queue as futures; one timer per bucket fires when the head waiter's token is
due and hands tokens out in arrival order. A waiter cancelled while queued is skipped (it took nothing); a
waiter cancelled after being handed a token gives the token back to the bucket and the next waiter gets it, so
cancellation never leaks nor steals a token. The bucket never holds more than ``burst`` tokens, even when a timer
fires late under event-loop lag (beyond a few milliseconds of ordinary timer lateness, credited to waiters):
calls that fell behind do not catch up in a burst, so a short window never sees
more than its share; lag costs throughput instead.

``max_wait_s`` bounds the wait: a call whose turn would come later than that fails at once with
:class:`~penguiflow_middleware.errors.RateLimitExceededError` (counted as rejected) instead of queueing.

Where to put it: outside ``Retry`` it paces *calls*; inside it (next to the concurrency limit) it paces
*attempts*, which is what a server's quota counts. The second is usually right::

    wrap(fetch, log_flow_events(), Retry(policy), RateLimit(5000, per=3600, name="github"), Timeout(10))
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from penguiflow.middleware import Call, CallNext
from penguiflow.middleware.validation import check_count, check_name, check_optional_positive, check_positive
from penguiflow.telemetry import get_tracer
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import RateLimitExceededError

KeyFunction = Callable[[Call], str]

_EPSILON = 1e-9  # float refills land a hair below a whole token
_LAG_CREDIT_S = 0.005  # timer lateness credited to waiters; never more than half a token


def default_key(call: Call) -> str:
    """One bucket per tool source, or per tool for a plain wrapped function."""
    return call.source or call.tool


class _Bucket:
    __slots__ = ("key", "loop", "queued", "timer", "tokens", "updated", "waiters")

    def __init__(self, key: str, tokens: float, now: float) -> None:
        self.key = key
        self.tokens = tokens
        self.updated = now
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.queued = 0  # live waiters (cancelled ones are uncounted at once, removed from the deque lazily)
        self.timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the timer's loop


class RateLimit:
    """At most ``rate`` calls per ``per`` seconds per key, with bursts of up to ``burst`` calls.

    ``key(call)`` picks the bucket (default: ``call.source or call.tool``); ``name`` labels the metrics and
    spans (default ``rate_limit``). ``clock`` is the monotonic clock the refill is computed from.
    """

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        burst: int | None = None,
        *,
        key: KeyFunction | None = None,
        name: str = "rate_limit",
        max_wait_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = check_positive(rate, "rate")
        self.per = check_positive(per, "per")
        self.burst = 1 if burst is None else check_count(burst, "burst", minimum=1)
        self.max_wait_s = check_optional_positive(max_wait_s, "max_wait_s")
        self.key: KeyFunction = key or default_key
        self._name = check_name(name, "name")
        self._clock = clock
        self._per_token = self.per / self.rate  # seconds per token
        self._lag_credit = min(0.5, _LAG_CREDIT_S / self._per_token)
        self._buckets: dict[str, _Bucket] = {}
        self._waited = {
            False: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: False},
            True: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: True},
        }
        telemetry = instruments()
        telemetry.observe(names.RATE_LIMIT_TOKENS, self)
        telemetry.observe(names.RATE_LIMIT_QUEUED, self)

    @property
    def name(self) -> str:
        return self._name

    def tokens(self, key: str) -> float:
        """Tokens in ``key``'s bucket now (``burst`` for a key never used)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(self.burst)
        return self._refilled(bucket, self._clock())

    def queued(self, key: str) -> int:
        bucket = self._buckets.get(key)
        return 0 if bucket is None else bucket.queued

    def observe(self, metric: str) -> Iterable[tuple[float, Mapping[str, Any]]]:
        now = self._clock()
        for bucket in list(self._buckets.values()):
            attributes = {names.LIMITER_NAME: self._name, names.RATE_LIMIT_KEY: bucket.key}
            if metric == names.RATE_LIMIT_TOKENS:
                yield self._refilled(bucket, now), attributes
            else:
                yield bucket.queued, attributes

    def __repr__(self) -> str:
        return f"RateLimit({self.rate:g}, per={self.per:g}, burst={self.burst}, name={self._name!r})"

    # --- the bucket ------------------------------------------------------------------------------------------
    def _refilled(self, bucket: _Bucket, now: float, cap: float | None = None) -> float:
        """The bucket's tokens at ``now``, capped at ``cap`` (default ``burst``)."""
        limit = float(self.burst) if cap is None else cap
        return min(limit, bucket.tokens + (now - bucket.updated) / self._per_token)

    def _refill(self, bucket: _Bucket) -> None:
        # Capped at ``burst`` even while calls wait: calls that fell behind a late timer must not run back to
        # back, which would break the quota in a short window. Only a timer's ordinary lateness (epoll wakes in
        # whole milliseconds) is credited to the waiters, so it does not add up over thousands of calls.
        now = self._clock()
        cap = self.burst + (self._lag_credit if bucket.queued else 0.0)
        bucket.tokens = self._refilled(bucket, now, cap)
        bucket.updated = now

    def _grant(self, bucket: _Bucket) -> None:
        """Hand tokens to waiters in arrival order, then set the timer for the next one still waiting."""
        bucket.timer = None
        self._refill(bucket)
        waiters = bucket.waiters
        while waiters:
            waiter = waiters[0]
            if waiter.done():  # cancelled while queued: took nothing
                waiters.popleft()
                continue
            if bucket.tokens < 1 - _EPSILON:
                break
            waiters.popleft()
            bucket.tokens -= 1
            bucket.queued -= 1
            waiter.set_result(None)
        if bucket.queued:
            self._schedule(bucket)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens)

    def _schedule(self, bucket: _Bucket) -> None:
        loop = asyncio.get_running_loop()
        # A timer left behind by a loop that has since closed would never fire: replace it.
        if bucket.timer is None or bucket.loop is not loop:
            if bucket.timer is not None:
                bucket.timer.cancel()
            delay = max(0.0, (1 - bucket.tokens) * self._per_token)
            bucket.timer = loop.call_later(delay, self._grant, bucket)
            bucket.loop = loop

    async def acquire(self, call: Call) -> float:
        """Take a token for ``call``, waiting in FIFO order; returns the seconds waited."""
        key = self.key(call)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(key, float(self.burst), self._clock())
        if not bucket.queued:
            self._refill(bucket)
            if bucket.tokens >= 1 - _EPSILON:
                bucket.tokens -= 1
                instruments().record(names.RATE_LIMIT_WAIT, 0.0, self._waited[False])
                return 0.0
        if self.max_wait_s is not None:
            self._refill(bucket)
            # Our turn comes when the waiters ahead and we each got a whole token.
            wait = (bucket.queued + 1 - bucket.tokens) * self._per_token
            if wait > self.max_wait_s:
                self._reject(wait)
        return await self._wait(bucket)

    async def _wait(self, bucket: _Bucket) -> float:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bucket.waiters.append(waiter)
        bucket.queued += 1
        self._schedule(bucket)
        start = time.perf_counter()
        span = get_tracer().start_span(
            names.SPAN_RATE_LIMIT_WAIT.format(limiter=self._name),
            attributes={names.LIMITER_NAME: self._name, names.RATE_LIMIT_KEY: bucket.key},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a token, then cancelled before using it: the token goes back, to the next in line.
                self._refill(bucket)
                bucket.tokens += 1  # _grant caps it at burst if nobody is left to take it
                if bucket.timer is not None:
                    bucket.timer.cancel()
                self._grant(bucket)
            else:
                waiter.cancel()
                bucket.queued -= 1
            raise
        finally:
            otel_context.detach(token)
            span.end()
        waited = time.perf_counter() - start
        instruments().record(names.RATE_LIMIT_WAIT, waited, self._waited[True])
        return waited

    def _reject(self, wait: float) -> None:
        assert self.max_wait_s is not None
        attributes = {names.LIMITER_NAME: self._name, names.REJECT_REASON: "max_wait"}
        instruments().add(names.RATE_LIMIT_REJECTED, 1, attributes)
        trace.get_current_span().add_event(names.EVENT_RATE_LIMIT_REJECTED, attributes)
        raise RateLimitExceededError(self._name, wait, self.max_wait_s)

    # --- as a layer ------------------------------------------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        await self.acquire(call)
        return await call_next(call)
