"""An MCP server (stdio) that completes ``initialize`` but never answers ``tools/list``: what ``connect()``'s bound
is for. Run as ``python hanging_mcp_server.py``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.middleware import Middleware


class NeverList(Middleware):
    async def on_list_tools(self, context: Any, call_next: Any) -> Any:
        await asyncio.sleep(3600)
        return await call_next(context)


server: FastMCP[Any] = FastMCP("hanging", middleware=[NeverList()])


@server.tool
def ping() -> str:
    """Never listed."""
    return "pong"


if __name__ == "__main__":
    server.run(show_banner=False)
