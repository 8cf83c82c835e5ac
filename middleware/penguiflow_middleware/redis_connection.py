"""The Redis side of the Redis limits: one client per event loop, round-trip accounting, the down/up state, and
the checks and counters both limits share. The Redis URL never appears in a log line or a message (it may
hold a password)."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any, Literal

import redis.asyncio as aioredis
from opentelemetry import trace
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.validation import (
    check_choice,
    check_name,
    check_positive,
)
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import LimiterUnavailableError

__all__ = [
    "COOL_DOWN",
    "OnRedisError",
    "RedisConnection",
    "RedisUnavailable",
    "check_common",
    "count_unavailable",
    "logger",
    "ping",
]

logger = logging.getLogger("penguiflow_middleware.redis")

OnRedisError = Literal["fail", "local"]
_ON_REDIS_ERROR = ("fail", "local")


class RedisUnavailable(Exception):
    """Redis could not be used for one operation (internal: turned into the configured behaviour)."""

    def __init__(self, operation: str, error: BaseException) -> None:
        super().__init__(f"{operation}: {type(error).__name__}")
        self.operation = operation
        self.error_type = type(error).__name__


class RedisConnection:
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


def check_common(
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


def count_unavailable(limiter: str, action: str, operation: str, error_type: str) -> None:
    attributes = {
        names.LIMITER_NAME: limiter,
        names.REDIS_ACTION: action,
        names.REDIS_OPERATION: operation,
        names.ERROR_TYPE: error_type,
    }
    instruments().add(names.REDIS_UNAVAILABLE, 1, attributes)
    trace.get_current_span().add_event(names.EVENT_REDIS_UNAVAILABLE, attributes)


async def ping(connection: RedisConnection, limiter: str) -> None:
    try:
        await connection.run("return 1", [], [], "ping")
    except RedisUnavailable as exc:
        raise LimiterUnavailableError(limiter, exc.error_type) from None


COOL_DOWN = "cool_down"  # error type reported for calls refused while Redis is considered down
