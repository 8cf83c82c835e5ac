"""The plug-in layers in a ToolNode's stack, the documented pattern: the default layers plus ours, inserted."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow.demo.backends import HttpApiServer
from penguiflow.middleware import ConcurrencyLimit, Retry
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow_middleware import CircuitBreaker, RateLimit, RedisConcurrencyLimit


def with_plugins(config: ExternalToolConfig, *, redis_url: str) -> list[Any]:
    layers = ToolNode.default_layers(config)
    retry = next(i for i, layer in enumerate(layers) if isinstance(layer, Retry))
    layers.insert(retry + 1, CircuitBreaker(5, 30.0, name=config.name))  # inside Retry: each attempt counts
    local = next(i for i, layer in enumerate(layers) if isinstance(layer, ConcurrencyLimit))
    # The shared limit next to (outside) the process's own, where Levels 1-3 are admitted: both hold while the
    # call runs, and a call waiting for the shared limit holds no planner slot.
    layers.insert(local, RedisConcurrencyLimit(redis_url, config.name, 3, lease_s=10, poll_s=0.01))
    layers.insert(local, RateLimit(200, name=f"{config.name}.rate"))
    return layers


async def test_a_tool_node_with_redis_limit_breaker_and_rate_limit(redis_server: Any) -> None:
    with HttpApiServer() as api:
        config = ExternalToolConfig(
            name="mw-node",
            transport=TransportType.HTTP,
            connection=api.url,
            max_concurrency=10,
            retry_policy=RetryPolicy(
                max_attempts=2, wait_exponential_min_s=0.01, wait_exponential_max_s=0.02
            ),
        )
        node = ToolNode(config, layers=with_plugins(config, redis_url=redis_server.url))
        assert [type(layer).__name__ for layer in node.layers][1:6] == [
            "Retry",
            "CircuitBreaker",
            "RateLimit",
            "RedisConcurrencyLimit",
            "ConcurrencyLimit",
        ]
        assert isinstance(node.limiter, ConcurrencyLimit)
        async with node:
            results = await asyncio.gather(*(node.call("mw-node.slow", {"ms": 50}) for _ in range(12)))
        assert results == [{"slept_ms": 50}] * 12
        assert api.stats.peak("slow") == 3  # the Redis limit (3) bound the source, under its own 10
        redis_limit = node.layers[4]
        assert isinstance(redis_limit, RedisConcurrencyLimit)
        assert await redis_limit.snapshot() == {"holders": 0, "waiting": 0}
        await redis_limit.aclose()
