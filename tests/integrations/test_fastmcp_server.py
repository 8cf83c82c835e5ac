"""The FastMCP server middleware on real servers: 4 client *processes* over streamable HTTP against one server,
in-process clients for the per-client limit, a real HTTP upstream for the server-side retry. The tools measure
their own concurrency on the server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from opentelemetry import trace

from penguiflow.integrations.fastmcp import PenguiflowMiddleware
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout, log_flow_events
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.asgi_server import serve_asgi
from tests.support.scripted_http import Reply, ScriptedServer, scripted_server
from tests.support.tool_probe import Probe, unique_name

ROOT = Path(__file__).resolve().parents[2]
LOAD_CLIENT = Path(__file__).with_name("mcp_load_client.py")


def outcomes(name: str, outcome: str, **match: Any) -> int:
    return otel.histogram_count(
        names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: outcome}, **match
    )


def server_spans(tool: str) -> list[Any]:
    return [s for s in otel.spans(f"execute_tool {tool}") if s.instrumentation_scope.name == "penguiflow"]


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


@pytest.mark.slow
def test_40_calls_from_4_client_processes_never_run_more_than_5_at_once(spans: Any) -> None:
    """4 processes × 10 concurrent calls; the tool is limited to 5 by the server's middleware. The tool measures
    its peak (it waits until 5 run at once, so the limit is reached whatever the load); every server span
    descends from a span of one of the clients."""
    probe = Probe(gate=5, hold_s=0.02, patience_s=20)
    server = FastMCP(unique_name("shared"))
    tool = unique_name("work")

    @server.tool(name=tool)
    async def work(i: int) -> int:
        async with probe:
            return i

    server.add_middleware(
        PenguiflowMiddleware(log_flow_events(), tool_layers={tool: [ConcurrencyLimit(5, name=tool)]})
    )
    with serve_asgi(server.http_app()) as base:
        clients = [
            subprocess.Popen(
                [sys.executable, str(LOAD_CLIENT), f"{base}/mcp", tool, "10"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        try:
            for client in clients:  # all connected before any call: the 40 calls really overlap
                assert client.stdout is not None and client.stdout.readline().strip() == "ready"
            for client in clients:
                assert client.stdin is not None
                client.stdin.write("go\n")
                client.stdin.flush()
            reports = [json.loads(client.communicate(timeout=120)[0]) for client in clients]
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
    assert [sorted(report["results"]) for report in reports] == [list(range(10))] * 4
    assert probe.calls == 40
    assert probe.peak == 5

    client_spans = {(trace_id, span_id) for report in reports for trace_id, span_id, _name in report["spans"]}
    ours = server_spans(tool)
    assert len(ours) == 40
    # Up the server's own spans (fastmcp's ``tools/call`` SERVER span is the parent of ours) to the remote
    # parent: a span of one of the client processes, received through the ``traceparent`` in ``_meta``.
    local = {s.context.span_id: s for s in otel.SPANS.get_finished_spans()}
    for span in ours:
        ancestor = span
        while ancestor.parent is not None and ancestor.parent.span_id in local:
            ancestor = local[ancestor.parent.span_id]
        assert ancestor.parent is not None and ancestor.parent.is_remote
        remote = (format(ancestor.parent.trace_id, "032x"), format(ancestor.parent.span_id, "016x"))
        assert remote in client_spans, "a server span did not join its client's trace"
    assert len({span.context.trace_id for span in ours}) == 40  # each client call is its own trace
    assert outcomes(tool, "success") == 40
    # The server recorded each call that queued behind the limit of 5: one queue_wait event and one wait sample
    # each, and every call admitted once. (How many queue depends on how fast 4 processes send, i.e. on load.)
    waits = otel.span_events(names.EVENT_QUEUE_WAIT, **{names.LIMITER_NAME: tool})
    assert len(waits) == otel.histogram_count(names.LIMITER_WAIT, **{names.LIMITER_NAME: tool})
    assert otel.value(names.LIMITER_ADMITTED, **{names.LIMITER_NAME: tool}) == 40


async def test_a_per_client_limit_holds_each_client_to_its_own_share() -> None:
    server = FastMCP(unique_name("per_client"))
    tool = unique_name("work")
    probes = {"alice": Probe(gate=2, patience_s=10), "bob": Probe(gate=2, patience_s=10)}
    both = Probe(gate=4, patience_s=10)

    @server.tool(name=tool)
    async def work(i: int, ctx: Context) -> int:
        assert ctx.client_id is not None
        async with probes[ctx.client_id], both:
            return i

    middleware = PenguiflowMiddleware(ConcurrencyLimit(10, name=unique_name("server")), client_limit=2)
    server.add_middleware(middleware)
    async with Client(server) as client:
        calls = [
            client.call_tool(tool, {"i": i}, meta={"client_id": who})
            for who in ("alice", "bob")
            for i in range(8)
        ]
        results = await asyncio.gather(*calls)
    assert sorted(r.data for r in results) == sorted([*range(8), *range(8)])
    assert probes["alice"].peak == 2 and probes["bob"].peak == 2  # each client held to 2 ...
    assert both.peak == 4  # ... while the two ran side by side
    assert middleware.per_client is not None and middleware.per_client.idle()


async def test_a_server_side_timeout_is_typed_and_reaches_the_client_as_a_tool_error() -> None:
    server = FastMCP(unique_name("slow"))
    tool = unique_name("stuck")

    @server.tool(name=tool)
    async def stuck() -> str:
        await asyncio.sleep(30)
        return "never"

    server.add_middleware(PenguiflowMiddleware(Retry(RetryPolicy(max_attempts=1)), Timeout(0.2)))
    async with Client(server) as client:
        with pytest.raises(ToolError, match=r"attempt timed out after 0\.2s"):
            await client.call_tool(tool, {})
    (span,) = server_spans(tool)
    assert span.attributes[names.ERROR_TYPE] == "ToolTimeoutError"
    assert span.attributes[names.OUTCOME] == "timeout"
    assert outcomes(tool, "timeout") == 1


async def test_an_upstream_503_is_retried_on_the_server(upstream: ScriptedServer) -> None:
    """fastmcp wraps the tool's ``httpx.HTTPStatusError`` in its ``ToolError``; the middleware's classifier reads
    the cause, so ``Retry`` sees a 503 and the second attempt gets the 200."""
    url = upstream.script("/api", Reply(503, "busy", {"Retry-After": "0"}), Reply(200, "fresh"))
    server = FastMCP(unique_name("proxy"))
    tool = unique_name("fetch")

    @server.tool(name=tool, annotations=ToolAnnotations(read_only_hint=True))
    async def fetch() -> str:
        async with httpx.AsyncClient() as http:
            response = await http.get(url)
            response.raise_for_status()
            return response.text

    server.add_middleware(
        PenguiflowMiddleware(Retry(RetryPolicy(max_attempts=3, wait_exponential_min_s=0.01)))
    )
    async with Client(server) as client:
        result = await client.call_tool(tool, {})
    assert result.data == "fresh"
    assert upstream.hits("/api") == 2
    assert (
        otel.value(names.RETRY_ATTEMPTS, **{names.GEN_AI_TOOL_NAME: tool, names.RETRY_REASON: "status_503"})
        == 1
    )
    assert outcomes(tool, "success") == 1


async def test_with_fastmcp_telemetry_off_the_middleware_joins_the_callers_trace_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``FASTMCP_TELEMETRY_MODE=off``: fastmcp neither opens a server span nor reads ``_meta``; the middleware
    reads the ``traceparent`` there and the ``execute_tool`` span joins the caller's trace all the same."""
    import fastmcp

    monkeypatch.setattr(fastmcp.settings, "telemetry_mode", "off")
    server = FastMCP(unique_name("quiet"))
    tool = unique_name("echo")

    @server.tool(name=tool)
    async def echo(i: int) -> int:
        return i

    server.add_middleware(PenguiflowMiddleware())
    with serve_asgi(server.http_app()) as base:  # over HTTP: no context leaks from the client's task
        async with Client(f"{base}/mcp") as client:
            with trace.get_tracer("tests.caller").start_as_current_span("caller") as caller:
                result = await client.call_tool(tool, {"i": 3})
    assert result.data == 3
    (span,) = server_spans(tool)
    # The remote parent is the caller's MCP client span (the mcp SDK's own, which put its traceparent in _meta),
    # in the caller's trace.
    assert span.parent is not None and span.parent.is_remote
    assert span.context.trace_id == caller.get_span_context().trace_id
    (sent,) = [
        s for s in otel.spans(f"MCP send tools/call {tool}") if s.context.span_id == span.parent.span_id
    ]
    assert sent.parent is not None and sent.parent.span_id == caller.get_span_context().span_id
