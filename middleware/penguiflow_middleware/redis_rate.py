"""``RedisRateLimit``: the token bucket of :class:`~penguiflow_middleware.RateLimit`, kept in Redis (GCRA: one
round trip reserves the caller's moment; see :mod:`penguiflow_middleware.redis_limits`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace

from penguiflow.middleware import Call, CallNext
from penguiflow.middleware.validation import (
    check_count,
    check_name,
    check_optional_positive,
    check_positive,
)
from penguiflow.telemetry import get_tracer
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import LimiterUnavailableError, RateLimitExceededError
from penguiflow_middleware.rate_limit import RateLimit
from penguiflow_middleware.redis_connection import (
    COOL_DOWN,
    OnRedisError,
    RedisConnection,
    RedisUnavailable,
    check_common,
    count_unavailable,
    ping,
)
from penguiflow_middleware.redis_scripts import RESERVE

__all__ = ["SLOT_KEY", "RedisRateLimit"]

SLOT_KEY = "penguiflow.rate_limit.slot"
"""``call.context`` key where :class:`RedisRateLimit` leaves the moment it gave the call (Unix seconds, Redis's
clock): the limiter's schedule, whatever delay this process then adds before the call starts."""


class RedisRateLimit:
    """At most ``rate`` calls per ``per`` seconds (bursts of ``burst``, default 1) across every process
    sharing ``key`` on ``redis_url``: the token bucket of :class:`~penguiflow_middleware.RateLimit`, kept in Redis.

    ``max_wait_s`` refuses a call at once (:class:`~penguiflow_middleware.errors.RateLimitExceededError`) when
    its turn is further away than that. ``fallback`` is the local limit for ``on_redis_error="local"``
    (default: a :class:`RateLimit` with the same numbers, named ``f"{name}.local"``). Each admitted call finds
    its moment in ``call.context[SLOT_KEY]``.
    """

    def __init__(
        self,
        redis_url: str,
        key: str,
        rate: float,
        per: float = 1.0,
        burst: int | None = None,
        *,
        name: str | None = None,
        max_wait_s: float | None = None,
        on_redis_error: OnRedisError = "fail",
        prefix: str = "penguiflow",
        connect_timeout_s: float = 0.5,
        socket_timeout_s: float = 1.0,
        retry_redis_s: float = 1.0,
        fallback: RateLimit | None = None,
    ) -> None:
        _, self.key, self.on_redis_error = check_common(
            redis_url,
            key,
            on_redis_error,
            {
                "connect_timeout_s": connect_timeout_s,
                "socket_timeout_s": socket_timeout_s,
                "retry_redis_s": retry_redis_s,
            },
        )
        self.rate = check_positive(rate, "rate")
        self.per = check_positive(per, "per")
        self.burst = 1 if burst is None else check_count(burst, "burst", minimum=1)
        self.max_wait_s = check_optional_positive(max_wait_s, "max_wait_s")
        self._name = check_name(name if name is not None else key, "name")
        check_name(prefix, "prefix")
        self.redis_key = f"{prefix}:rate:{{{key}}}"
        interval_us = self.per / self.rate * 1_000_000
        self._args = [
            f"{interval_us:.3f}",
            f"{(self.burst - 1) * interval_us:.3f}",
            "-1" if self.max_wait_s is None else f"{self.max_wait_s * 1_000_000:.0f}",
        ]
        self._redis = RedisConnection(
            redis_url,
            self._name,
            connect_timeout_s=connect_timeout_s,
            socket_timeout_s=socket_timeout_s,
            retry_redis_s=retry_redis_s,
        )
        fixed_key = self.key
        self.fallback = fallback or RateLimit(
            rate,
            per,
            burst,
            key=lambda _call: fixed_key,
            name=f"{self._name}.local",
            max_wait_s=max_wait_s,
        )
        self._waited = {
            False: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: False},
            True: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: True},
        }
        instruments().observe(names.REDIS_DEGRADED, self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def round_trips(self) -> int:
        return self._redis.round_trips

    def observe(self, metric: str) -> Iterable[tuple[float, Mapping[str, Any]]]:
        return [(1 if self._redis.is_down else 0, {names.LIMITER_NAME: self._name})]

    def __repr__(self) -> str:  # no URL: it may carry a password
        return f"RedisRateLimit(key={self.key!r}, rate={self.rate:g}, per={self.per:g}, name={self._name!r})"

    async def ping(self) -> None:
        """Check that Redis answers (at start-up, to fail fast); raises LimiterUnavailableError if not."""
        await ping(self._redis, self._name)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def acquire(self, call: Call) -> float:
        """Reserve this call's moment and sleep until it; returns the seconds waited."""
        if self._redis.is_down:
            return await self._unavailable(call, COOL_DOWN, "reserve")
        try:
            allowed, wait_us, slot_us = await self._redis.run(
                RESERVE, [self.redis_key], self._args, "reserve"
            )
        except RedisUnavailable as exc:
            return await self._unavailable(call, exc.error_type, exc.operation)
        wait = int(wait_us) / 1_000_000
        if not allowed:
            assert self.max_wait_s is not None
            attributes = {names.LIMITER_NAME: self._name, names.REJECT_REASON: "max_wait"}
            instruments().add(names.RATE_LIMIT_REJECTED, 1, attributes)
            trace.get_current_span().add_event(names.EVENT_RATE_LIMIT_REJECTED, attributes)
            raise RateLimitExceededError(self._name, wait, self.max_wait_s)
        # The moment Redis gave this call, on Redis's clock: the schedule itself, which a late wake-up of this
        # process (CPU load) can delay but never change. Audits and tests read it here.
        call.context[SLOT_KEY] = int(slot_us) / 1_000_000
        if wait > 0:
            with get_tracer().start_as_current_span(
                names.SPAN_RATE_LIMIT_WAIT.format(limiter=self._name),
                attributes={names.LIMITER_NAME: self._name, names.RATE_LIMIT_KEY: self.key},
            ):
                await asyncio.sleep(wait)
        instruments().record(names.RATE_LIMIT_WAIT, wait, self._waited[wait > 0])
        return wait

    async def _unavailable(self, call: Call, error_type: str, operation: str) -> float:
        count_unavailable(self._name, self.on_redis_error, operation, error_type)
        if self.on_redis_error == "fail":
            raise LimiterUnavailableError(self._name, error_type)
        return await self.fallback.acquire(call)

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        await self.acquire(call)
        return await call_next(call)
