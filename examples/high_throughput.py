"""High-throughput processing (the guide's "High-Throughput Processing" pattern).

A reliable internal data API with ``max_concurrency=50`` and a planner at ``absolute_max_parallel=100``: one hop
of 120 calls runs 50 at a time against the source (the server measures it) while the planner's ceiling of 100 is
never the bottleneck. Runs against a local HTTP API in ~4 s.

    python examples/high_throughput.py
"""

from __future__ import annotations

import asyncio
import time

from penguiflow.demo.backends import HttpApiServer
from penguiflow.planner import ReactPlanner
from penguiflow.planner.llm.scripted import ScriptedLLM
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

CALLS = 120
# Long enough that 50 calls overlap even on a loaded 2-core machine (at load 8-9, 250 ms calls overlapped only
# 34 at a time: sending 50 requests took longer than one call).
CALL_MS = 1000


async def main() -> None:
    async with HttpApiServer() as api:
        data_api = ToolNode(
            config=ExternalToolConfig(
                name="data_api",
                transport=TransportType.HTTP,  # the guide's UTCP manual; here the local API's OpenAPI document
                connection=api.url,
                max_concurrency=50,  # High concurrency for internal service
                timeout_s=60,  # Longer timeout for batch operations
            ),
        )
        async with data_api:
            llm = ScriptedLLM([[("data_api.slow", {"ms": CALL_MS})] * CALLS, "processed the batch"])
            planner = ReactPlanner(catalog=data_api.get_tools(), llm=llm, absolute_max_parallel=100)
            start = time.perf_counter()
            result = await planner.run("Process today's batch")
            elapsed = time.perf_counter() - start
        peak = api.stats.peak("slow")
        print(
            f"{result.answer}: {CALLS} calls of {CALL_MS} ms in {elapsed:.2f}s, server peak {peak} at once (limit 50)"
        )
        assert peak <= 50, "the source limit was exceeded"
        assert peak >= 40, "the calls did not run in parallel up to the limit"


if __name__ == "__main__":
    asyncio.run(main())
