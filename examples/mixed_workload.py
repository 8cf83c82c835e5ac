"""Mixed workload (the guide's "Mixed Workload" pattern): three sources with their own limits, one planner.

- ``internal``: a fast, reliable internal API, ``max_concurrency=30``;
- ``github``: a rate-limited MCP server, ``max_concurrency=10`` (an in-process fastmcp server here);
- ``openai``: an expensive API, ``max_concurrency=5`` to limit the spend rate.
The planner (``absolute_max_parallel=50``) asks for 10 + 40 + 20 calls in one hop. Each source runs as many calls
at once as its own limit, counted by a small layer at its transport, and never more where the calls land (the
servers count them too). ~2 s, offline.

    python examples/mixed_workload.py
"""

from __future__ import annotations

import asyncio
import contextlib

from fastmcp import FastMCP

from penguiflow.demo.backends import HttpApiServer
from penguiflow.middleware import Call, CallNext
from penguiflow.planner import ReactPlanner
from penguiflow.planner.llm.scripted import ScriptedLLM
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

github_server = FastMCP("github")
running = peak = 0
ten_running = asyncio.Event()


@github_server.tool
async def list_repos(org: str) -> list[str]:
    """List an organisation's repositories."""
    global running, peak
    running += 1
    peak = max(peak, running)
    if running >= 10:
        ten_running.set()
    try:
        # Github's calls get their planner slots one by one as other calls finish: each holds on until ten
        # run at once (or 5 s went by), so the peak shows the limit however busy the machine is.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ten_running.wait(), 5)
        await asyncio.sleep(0.1)
        return [f"{org}/a", f"{org}/b"]
    finally:
        running -= 1


class InFlight:
    """A layer just outside a source's transport: how many of its calls run at once, at most."""

    def __init__(self) -> None:
        self.running = self.peak = 0

    async def __call__(self, call: Call, call_next: CallNext) -> object:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await call_next(call)
        finally:
            self.running -= 1


def node(config: ExternalToolConfig, meter: InFlight) -> ToolNode:
    return ToolNode(config, layers=[*ToolNode.default_layers(config), meter])


async def main() -> None:
    async with HttpApiServer() as internal_api, HttpApiServer() as openai_api:
        meters = {"internal": InFlight(), "github": InFlight(), "openai": InFlight()}
        # Fast, reliable internal API
        internal = node(
            ExternalToolConfig(
                name="internal", transport=TransportType.HTTP, connection=internal_api.url, max_concurrency=30
            ),
            meters["internal"],
        )
        # Rate-limited external API
        github = node(
            ExternalToolConfig(
                name="github", transport=TransportType.MCP, connection=github_server, max_concurrency=10
            ),
            meters["github"],
        )
        # Expensive external API (costs per call)
        openai_tools = node(
            ExternalToolConfig(
                name="openai", transport=TransportType.HTTP, connection=openai_api.url, max_concurrency=5
            ),
            meters["openai"],
        )
        async with internal, github, openai_tools:
            # The first 50 calls take the planner's 50 slots at once (openai and internal: each source runs its
            # limit and queues the rest); github's wait for planner slots to free up.
            hop = (
                [("openai.slow", {"ms": 100})] * 10
                + [("internal.slow", {"ms": 100})] * 40
                + [("github.list_repos", {"org": "penguiflow"})] * 20
            )
            # Planner respects all limits
            planner = ReactPlanner(
                catalog=[*internal.get_tools(), *github.get_tools(), *openai_tools.get_tools()],
                llm=ScriptedLLM([hop, "done"]),
                absolute_max_parallel=50,
            )
            result = await planner.run("Gather everything for the quarterly review")
        peaks = {source: meter.peak for source, meter in meters.items()}
        landed = {
            "internal": internal_api.stats.peak("slow"),
            "github": peak,
            "openai": openai_api.stats.peak("slow"),
        }
        print(
            f"{result.answer}: peak calls at once per source {peaks} (limits 30, 10, 5), at the servers {landed}"
        )
        limits = {"internal": 30, "github": 10, "openai": 5}
        assert peaks == limits
        # Where the calls land, never more than the limit (how many arrive together depends on the machine).
        assert all(landed[source] <= limit for source, limit in limits.items())
        assert landed["github"] == 10


if __name__ == "__main__":
    asyncio.run(main())
