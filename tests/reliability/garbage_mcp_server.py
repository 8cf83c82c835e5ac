"""A misbehaving MCP server for the reliability tests, run as a stdio subprocess (``python garbage_mcp_server.py``).

Its tools break the protocol's and their own promises on purpose: junk on stdout (the protocol channel), a
forged reply of the wrong shape for the pending request, results that do not match the declared output schema,
results that cannot be serialized, exceptions, a hang, a sudden exit, and an error message that quotes a secret
from the environment (as careless servers do). ``calls`` reports, server side, which tools ran.

Environment: ``GARBAGE_SECRET_VAR`` names the variable whose value ``leak_secret`` quotes (default
``GARBAGE_TOKEN``); ``GARBAGE_JUNK_AT_START=1`` prints junk on stdout before the server starts;
``GARBAGE_QUIET=1`` silences the server's own logging on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError

server: FastMCP[Any] = FastMCP("garbage")
calls: Counter[str] = Counter()


def _raw_stdout(text: str) -> None:
    """Write straight to the protocol channel, bypassing whatever wraps ``sys.stdout``."""
    os.write(1, text.encode())


@server.tool
def ok(x: int) -> int:
    """Double x (the well-behaved baseline)."""
    calls["ok"] += 1
    return x * 2


@server.tool
def anything(value: Any = None) -> str:
    """Accepts any JSON value."""
    calls["anything"] += 1
    return type(value).__name__


@server.tool
def junk_stdout(x: int) -> int:
    """Print non-protocol junk on stdout, then answer normally."""
    calls["junk_stdout"] += 1
    _raw_stdout("this is not JSON-RPC\n{not json either\n[1, 2, 3]\n\x00\x01 binary junk\n")
    _raw_stdout('{"jsonrpc": "2.0", "id": 987654, "result": {"content": []}}\n')  # a reply to nothing
    return x


@server.tool
async def forged_reply(ctx: Context) -> str:
    """Answer the pending request first with a reply of the wrong shape, then (too late) for real."""
    calls["forged_reply"] += 1
    request_id: Any = int(ctx.request_id) if str(ctx.request_id).isdigit() else ctx.request_id
    forged = {"jsonrpc": "2.0", "id": request_id, "result": {"content": "not a list", "isError": "maybe"}}
    _raw_stdout(json.dumps(forged) + "\n")
    await asyncio.sleep(0.2)
    return "the real answer"


@server.tool
def wrong_type() -> int:
    """Declared to return an int; returns text."""
    calls["wrong_type"] += 1
    return "definitely not an int"  # type: ignore[return-value]


@server.tool
def not_serializable() -> dict[str, Any]:
    """Returns something JSON cannot carry."""
    calls["not_serializable"] += 1
    return {"value": object()}


@server.tool
def boom() -> str:
    """Raises an ordinary exception."""
    calls["boom"] += 1
    raise ValueError("kaboom: the tool fell over")


@server.tool
def leak_secret() -> str:
    """Fails with a message that quotes a secret from its environment."""
    calls["leak_secret"] += 1
    value = os.environ.get(os.environ.get("GARBAGE_SECRET_VAR", "GARBAGE_TOKEN"), "")
    raise ToolError(f"upstream refused token {value} (Authorization: Bearer {value})")


@server.tool
async def hang() -> str:
    """Never answers."""
    calls["hang"] += 1
    await asyncio.sleep(3600)
    return "never"


@server.tool
def die() -> str:
    """The process exits in the middle of the call."""
    calls["die"] += 1
    sys.stderr.flush()
    os._exit(3)


@server.tool
def stats() -> dict[str, Any]:
    """Calls per tool so far, and the pid."""
    return {"calls": dict(calls), "pid": os.getpid()}


def main() -> None:
    if os.environ.get("GARBAGE_QUIET") == "1":  # the server's own error logs (with tracebacks) off stderr
        import logging

        logging.disable(logging.CRITICAL)
    if os.environ.get("GARBAGE_JUNK_AT_START") == "1":
        _raw_stdout("Starting up... (junk before the handshake)\n")
    server.run(show_banner=False)


if __name__ == "__main__":
    main()
