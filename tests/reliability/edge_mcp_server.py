"""A stdio MCP server for the edge tests (``python edge_mcp_server.py``): a tool returning a result of any size,
a counter of the calls it served, and, at start, as much stderr as ``EDGE_STDERR_BYTES`` says — including the
value of its ``EDGE_SECRET`` environment variable, as a careless server prints its configuration."""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Any

from fastmcp import FastMCP

server: FastMCP[Any] = FastMCP("edge")
calls: Counter[str] = Counter()


@server.tool
def big(size: int) -> str:
    """A text of ``size`` characters."""
    calls["big"] += 1
    return "x" * size


@server.tool
def served() -> dict[str, int]:
    """How many calls of each tool this process served."""
    return dict(calls)


def _flood_stderr() -> None:
    total = int(os.environ.get("EDGE_STDERR_BYTES", "0"))
    if not total:
        return
    secret = os.environ.get("EDGE_SECRET", "")
    print(f"starting with token {secret}", file=sys.stderr, flush=True)
    line = ("noise " * 170 + "\n").encode()  # ~1 kB lines
    chunk = line * 1024
    written = 0
    while written < total:
        os.write(2, chunk)
        written += len(chunk)
    print(f"done flooding; token again: {secret}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    _flood_stderr()
    server.run(show_banner=False)
