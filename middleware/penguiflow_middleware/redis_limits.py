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
import logging
import os
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

import redis.asyncio as aioredis
from opentelemetry import context as otel_context
from opentelemetry import trace
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from penguiflow.errors import ConfigurationError
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit
from penguiflow.middleware.validation import (
    check_choice,
    check_count,
    check_name,
    check_optional_positive,
    check_positive,
)
from penguiflow.telemetry import get_tracer, register_limiter
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import LimiterUnavailableError, RateLimitExceededError
from penguiflow_middleware.rate_limit import RateLimit

logger = logging.getLogger("penguiflow_middleware.redis")

OnRedisError = Literal["fail", "local"]

SLOT_KEY = "penguiflow.rate_limit.slot"
"""``call.context`` key where :class:`RedisRateLimit` leaves the moment it gave the call (Unix seconds, Redis's
clock): the limiter's schedule, whatever delay this process then adds before the call starts."""
_ON_REDIS_ERROR = ("fail", "local")

# --- the scripts -----------------------------------------------------------------------------------------------
# Times in ms for the semaphore (Lua 5.1 prints numbers with 14 digits: ms since 1970 fit, µs do not — the rate
# script formats its µs explicitly).

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

ACQUIRE = (
    _NOW_MS
    + """
local holders_key, queue_key, alive_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ticket, limit = ARGV[1], tonumber(ARGV[2])
local lease, ttl, idle = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', holders_key, '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', alive_key, '-inf', now)
if #dead > 0 then
  for i = 1, #dead do redis.call('ZREM', queue_key, dead[i]) end
  redis.call('ZREMRANGEBYSCORE', alive_key, '-inf', now)
end
local held = redis.call('ZCARD', holders_key)
local granted = false
local rank = redis.call('ZRANK', queue_key, ticket)
if redis.call('ZSCORE', holders_key, ticket) then
  granted = true  -- a repeated request of a ticket that already holds
elseif not rank and held < limit and redis.call('ZCARD', queue_key) == 0 then
  granted = true  -- nobody waits: no need to queue
else
  if not rank then
    redis.call('ZADD', queue_key, redis.call('INCR', seq_key), ticket)
    rank = redis.call('ZCARD', queue_key) - 1
  end
  -- FIFO: the first (limit - held) tickets of the queue may take the free slots
  granted = rank < limit - held
end
if granted then
  redis.call('ZREM', queue_key, ticket)
  redis.call('ZREM', alive_key, ticket)
  redis.call('ZADD', holders_key, now + lease, ticket)
  redis.call('PEXPIRE', holders_key, idle)
  return {1, held + 1}
end
redis.call('ZADD', alive_key, now + ttl, ticket)
redis.call('PEXPIRE', queue_key, idle)
redis.call('PEXPIRE', alive_key, idle)
redis.call('PEXPIRE', seq_key, idle)
return {0, rank}
"""
)

RELEASE = """
local released = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return released
"""

RENEW = (
    _NOW_MS
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
)

SNAPSHOT = (
    _NOW_MS
    + """
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'), redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')}
"""
)

