"""A fastmcp server (stdio) whose tool answers with what its request carried in ``_meta``: how the tests see
what penguiflow's client asks of a server. Run as ``python meta_mcp_server.py``."""

from __future__ import annotations

from typing import Any

from fastmcp import Context, FastMCP

server: FastMCP[Any] = FastMCP("meta")


@server.tool
async def request_meta(ctx: Context) -> dict[str, Any]:
    """The request's ``_meta`` keys, log level, client capabilities and client info; reports progress once and
    logs once at each level."""
    request = ctx.request_context
    meta = dict(request.meta or {}) if request is not None else {}
    await ctx.report_progress(1, 2, "half way")  # sent only when the request carried a progress token
    for level in ("debug", "info", "warning", "error"):
        await ctx.log(f"a {level} line", level=level)  # sent only at or above the requested level
    return {
        "keys": sorted(meta),
        "log_level": meta.get("io.modelcontextprotocol/logLevel"),
        "capabilities": meta.get("io.modelcontextprotocol/clientCapabilities"),
        "client_info": meta.get("io.modelcontextprotocol/clientInfo"),
    }


if __name__ == "__main__":
    server.run(show_banner=False)
