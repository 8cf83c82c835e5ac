"""A FastMCP server that many agents share, with a penguiflow stack around every incoming tool call.

Two clients (in-process here; any MCP client over any transport works the same) send 12 calls each at once. The
server's ``search`` tool is limited to 4 whoever calls it, and each client to 3 of the server's slots; a call that
runs past 1 s times out and reaches its client as a tool error. The tool itself measures what it sees. ~1 s.

    python examples/integrations/fastmcp_server.py
"""

from __future__ import annotations

import asyncio
from collections import Counter

from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError

from penguiflow import log_flow_events
from penguiflow.integrations.fastmcp import PenguiflowMiddleware
from penguiflow.middleware import ConcurrencyLimit, Timeout

server = FastMCP("shared-search")
running: Counter[str] = Counter()
peaks: Counter[str] = Counter()


@server.tool
async def search(query: str, ctx: Context) -> str:
    """Search the index."""
    client = ctx.client_id or "anonymous"
    running["all"] += 1
    running[client] += 1
    peaks["all"] = max(peaks["all"], running["all"])
    peaks[client] = max(peaks[client], running[client])
    try:
        await asyncio.sleep(2 if query == "everything" else 0.05)
        return f"hits for {query}"
    finally:
        running["all"] -= 1
        running[client] -= 1


server.add_middleware(
    PenguiflowMiddleware(
        log_flow_events(),
        ConcurrencyLimit(16, name="server"),
        Timeout(1),
        tool_layers={"search": [ConcurrencyLimit(4, name="search")]},
        client_limit=3,
    )
)


async def main() -> None:
    async with Client(server) as client:

        async def ask(who: str, query: str) -> str:
            try:
                result = await client.call_tool("search", {"query": query}, meta={"client_id": who})
                return str(result.data)
            except ToolError as error:
                return f"error: {error}"

        answers = await asyncio.gather(
            *(ask(who, f"q{i}") for who in ("alice", "bob") for i in range(12)), ask("carol", "everything")
        )
    print(f"{sum(a.startswith('hits') for a in answers)} answers; carol's: {answers[-1]!r}")
    print(
        f"search peaked at {peaks['all']} at once (limit 4); alice at {peaks['alice']}, bob at {peaks['bob']} (3 each)"
    )
    assert peaks["all"] <= 4 and peaks["alice"] <= 3 and peaks["bob"] <= 3
    assert answers[-1].startswith("error:") and "timed out" in answers[-1]


if __name__ == "__main__":
    asyncio.run(main())
