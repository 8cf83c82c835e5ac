"""The OpenAI Agents SDK with penguiflow stacks, inside the SDK's own agent loop (``Runner.run``), its model a
local Chat Completions server on 127.0.0.1 (the real OpenAI client talks to it). The tools measure their own
concurrency; the 503-then-200 tool talks to a real HTTP server; the MCP server is a real stdio subprocess."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    FunctionTool,
    OpenAIChatCompletionsModel,
    Runner,
    TracingProcessor,
    function_tool,
    set_trace_processors,
)
from agents.exceptions import UserError
from agents.mcp import MCPServerStdio
from fastmcp import FastMCP
from openai import AsyncOpenAI
from opentelemetry import trace

from penguiflow.demo.backends.chat_completions import ChatCompletionsServer, Script, chat_completions_server
from penguiflow.errors import ToolTimeoutError
from penguiflow.integrations._catalog import function_name
from penguiflow.integrations.openai_agents import function_tools, wrap_function_tool, wrap_mcp_server
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit, Retry, RetryPolicy, Timeout
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from tests.support import otel
from tests.support.scripted_http import Reply, ScriptedServer, scripted_server
from tests.support.tool_probe import BackoffProbe, Probe, unique_name

tracer = trace.get_tracer("tests.openai_agents")
PROBE_SERVER = Path(__file__).with_name("probe_mcp_server.py")


class SdkSpans(TracingProcessor):
    """The SDK's own trace, kept in memory (and not exported to OpenAI)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_trace_start(self, trace: Any) -> None: ...
    def on_trace_end(self, trace: Any) -> None: ...
    def on_span_start(self, span: Any) -> None: ...

    def on_span_end(self, span: Any) -> None:
        self.spans.append(span)

    def shutdown(self) -> None: ...
    def force_flush(self) -> None: ...

    def function_spans(self, name: str) -> list[Any]:
        return [
            s
            for s in self.spans
            if type(s.span_data).__name__ == "FunctionSpanData" and s.span_data.name == name
        ]


SDK = SdkSpans()
set_trace_processors([SDK])


def fan_out(name: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"i": i}) for i in range(count)]


def agent_on(server: ChatCompletionsServer, **kwargs: Any) -> Agent[Any]:
    client = AsyncOpenAI(base_url=server.url, api_key="sk-test-not-real", max_retries=0)
    return Agent(
        name="tester",
        instructions="Use the tools.",
        model=OpenAIChatCompletionsModel(model="test-model", openai_client=client),
        **kwargs,
    )


def probed_tool(name: str, probe: Probe) -> FunctionTool:
    async def work(i: int) -> int:
        """Does one unit of work."""
        async with probe:
            return i

    return function_tool(work, name_override=name)


def outcomes(name: str, outcome: str) -> int:
    return otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: outcome})


def tool_spans(name: str) -> list[Any]:
    return [s for s in otel.spans(f"execute_tool {name}") if s.instrumentation_scope.name == "penguiflow"]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


async def run(script: Script, **agent: Any) -> tuple[Any, ChatCompletionsServer]:
    with chat_completions_server(script) as model:
        result = await Runner.run(agent_on(model, **agent), "go")
    return result, model


async def test_without_penguiflow_the_sdk_runs_the_whole_fan_out_at_once() -> None:
    name = unique_name("unbounded")
    probe = Probe(gate=4)
    await run([fan_out(name, 20), "done"], tools=[probed_tool(name, probe)])
    assert probe.calls == 20
    assert probe.peak >= 4


async def test_a_limit_of_3_holds_over_a_fan_out_of_20(spans: Any) -> None:
    name = unique_name("fan")
    probe = Probe(gate=3)
    tool = wrap_function_tool(
        probed_tool(name, probe), Retry(RetryPolicy()), ConcurrencyLimit(3, name=name), Timeout(10)
    )
    with tracer.start_as_current_span("agent run") as root:
        result, model = await run([fan_out(name, 20), "done"], tools=[tool])

    assert result.final_output == "done"
    assert sorted(int(m["content"]) for m in model.tool_results()) == list(range(20))
    assert probe.calls == 20
    assert probe.peak == 3
    ours = tool_spans(name)
    assert len(ours) == 20
    assert {s.attributes[names.GEN_AI_TOOL_CALL_ID] for s in ours} == {f"call_0_{k}" for k in range(20)}
    assert {s.context.trace_id for s in ours} == {root.get_span_context().trace_id}
    # The SDK's own trace (not OpenTelemetry) has one function span per call too: nothing doubled, nothing lost.
    assert len(SDK.function_spans(name)) == 20
    assert outcomes(name, "success") == 20
    assert otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name}) == 20


