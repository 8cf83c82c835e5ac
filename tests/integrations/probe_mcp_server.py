"""A FastMCP server over stdio for the Agents SDK test: ``lookup`` (read-only) measures how many of its calls run
at once — each waits until 3 do (or 5 s), so a limit of 3 is reached whatever the load — and ``create`` is an
unannotated tool; ``stats`` reports the peak and the call count."""

from __future__ import annotations

import asyncio
import time

from fastmcp import FastMCP
from mcp_types import ToolAnnotations

server = FastMCP("probe")
state = {"running": 0, "peak": 0, "calls": 0}
GATE = 3


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def lookup(i: int) -> str:
    """Looks something up."""
    state["running"] += 1
    state["calls"] += 1
    state["peak"] = max(state["peak"], state["running"])
    try:
        deadline = time.monotonic() + 5
        while state["peak"] < GATE and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        return f"found {i}"
    finally:
        state["running"] -= 1


@server.tool
async def create(i: int) -> str:
    """Creates something."""
    return f"created {i}"


@server.tool
async def stats() -> dict[str, int]:
    """The peak concurrency of lookup and its number of calls."""
    return {"peak": state["peak"], "calls": state["calls"]}


if __name__ == "__main__":
    server.run(show_banner=False)
