"""The stdio MCP server of ``benchmarks/peers.py``: every peer's client starts this same script, with the same
interpreter (the one running ``peers.py``), so the server side is identical whoever calls it.

    python peers_server.py STATS_FILE

Tools: ``echo(text)`` returns its argument; ``sleep(ms)`` sleeps and counts how many run at once;
``stats()`` writes what the server saw since the previous ``stats()`` — calls, peak concurrency and its own
CPU seconds — to STATS_FILE as JSON, then starts counting afresh. A file, not the tool's result, because every
peer returns results in its own shape, and the driver wants one way to read them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from fastmcp import FastMCP

STATS_FILE = sys.argv[1]
app = FastMCP("peers")
seen = {"calls": 0, "running": 0, "peak": 0, "cpu_s": time.process_time()}


@app.tool
def echo(text: str) -> str:
    """Return ``text``."""
    seen["calls"] += 1
    return text


@app.tool
async def sleep(ms: int) -> int:
    """Sleep ``ms`` milliseconds."""
    seen["calls"] += 1
    seen["running"] += 1
    seen["peak"] = max(seen["peak"], seen["running"])
    try:
        await asyncio.sleep(ms / 1000)
    finally:
        seen["running"] -= 1
    return ms


@app.tool
def stats() -> str:
    """Write the counts since the last call to the stats file and reset them."""
    now = time.process_time()
    report = {"calls": seen["calls"], "peak": seen["peak"], "cpu_s": now - seen["cpu_s"]}
    with open(STATS_FILE, "w") as out:
        json.dump(report, out)
    seen.update(calls=0, peak=seen["running"], cpu_s=now)
    return "ok"


if __name__ == "__main__":
    app.run(show_banner=False, log_level="WARNING")
