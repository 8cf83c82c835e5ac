"""Debug mode (the guide's "Troubleshooting → Debug Mode"): ``planning_hints={"max_parallel": 1}``.

The same hop of 6 calls runs first with the planner's full parallelism, then strictly one at a time (Level 2),
which is what you want when isolating a failing tool. The server measures its own peak. ~2 s, offline.

    python examples/debug_mode.py
"""

from __future__ import annotations

import asyncio
import time

from penguiflow.demo.backends import HttpApiServer
from penguiflow.planner import ReactPlanner
from penguiflow.planner.llm.scripted import ScriptedLLM
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

HOP = [("api.slow", {"ms": 100})] * 6


async def main() -> None:
    async with (
        HttpApiServer() as api,
        ToolNode(ExternalToolConfig(name="api", transport=TransportType.HTTP, connection=api.url)) as node,
    ):
        for hints in (None, {"max_parallel": 1}):
            api.stats.reset()
            planner = ReactPlanner(catalog=node.get_tools(), llm=ScriptedLLM([HOP, "done"]))
            start = time.perf_counter()
            await planner.run("Debug this query", planning_hints=hints)
            elapsed = time.perf_counter() - start
            print(f"planning_hints={hints}: 6 calls in {elapsed:.2f}s, server peak {api.stats.peak('slow')}")
        assert api.stats.peak("slow") == 1


if __name__ == "__main__":
    asyncio.run(main())
