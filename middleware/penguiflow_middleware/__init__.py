"""Plug-in layers for penguiflow, written only against its public API (the way your own layer would be).

- :class:`CircuitBreaker` — stop calling a failing backend, probe it before trusting it again.
- :class:`RateLimit` — a local token bucket per key (``rate`` calls per ``per`` seconds), FIFO, cancellation-safe.
- :class:`RedisConcurrencyLimit`, :class:`RedisRateLimit` — the same limits shared by every process on one
  Redis (needs the ``redis`` extra: ``pip install 'penguiflow-middleware[redis]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from penguiflow_middleware.circuit_breaker import CircuitBreaker, counts_as_failure
from penguiflow_middleware.errors import CircuitOpenError, LimiterUnavailableError, RateLimitExceededError
from penguiflow_middleware.rate_limit import RateLimit

if TYPE_CHECKING:
    from penguiflow_middleware.redis_limits import Permit, RedisConcurrencyLimit, RedisRateLimit

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "LimiterUnavailableError",
    "Permit",
    "RateLimit",
    "RateLimitExceededError",
    "RedisConcurrencyLimit",
    "RedisRateLimit",
    "counts_as_failure",
]

_REDIS = {"Permit", "RedisConcurrencyLimit", "RedisRateLimit"}


def __getattr__(name: str) -> Any:
    # The Redis layers import redis, an optional dependency: load them only when asked for.
    if name in _REDIS:
        from penguiflow_middleware import redis_limits

        return getattr(redis_limits, name)
    raise AttributeError(name)