async def test_503_then_200_succeeds_on_attempt_2_and_back_off_holds_no_slot(server: ScriptedServer) -> None:
    flaky, steady = unique_name("flaky"), unique_name("steady")
    url = server.script("/flaky", Reply(503, "busy", {"Retry-After": "0"}), Reply(200, "fresh data"))
    backoff = BackoffProbe()
    seen_by_other: list[int] = []
    limiter = ConcurrencyLimit(1, name=unique_name("one_slot"))
    retry = Retry(RetryPolicy(max_attempts=3), sleep=backoff.sleep)

    async def fetch(i: int) -> str:
        """Fetches."""
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.text

    async def other(i: int) -> str:
        """Answers."""
        seen_by_other.append(server.hits("/flaky"))
        backoff.other_done.set()
        return "steady"

    tools = [
        wrap_function_tool(function_tool(fetch, name_override=flaky), retry, limiter),
        wrap_function_tool(function_tool(other, name_override=steady), retry, limiter),
    ]
    result, model = await run([[*fan_out(flaky, 1), *fan_out(steady, 1)], "done"], tools=tools)
    assert result.final_output == "done"
    assert sorted(m["content"] for m in model.tool_results()) == ["fresh data", "steady"]
    assert server.hits("/flaky") == 2
    # Limit 1: the other call ran between the two attempts, while the retrying call backed off — no slot held.
    assert backoff.backoffs == 1 and seen_by_other == [1]
    assert (
        otel.value(names.RETRY_ATTEMPTS, **{names.GEN_AI_TOOL_NAME: flaky, names.RETRY_REASON: "status_503"})
        == 1
    )
    assert outcomes(flaky, "success") == 1 and outcomes(steady, "success") == 1
    assert outcomes(flaky, "error") == 0


async def test_a_timeout_is_typed(spans: Any) -> None:
    name, strict = unique_name("stuck"), unique_name("stuck_strict")

    async def stuck(i: int) -> int:
        """Never answers in time."""
        await asyncio.sleep(30)
        return i

    layers = (Retry(RetryPolicy(max_attempts=1)), Timeout(0.2))
    # The tool's own failure policy (the SDK default) still applies after the stack: the model is told.
    result, model = await run(
        [fan_out(name, 1), "done"],
        tools=[wrap_function_tool(function_tool(stuck, name_override=name), *layers)],
    )
    assert result.final_output == "done"
    assert [m["content"] for m in model.tool_results()] == [
        "An error occurred while running the tool. Please try again."
    ]
    (span,) = tool_spans(name)
    assert span.attributes[names.ERROR_TYPE] == "ToolTimeoutError"
    assert span.attributes[names.OUTCOME] == "timeout"
    assert outcomes(name, "timeout") == 1

    # A tool made with failure_error_function=None fails the run: the SDK's UserError, over penguiflow's typed error.
    raw = function_tool(stuck, name_override=strict, failure_error_function=None)
    with pytest.raises(UserError) as raised:
        await run([fan_out(strict, 1), "done"], tools=[wrap_function_tool(raw, *layers)])
    assert isinstance(raised.value.__cause__, ToolTimeoutError)
    assert raised.value.__cause__.tool == strict
    assert outcomes(strict, "timeout") == 1


async def test_an_mcp_servers_tool_calls_go_through_the_stack() -> None:
    declared: dict[str, set[bool | None]] = {}

    async def record(call: Call, call_next: CallNext) -> Any:
        declared.setdefault(call.tool, set()).add(call.idempotent)
        return await call_next(call)

    source = unique_name("probe")
    stdio = MCPServerStdio(
        params={"command": sys.executable, "args": [str(PROBE_SERVER)]},
        cache_tools_list=True,
        name=source,
        # The SDK's read timeout (5 s by default) also bounds `initialize`, which waits for the server process
        # to import fastmcp: a loaded machine took longer than that. The calls' own bounds are the stack's.
        client_session_timeout_seconds=60,
    )
    async with wrap_mcp_server(stdio, record, ConcurrencyLimit(3, name=source)) as mcp_server:
        result, model = await run(
            [[*fan_out("lookup", 20), *fan_out("create", 2)], [("stats", {})], "done"],
            mcp_servers=[mcp_server],
        )
    assert result.final_output == "done"
    (stats_part,) = model.tool_results()[-1]["content"]  # MCP content goes back as content parts
    stats = json.loads(stats_part["text"])
    assert stats == {"peak": 3, "calls": 20}  # measured by the MCP server itself
    assert declared == {"lookup": {True}, "create": {False}, "stats": {False}}
    assert (
        otel.histogram_count(
            names.TOOL_DURATION,
            **{names.GEN_AI_TOOL_NAME: "lookup", names.TOOL_SOURCE: source, names.OUTCOME: "success"},
        )
        == 20
    )


async def test_a_tool_node_as_function_tools() -> None:
    probe = Probe(gate=3)
    mcp = FastMCP("catalog")

    @mcp.tool
    async def search(i: int) -> dict[str, Any]:
        """Searches."""
        async with probe:
            return {"hit": i}

    source = unique_name("docs")
    node = ToolNode(
        config=ExternalToolConfig(name=source, transport=TransportType.MCP, connection=mcp, max_concurrency=3)
    )
    async with node:
        tools = function_tools(node)
        assert [tool.name for tool in tools] == [function_name(f"{source}.search")]
        result, model = await run([fan_out(tools[0].name, 20), "done"], tools=tools)
    assert result.final_output == "done"
    assert sorted(json.loads(m["content"])["hit"] for m in model.tool_results()) == list(range(20))
    assert probe.calls == 20
    assert probe.peak == 3
    assert outcomes(f"{source}.search", "success") == 20