# GCRA: the bucket is the theoretical arrival time (TAT) of the next call; a call may run at TAT - tolerance.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return {0, string.format('%.0f', wait), '0'} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', (next_tat - now) / 1000 + 1000))
return {1, string.format('%.0f', wait), string.format('%.0f', now + wait)}
"""


# --- the connection ------------------------------------------------------------------------------------------------
class RedisUnavailable(Exception):
    """Redis could not be used for one operation (internal: turned into the configured behaviour)."""

    def __init__(self, operation: str, error: BaseException) -> None:
        super().__init__(f"{operation}: {type(error).__name__}")
        self.operation = operation
        self.error_type = type(error).__name__


class _Redis:
    """One Redis client per event loop (redis.asyncio connections belong to the loop that opened them), the
    scripts, round-trip accounting, and the down/up state shared by the limiter's calls."""

    def __init__(
        self,
        url: str,
        limiter: str,
        *,
        connect_timeout_s: float,
        socket_timeout_s: float,
        retry_redis_s: float,
    ) -> None:
        self._url = url  # never logged, never in a message: it may carry a password
        self._limiter = limiter
        self._connect_timeout_s = connect_timeout_s
        self._socket_timeout_s = socket_timeout_s
        self.retry_redis_s = retry_redis_s
        # One retry (no back-off) recovers a pooled connection that went stale; the guard bounds everything.
        self._guard_s = 2 * (connect_timeout_s + socket_timeout_s) + 0.5
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aioredis.Redis, dict[str, AsyncScript]]
        ] = weakref.WeakKeyDictionary()
        self.down_until = 0.0
        self.round_trips = 0
        self._trip_attributes: dict[str, dict[str, str]] = {}

    def client(self) -> tuple[aioredis.Redis, dict[str, AsyncScript]]:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = aioredis.Redis.from_url(
                self._url,
                socket_connect_timeout=self._connect_timeout_s,
                socket_timeout=self._socket_timeout_s,
                retry=RedisRetry(NoBackoff(), 1),
                health_check_interval=0,
            )
            entry = self._clients[loop] = (client, {})
        return entry

    @property
    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    async def run(self, script: str, keys: list[str], args: list[Any], operation: str) -> Any:
        """Run ``script`` atomically; any failure to use Redis becomes :class:`RedisUnavailable`."""
        client, scripts = self.client()
        registered = scripts.get(script)
        if registered is None:
            registered = scripts[script] = client.register_script(script)
        self.round_trips += 1
        attributes = self._trip_attributes.get(operation)
        if attributes is None:
            attributes = self._trip_attributes[operation] = {
                names.LIMITER_NAME: self._limiter,
                names.REDIS_OPERATION: operation,
            }
        instruments().add(names.REDIS_ROUND_TRIPS, 1, attributes)
        try:
            async with asyncio.timeout(self._guard_s):
                result = await registered(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._mark_down(operation, exc)
            raise RedisUnavailable(operation, exc) from exc
        if self.down_until:
            self.down_until = 0.0
            logger.info(
                "limiter %s: Redis is reachable again", self._limiter, extra={"limiter": self._limiter}
            )
        return result

    def _mark_down(self, operation: str, exc: BaseException) -> None:
        if not self.is_down:
            logger.warning(
                "limiter %s: Redis failed during %s (%s); not retrying it for %gs",
                self._limiter,
                operation,
                type(exc).__name__,
                self.retry_redis_s,
                extra={"limiter": self._limiter, "error_type": type(exc).__name__},
            )
        self.down_until = time.monotonic() + self.retry_redis_s

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._clients.pop(loop, None)
        if entry is not None:
            await entry[0].aclose()


def _check_common(
    redis_url: object, key: object, on_redis_error: object, timeouts: Mapping[str, object]
) -> tuple[str, str, OnRedisError]:
    if not isinstance(redis_url, str) or "://" not in redis_url:
        # The value itself is not echoed: it may carry a password.
        raise ConfigurationError("redis_url", "must be a redis:// (or rediss://, unix://) URL")
    check_name(key, "key")
    mode = check_choice(on_redis_error, "on_redis_error", _ON_REDIS_ERROR)
    for field, value in timeouts.items():
        check_positive(value, field)
    return redis_url, str(key), "fail" if mode == "fail" else "local"


def _count_unavailable(limiter: str, action: str, operation: str, error_type: str) -> None:
    attributes = {
        names.LIMITER_NAME: limiter,
        names.REDIS_ACTION: action,
        names.REDIS_OPERATION: operation,
        names.ERROR_TYPE: error_type,
    }
    instruments().add(names.REDIS_UNAVAILABLE, 1, attributes)
    trace.get_current_span().add_event(names.EVENT_REDIS_UNAVAILABLE, attributes)


async def _ping(connection: _Redis, limiter: str) -> None:
    try:
        await connection.run("return 1", [], [], "ping")
    except RedisUnavailable as exc:
        raise LimiterUnavailableError(limiter, exc.error_type) from None


_DOWN = "cool_down"  # error type reported for calls refused while Redis is considered down


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
        _, self.key, self.on_redis_error = _check_common(
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
        self._redis = _Redis(
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
        await _ping(self._redis, self._name)

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
                return self._unavailable(_DOWN, "acquire")
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
        _count_unavailable(self._name, self.on_redis_error, operation, error_type)
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


# --- the rate limit --------------------------------------------------------------------------------------------
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
        _, self.key, self.on_redis_error = _check_common(
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
        self._redis = _Redis(
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
        await _ping(self._redis, self._name)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def acquire(self, call: Call) -> float:
        """Reserve this call's moment and sleep until it; returns the seconds waited."""
        if self._redis.is_down:
            return await self._unavailable(call, _DOWN, "reserve")
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
        _count_unavailable(self._name, self.on_redis_error, operation, error_type)
        if self.on_redis_error == "fail":
            raise LimiterUnavailableError(self._name, error_type)
        return await self.fallback.acquire(call)

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        await self.acquire(call)
        return await call_next(call)
