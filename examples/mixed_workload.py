"""Mixed workload (the guide's "Mixed Workload" pattern): three sources with their own limits, one planner.

- ``internal``: a fast, reliable internal API, ``max_concurrency=30``;
- ``github``: a rate-limited MCP server, ``max_concurrency=10`` (an in-process fastmcp server here);
- ``openai``: an expensive API, ``max_concurrency=5`` to limit the spend rate.
The planner (``absolute_max_parallel=50``) asks for 40 + 20 + 10 calls in one hop; each source's peak is its own
limit, measured where the calls land. ~2 s, offline.

    python examples/mixed_workload.py
"""

from __future__ import annotations

import asyncio

from fastmcp import FastMCP

from penguiflow.demo.backends import HttpApiServer
from penguiflow.planner import ReactPlanner
from penguiflow.planner.llm.scripted import ScriptedLLM
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

github_server = FastMCP("github")
running = peak = 0


@github_server.tool
async def list_repos(org: str) -> list[str]:
    """List an organisation's repositories."""
    global running, peak
    running += 1
    peak = max(peak, running)
    try:
        await asyncio.sleep(0.1)
        return [f"{org}/a", f"{org}/b"]
    finally:
        running -= 1


async def main() -> None:
    async with HttpApiServer() as internal_api, HttpApiServer() as openai_api:
        # Fast, reliable internal API
        internal = ToolNode(
            config=ExternalToolConfig(
                name="internal", transport=TransportType.HTTP, connection=internal_api.url, max_concurrency=30
            ),
        )
        # Rate-limited external API
        github = ToolNode(
            config=ExternalToolConfig(
                name="github", transport=TransportType.MCP, connection=github_server, max_concurrency=10
            ),
        )
        # Expensive external API (costs per call)
        openai_tools = ToolNode(
            config=ExternalToolConfig(
                name="openai", transport=TransportType.HTTP, connection=openai_api.url, max_concurrency=5
            ),
        )
        async with internal, github, openai_tools:
            hop = (
                [("internal.slow", {"ms": 100})] * 40
                + [("github.list_repos", {"org": "penguiflow"})] * 20
                + [("openai.slow", {"ms": 100})] * 10
            )
            # Planner respects all limits
            planner = ReactPlanner(
                catalog=[*internal.get_tools(), *github.get_tools(), *openai_tools.get_tools()],
                llm=ScriptedLLM([hop, "done"]),
                absolute_max_parallel=50,
            )
            result = await planner.run("Gather everything for the quarterly review")
        peaks = {
            "internal": internal_api.stats.peak("slow"),
            "github": peak,
            "openai": openai_api.stats.peak("slow"),
        }
        print(f"{result.answer}: peaks per source {peaks} (limits 30, 10, 5)")
        assert peaks == {"internal": 30, "github": 10, "openai": 5}


if __name__ == "__main__":
    asyncio.run(main())
