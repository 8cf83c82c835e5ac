"""A real fastmcp server standing in for a GitHub-like SaaS, measuring the concurrency that reaches it.

The demo, the tests and the benchmarks run it as a stdio subprocess (``python -m
penguiflow.demo.backends.mcp_server``, see :func:`command`) or in-process (:func:`build_server`). Its tools sleep
a configurable time; ``stats`` reports, server side, how many tool executions are running now, the peak, the
call counts and the server's pid — the ground truth that a client-side limit is enforced, and a way to kill it.

Environment of the subprocess:

- ``PENGUIFLOW_MCP_DELAY_S``: seconds each SaaS tool sleeps (default 0.05).
- ``PENGUIFLOW_MCP_NAME``: the server's name (default ``github``).
- ``PENGUIFLOW_MCP_PEAK_FILE``: when set, the server appends a line ``"<pid> <peak>"`` to this file each time its
  peak concurrency rises (and ``"<pid> 0"`` at start), so the peak of a server that is killed is not lost with it.
- ``PENGUIFLOW_MCP_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: when set, an OpenTelemetry SDK exports the
  server's own fastmcp spans over OTLP/HTTP (``{endpoint}/v1/traces``), so they join the caller's trace;
  ``OTEL_SERVICE_NAME`` names the service (default ``penguiflow-mcp-server``). Unset: no SDK, no export.

stdout carries the MCP protocol: nothing else may be printed there; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shlex
import sys
from collections import Counter
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations

__all__ = ["DEFAULT_DELAY_S", "ServerStats", "build_server", "command", "main"]

DEFAULT_DELAY_S = 0.05
# What the tools declare about re-running them, as a real server would: the client re-sends a call whose fate
# is unknown (a timeout, a lost connection) only for these; create_issue, declaring nothing, is never re-sent.
READ_ONLY = ToolAnnotations(readOnlyHint=True)
IDEMPOTENT = ToolAnnotations(idempotentHint=True)
_log = logging.getLogger("penguiflow.demo.mcp_server")


class ServerStats:
    """Tool executions as the server saw them. One event loop runs the tools, so no lock is needed."""

    def __init__(self, peak_file: str | None = None) -> None:
        self.current = 0
        self.peak = 0
        self.calls: Counter[str] = Counter()
        self.peak_file = peak_file
        self._record_peak()

    def _record_peak(self) -> None:
        if self.peak_file is not None:
            # One short O_APPEND write per line: lines of several servers never interleave.
            with open(self.peak_file, "a", encoding="ascii") as file:
                file.write(f"{os.getpid()} {self.peak}\n")

    def reset(self) -> None:
        self.current = 0
        self.peak = 0
        self.calls.clear()

    async def run(self, tool: str, seconds: float) -> None:
        """Count one execution of ``tool`` in while it sleeps ``seconds``."""
        self.calls[tool] += 1
        self.current += 1
        if self.current > self.peak:
            self.peak = self.current
            self._record_peak()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.current -= 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "peak": self.peak,
            "calls": dict(self.calls),
            "total": sum(self.calls.values()),
            "pid": os.getpid(),
        }


def build_server(
    name: str = "github", *, delay_s: float = DEFAULT_DELAY_S, peak_file: str | None = None
) -> FastMCP[Any]:
    """A fastmcp server with GitHub-like tools (each sleeps ``delay_s``), ``slow``, ``fail``, ``stats`` and
    ``reset_stats``. The stats live on ``server.stats`` too, for in-process use. ``peak_file``: see
    ``PENGUIFLOW_MCP_PEAK_FILE`` in the module docstring."""
    server: FastMCP[Any] = FastMCP(name)
    stats = ServerStats(peak_file)
    server.stats = stats  # type: ignore[attr-defined]

    @server.tool
    async def create_issue(repo: str, title: str, body: str = "") -> dict[str, Any]:
        """Open an issue in ``repo`` (owner/name) and return it."""
        await stats.run("create_issue", delay_s)
        return {
            "repo": repo,
            "number": stats.calls["create_issue"],
            "title": title,
            "body": body,
            "state": "open",
        }

    @server.tool(annotations=READ_ONLY)
    async def list_repos(org: str, limit: int = 5) -> list[dict[str, Any]]:
        """The repositories of organisation ``org``."""
        await stats.run("list_repos", delay_s)
        return [{"full_name": f"{org}/repo-{i}", "stars": 10 * i} for i in range(max(0, min(limit, 50)))]

    @server.tool(annotations=READ_ONLY)
    async def get_user(username: str) -> dict[str, Any]:
        """The public profile of ``username``."""
        await stats.run("get_user", delay_s)
        return {"login": username, "name": username.title(), "public_repos": len(username)}

    @server.tool(annotations=READ_ONLY)
    async def search_code(query: str, limit: int = 3) -> list[dict[str, Any]]:
        """Code search: files matching ``query``."""
        await stats.run("search_code", delay_s)
        return [{"path": f"src/{query}_{i}.py", "line": i + 1} for i in range(max(0, min(limit, 50)))]

    @server.tool(annotations=READ_ONLY)
    async def slow(seconds: float = 1.0) -> str:
        """Sleep ``seconds`` (at most 60), then answer."""
        await stats.run("slow", min(max(seconds, 0.0), 60.0))
        return f"slept {seconds:g}s"

    @server.tool(annotations=READ_ONLY)
    async def fail(message: str = "boom") -> str:
        """Always fails with ``message`` (an MCP result with isError)."""
        await stats.run("fail", 0.0)
        raise ToolError(message)

    @server.tool(name="stats", annotations=READ_ONLY)
    def stats_tool() -> dict[str, Any]:
        """Server-side tool executions: current and peak concurrency, calls per tool, and the server's pid."""
        return stats.snapshot()

    @server.tool(annotations=IDEMPOTENT)
    def reset_stats() -> dict[str, Any]:
        """Zero the peak and the counters (the current count is kept: calls may be running)."""
        current = stats.current
        stats.reset()
        stats.current = stats.peak = current
        return stats.snapshot()

    return server


