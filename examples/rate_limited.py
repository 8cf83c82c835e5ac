"""Rate-limited external APIs (the guide's "Rate-Limited External APIs" pattern).

A source that answers 429 with ``Retry-After`` when more than 2 requests run at once. ``max_concurrency=3`` is one
too many, so some calls are refused — and the guide's rate-limit retry policy waits what the server asks
(Retry-After), holding no slot while it sleeps, then succeeds. Runs against a local HTTP API in ~3 s.

    python examples/rate_limited.py
"""

from __future__ import annotations

import asyncio
import logging
import time

from penguiflow.demo.backends import HttpApiServer
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    async with HttpApiServer(rate_limit_threshold=2, retry_after_s=1) as api:
        twitter = ToolNode(
            config=ExternalToolConfig(
                name="twitter",
                transport=TransportType.HTTP,
                connection=api.url,  # the guide: "https://api.twitter.com/.well-known/utcp.json"
                max_concurrency=3,  # Very limited (Twitter rate limits)
                retry_policy=RetryPolicy(
                    max_attempts=5,
                    wait_exponential_min_s=1.0,
                    wait_exponential_max_s=60.0,
                    retry_on_status=[429, 500, 502, 503, 504],
                ),
            ),
        )
        async with twitter:
            start = time.perf_counter()
            results = await asyncio.gather(
                *(twitter.call("twitter.rate_limited", {"ms": 200}) for _ in range(6)), return_exceptions=True
            )
            elapsed = time.perf_counter() - start
        failures = [r for r in results if isinstance(r, BaseException)]
        print(
            f"6 calls, max_concurrency=3: {6 - len(failures)} succeeded, {len(failures)} failed in {elapsed:.1f}s"
        )
        print(
            f"server saw {api.stats.count('rate_limited')} requests (429s retried after Retry-After: 1 s), "
            f"peak {api.stats.peak('rate_limited')} at once"
        )
        assert not failures, failures


if __name__ == "__main__":
    asyncio.run(main())
