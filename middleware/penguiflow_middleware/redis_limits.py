"""Limits shared by every process that uses the same Redis: ``RedisConcurrencyLimit`` and ``RedisRateLimit``.

Each decision is one atomic Lua script, timed by Redis' own clock (``TIME``), so processes on different hosts
agree without synchronised clocks. Key layout (``{key}`` is a Redis Cluster hash tag: one limit, one slot)::

    {prefix}:sem:{key}:holders   ZSET  ticket -> lease expiry (ms)    slots held now
    {prefix}:sem:{key}:queue     ZSET  ticket -> arrival number       FIFO of waiting tickets
    {prefix}:sem:{key}:alive     ZSET  ticket -> ticket expiry (ms)   waiters' heartbeats
    {prefix}:sem:{key}:seq       STRING                               arrival counter
    {prefix}:rate:{key}          STRING theoretical arrival time (µs)  GCRA token bucket

Semaphore. A call gets a ticket; the acquire script drops expired leases and dead waiters, then grants a slot
when fewer than ``max_concurrency`` are held and the ticket is among the first free places of the queue, so
slots go in arrival order across processes. In each process calls first pass a local FIFO
``ConcurrencyLimit`` of the same size, so a busy process queues at most ``max_concurrency`` tickets on Redis
and cannot push a quiet process's call to the back of the line. A granted slot is a lease: renewed in the background every
``lease_s / 3`` while the call runs, so a worker killed with ``kill -9`` gives its slots back at most ``lease_s``
later. A waiting ticket re-runs the script every ``poll_s`` (which also keeps its heartbeat); a release in the
same process wakes its local waiters at once. Polling rather than pub/sub: a pub/sub message can be lost (it is
delivered at most once, and not to a subscriber that is reconnecting), so a waiter would have to poll anyway,
and a subscription holds one more connection per process; the price of polling is up to ``poll_s`` of extra
wait for a slot freed by *another* process and one round trip per waiter per ``poll_s``. An uncontended call
costs two round trips (acquire, release).

Rate. A generic cell rate algorithm (GCRA), the token bucket stored as one timestamp: one round trip reserves
the caller's moment and returns how long to sleep, so callers are served in the order they reached Redis and
nobody polls. A call cancelled while it sleeps leaves its reserved moment unused: the rate is never exceeded,
at most one interval of throughput is lost.

When Redis cannot be used (refused, timed out — connect and socket timeouts are bounded, a call never hangs
on Redis), ``on_redis_error`` decides: ``"fail"`` (default, fail closed) raises
:class:`~penguiflow_middleware.errors.LimiterUnavailableError`; ``"local"`` goes on under the per-process limit alone
(the local gate, or ``fallback`` for the rate limit; by default the same numbers, so N processes may together
run N times the shared limit). For
``retry_redis_s`` after an error the limiter does not try Redis again (no connect timeout per call while it
is down). Both are counted (``penguiflow.redis_limit.unavailable`` by action, ``…degraded`` gauge) and logged
once per outage by the ``penguiflow_middleware.redis`` logger; the Redis URL never appears (it may hold a
password).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from penguiflow.middleware import Call, CallNext, ConcurrencyLimit
from penguiflow.middleware.validation import (
    check_count,
    check_name,
    check_positive,
)
from penguiflow.telemetry import get_tracer, register_limiter
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import LimiterUnavailableError
from penguiflow_middleware.redis_connection import (
    COOL_DOWN,
    OnRedisError,
    RedisConnection,
    RedisUnavailable,
    check_common,
    count_unavailable,
    logger,
    ping,
)
from penguiflow_middleware.redis_rate import SLOT_KEY, RedisRateLimit
from penguiflow_middleware.redis_scripts import ACQUIRE, RELEASE, RENEW, SNAPSHOT

# RedisRateLimit and SLOT_KEY live in redis_rate; imported from here by earlier code, so kept importable here.
__all__ = ["SLOT_KEY", "Permit", "RedisConcurrencyLimit", "RedisRateLimit"]


# --- the semaphore ---------------------------------------------------------------------------------------------
class Permit:
    """A slot held from :meth:`RedisConcurrencyLimit.acquire`; give it back with ``await permit.release()``."""

    __slots__ = ("_release", "_released")

    def __init__(self, release: Callable[[], Awaitable[None]]) -> None:
        self._release = release
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await self._release()


class RedisConcurrencyLimit:
    """At most ``max_concurrency`` calls run at once across every process sharing ``key`` on ``redis_url``.

    ``name`` labels metrics, spans and logs (default: ``key``); its in-flight, queued and limit gauges are the
    core limiter gauges (``penguiflow.limiter.*``), counted for this process. Every process sharing a key should
    use the same ``max_concurrency``.

    A call first passes ``local``, a per-process :class:`~penguiflow.middleware.ConcurrencyLimit` (default
    ``ConcurrencyLimit(max_concurrency, name=f"{name}.local")``), then takes its Redis slot. So a process never
    queues more than ``max_concurrency`` tickets on Redis (a busy process cannot crowd out a quiet one: tickets
    are served in arrival order, calls within a process in theirs), and when Redis goes away with
    ``on_redis_error="local"`` the process stays within ``local``'s limit, counting the calls that still hold
    Redis slots.
    """

    def __init__(
        self,
        redis_url: str,
        key: str,
        max_concurrency: int,
        lease_s: float = 30.0,
        *,
        name: str | None = None,
        on_redis_error: OnRedisError = "fail",
        poll_s: float = 0.05,
        prefix: str = "penguiflow",
        connect_timeout_s: float = 0.5,
        socket_timeout_s: float = 1.0,
        retry_redis_s: float = 1.0,
        local: ConcurrencyLimit | None = None,
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
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        self.lease_s = check_positive(lease_s, "lease_s")
        self.poll_s = check_positive(poll_s, "poll_s")
        self._name = check_name(name if name is not None else key, "name")
        check_name(prefix, "prefix")
        base = f"{prefix}:sem:{{{key}}}"
        self.keys = [f"{base}:holders", f"{base}:queue", f"{base}:alive", f"{base}:seq"]
        self._lease_ms = max(1, round(self.lease_s * 1000))
        # A waiter refreshes its heartbeat every poll; one that stopped (killed) leaves the queue after this.
        self._ticket_ttl_ms = max(1000, round(self.poll_s * 20_000))
        self._idle_ms = 2 * max(self._lease_ms, self._ticket_ttl_ms)
        self._redis = RedisConnection(
            redis_url,
            self._name,
            connect_timeout_s=connect_timeout_s,
            socket_timeout_s=socket_timeout_s,
            retry_redis_s=retry_redis_s,
        )
        self.local = local or ConcurrencyLimit(max_concurrency, name=f"{self._name}.local")
        self._tickets = itertools.count(1)
        self._instance = os.urandom(6).hex()
        self._in_flight = 0
        self._queued = 0
        self._wakers: set[asyncio.Future[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._waited = {
            False: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: False},
            True: {names.LIMITER_NAME: self._name, names.LIMITER_WAITED: True},
        }
        register_limiter(self)
        instruments().observe(names.REDIS_DEGRADED, self)

    # --- what gauges and users read -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def in_flight(self) -> int:
        """Slots this process holds on Redis now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Calls of this process waiting for a slot now (in the local queue or on Redis)."""
        return self._queued + self.local.queued

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def round_trips(self) -> int:
        """Requests sent to Redis so far (each script run is one)."""
        return self._redis.round_trips

    def set_limit(self, max_concurrency: int) -> None:
        """Change the limit this process enforces (set the same on every process)."""
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        self.local.set_limit(max_concurrency)
        self._wake()

    def observe(self, metric: str) -> Iterable[tuple[float, Mapping[str, Any]]]:
        return [(1 if self._redis.is_down else 0, {names.LIMITER_NAME: self._name})]

    def __repr__(self) -> str:  # no URL: it may carry a password
        return f"RedisConcurrencyLimit(key={self.key!r}, max_concurrency={self._limit}, name={self._name!r})"

    async def ping(self) -> None:
        """Check that Redis answers (at start-up, to fail fast); raises LimiterUnavailableError if not."""
        await ping(self._redis, self._name)

    async def snapshot(self) -> dict[str, int]:
        """Live slot holders and waiting tickets on Redis, all processes together."""
        held, waiting = await self._redis.run(SNAPSHOT, self.keys, [], "snapshot")
        return {"holders": int(held), "waiting": int(waiting)}

    async def aclose(self) -> None:
        """Close this event loop's Redis connections (after the last call)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._redis.aclose()

    # --- acquire / release ----------------------------------------------------------------------------------
    async def acquire(self, call: Call | None = None) -> Permit:
        """Take a slot, in arrival order across processes; ``await permit.release()`` gives it back."""
        await self.local.acquire(call)
        try:
            if self._redis.is_down:
                return self._unavailable(COOL_DOWN, "acquire")
            ticket = f"{self._instance}:{next(self._tickets)}"
            args = [ticket, self._limit, self._lease_ms, self._ticket_ttl_ms, self._idle_ms]
            start = time.perf_counter()
            try:
                granted, _ = await self._redis.run(ACQUIRE, self.keys, args, "acquire")
                if not granted:
                    await self._wait(ticket, args)
            except RedisUnavailable as exc:
                return self._unavailable(exc.error_type, exc.operation)
            except BaseException:
                # Cancelled while Redis may have granted or queued the ticket: take it back, off our path.
                self._spawn(self._discard(ticket))
                raise
        except BaseException:
            self.local.release()
            raise
        waited = time.perf_counter() - start
        instruments().record(names.REDIS_WAIT, waited, self._waited[waited > 0.0005])
        self._in_flight += 1
        renewal = self._spawn(self._renew(ticket))
        return Permit(lambda: self._release(ticket, renewal))

    async def _wait(self, ticket: str, args: list[Any]) -> None:
        self._queued += 1
        loop = asyncio.get_running_loop()
        span = get_tracer().start_span(
            names.SPAN_REDIS_WAIT.format(limiter=self._name),
            attributes={names.LIMITER_NAME: self._name, names.LIMITER_LIMIT: self._limit},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            while True:
                # Woken early by a release in this process; otherwise poll (jittered, so waiters spread out).
                waker: asyncio.Future[None] = loop.create_future()
                self._wakers.add(waker)
                try:
                    await asyncio.wait({waker}, timeout=self.poll_s * random.uniform(0.8, 1.2))
                finally:
                    self._wakers.discard(waker)
                    waker.cancel()
                granted, _ = await self._redis.run(ACQUIRE, self.keys, args, "poll")
                if granted:
                    return
        finally:
            self._queued -= 1
            otel_context.detach(token)
            span.end()

    def _wake(self) -> None:
        for waker in list(self._wakers):
            if not waker.done():
                waker.set_result(None)

    async def _release(self, ticket: str, renewal: asyncio.Task[None]) -> None:
        renewal.cancel()
        self._in_flight -= 1
        # Shielded: a caller cancelled right now must still give its slot back.
        await asyncio.shield(self._spawn(self._discard(ticket, then_local=True)))

    async def _discard(self, ticket: str, *, then_local: bool = False) -> None:
        try:
            await self._redis.run(RELEASE, self.keys, [ticket], "release")
        except RedisUnavailable:
            pass  # the lease runs out by itself; already logged
        finally:
            # The local slot only after the Redis one: the next local caller then finds the Redis slot free
            # and takes it in one round trip instead of queueing behind a release still in flight.
            if then_local:
                self.local.release()
            self._wake()

    async def _renew(self, ticket: str) -> None:
        period = self.lease_s / 3
        while True:
            await asyncio.sleep(period)
            try:
                alive = await self._redis.run(
                    RENEW, self.keys, [ticket, self._lease_ms, self._idle_ms], "renew"
                )
            except RedisUnavailable:
                continue  # try again next period; if Redis stays away the lease lapses
            if not alive:
                instruments().add(names.REDIS_LEASE_LOST, 1, {names.LIMITER_NAME: self._name})
                logger.warning(
                    "limiter %s: a running call lost its lease (not renewed within %gs)",
                    self._name,
                    self.lease_s,
                    extra={"limiter": self._name},
                )
                return

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _unavailable(self, error_type: str, operation: str) -> Permit:
        """Fail closed, or go on under the local limit alone (the caller holds its slot already)."""
        count_unavailable(self._name, self.on_redis_error, operation, error_type)
        if self.on_redis_error == "fail":
            raise LimiterUnavailableError(self._name, error_type)

        async def release() -> None:
            self.local.release()

        return Permit(release)

    # --- as a layer --------------------------------------------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        permit = await self.acquire(call)
        try:
            return await call_next(call)
        finally:
            await permit.release()
