"""Retry policies (the guide's "Retry Configuration"): fast retry, rate-limit retry, no retry.

- ``fast_retry`` against an endpoint that fails with 503 twice: succeeds on attempt 3 after short back-offs.
- ``rate_limit_retry`` against an endpoint that answers 429 + ``Retry-After: 1``: waits what the server asks.
- ``no_retry`` against the same flaky endpoint: fails at once with the typed error.
Runs against a local HTTP API in ~3 s.

    python examples/retry_policies.py
"""

from __future__ import annotations

import asyncio
import logging
import time

from penguiflow.demo.backends import HttpApiServer
from penguiflow.errors import ToolServerError
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType

# Aggressive retry for transient failures
fast_retry = RetryPolicy(
    max_attempts=3,
    wait_exponential_min_s=0.1,
    wait_exponential_max_s=2.0,
    retry_on_status=[500, 502, 503, 504],  # Server errors only
)

# Conservative retry for rate limits
rate_limit_retry = RetryPolicy(
    max_attempts=5,
    wait_exponential_min_s=1.0,
    wait_exponential_max_s=60.0,
    retry_on_status=[429, 500, 502, 503, 504],  # Include rate limit
)

# No retry for critical operations
no_retry = RetryPolicy(
    max_attempts=1,
    retry_on_status=[],
)


def node(name: str, url: str, policy: RetryPolicy) -> ToolNode:
    return ToolNode(
        ExternalToolConfig(name=name, transport=TransportType.HTTP, connection=url, retry_policy=policy)
    )


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    async with HttpApiServer(rate_limit_threshold=1, retry_after_s=1) as api:
        async with node("fast", api.url, fast_retry) as fast:
            start = time.perf_counter()
            result = await fast.call("fast.flaky", {"key": "a", "failures": 2})
            print(f"fast_retry: {result} after {time.perf_counter() - start:.2f}s (two 503s retried)")
            assert result["attempt"] == 3

        async with node("limited", api.url, rate_limit_retry) as limited:
            start = time.perf_counter()
            # two at once against a threshold of 1: one gets 429 + Retry-After: 1 and comes back a second later
            await asyncio.gather(*(limited.call("limited.rate_limited", {"ms": 300}) for _ in range(2)))
            elapsed = time.perf_counter() - start
            print(f"rate_limit_retry: both calls succeeded in {elapsed:.2f}s (Retry-After honoured)")
            assert elapsed >= 0.9

        async with node("critical", api.url, no_retry) as critical:
            try:
                await critical.call("critical.flaky", {"key": "b", "failures": 1})
            except ToolServerError as exc:
                print(f"no_retry: failed at once with {type(exc).__name__} (status {exc.status_code})")
            else:
                raise AssertionError("no_retry should not have retried")


if __name__ == "__main__":
    asyncio.run(main())
