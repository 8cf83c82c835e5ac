"""Sequential-only processing (the guide's "Sequential-Only Processing" pattern).

A legacy service that must never see two requests at once: ``max_concurrency=1``. Ten concurrent calls run one
after the other; the server measures its own peak concurrency. Runs against a local HTTP API in ~1 s.

    python examples/sequential_only.py
"""

from __future__ import annotations

import asyncio
import time

from penguiflow.demo.backends import HttpApiServer
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType


async def main() -> None:
    async with HttpApiServer() as api:
        legacy_api = ToolNode(
            config=ExternalToolConfig(
                name="legacy",
                transport=TransportType.HTTP,
                connection=api.url,  # the guide: "https://old-system.internal/api"
                max_concurrency=1,  # Strictly sequential
                timeout_s=120,  # Legacy systems may be slow
            ),
        )
        async with legacy_api:
            start = time.perf_counter()
            await asyncio.gather(*(legacy_api.call("legacy.slow", {"ms": 80}) for _ in range(10)))
            elapsed = time.perf_counter() - start
        peak = api.stats.peak("slow")
        print(
            f"10 concurrent calls of 80 ms took {elapsed:.2f}s; the server never saw more than {peak} at once"
        )
        assert peak == 1


if __name__ == "__main__":
    asyncio.run(main())