def command() -> str:
    """The command line that starts this server as a stdio subprocess with the running interpreter."""
    return f"{shlex.quote(sys.executable)} -m penguiflow.demo.backends.mcp_server"


def _configure_tracing() -> None:
    """Export the server's spans over OTLP/HTTP when an endpoint is configured (this process is an
    application, so installing the global provider is its own business)."""
    endpoint = os.environ.get("PENGUIFLOW_MCP_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from penguiflow.telemetry.export import drop_pending_if_unreachable, otlp_span_processor

    service = os.environ.get("OTEL_SERVICE_NAME") or "penguiflow-mcp-server"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # Batched, never synchronous: with a collector down, a span exported in the tool's own thread made every
    # call wait out the exporter's retries. A short batch delay, because the process may be stopped at any
    # moment (it flushes what is left when it exits).
    provider.add_span_processor(otlp_span_processor(endpoint, schedule_delay_s=0.2))
    trace.set_tracer_provider(provider)
    atexit.register(drop_pending_if_unreachable)  # after the provider's own exit hook: runs before it


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # stdout is the protocol
    logging.getLogger("fastmcp").setLevel(logging.WARNING)  # no "Starting MCP server" line on every start
    _configure_tracing()
    delay_s = float(os.environ.get("PENGUIFLOW_MCP_DELAY_S", DEFAULT_DELAY_S))
    server = build_server(
        os.environ.get("PENGUIFLOW_MCP_NAME", "github"),
        delay_s=delay_s,
        peak_file=os.environ.get("PENGUIFLOW_MCP_PEAK_FILE") or None,
    )
    server.run(show_banner=False)


if __name__ == "__main__":
    main()
