"""Pydantic AI with penguiflow stacks, inside Pydantic AI's own agent loop, driven offline by its
``FunctionModel``; its OpenTelemetry instrumentation on, to show how the two span trees fit. The tools measure
their own concurrency; the 503-then-200 tool talks to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic_ai import Agent, FunctionToolset, Tool
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, RetryPromptPart, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from penguiflow.errors import ToolTimeoutError
from penguiflow.integrations._catalog import function_name
from penguiflow.integrations.pydantic_ai import catalog_toolset, wrap_toolset
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit, Retry, RetryPolicy, Timeout
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from tests.support import otel
from tests.support.scripted_http import Reply, ScriptedServer, scripted_server
from tests.support.tool_probe import BackoffProbe, Probe, unique_name

Calls = Sequence[tuple[str, dict[str, Any]]]


def scripted_model(*turns: Calls) -> FunctionModel:
    """Pydantic AI's FunctionModel: the n-th model request gets the n-th turn's tool calls (ids ``call_<n>_<k>``),
    then a final text."""
    seen: list[int] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        index = len(seen)
        seen.append(index)
        if index >= len(turns):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(
            parts=[
                ToolCallPart(tool, arguments, tool_call_id=f"call_{index}_{k}")
                for k, (tool, arguments) in enumerate(turns[index])
            ]
        )

    return FunctionModel(respond)


def fan_out(name: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"i": i}) for i in range(count)]


def probed_tool(name: str, probe: Probe) -> Tool[Any]:
    async def work(i: int) -> int:
        async with probe:
            return i

    return Tool(work, name=name, description="Does one unit of work.")


def outcomes(name: str, outcome: str) -> int:
    return otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: outcome})


def scoped(prefix: str, scope: str) -> list[Any]:
    return [s for s in otel.spans(prefix) if s.instrumentation_scope.name == scope]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


async def test_without_penguiflow_pydantic_ai_runs_the_whole_fan_out_at_once() -> None:
    name = unique_name("unbounded")
    probe = Probe(gate=4)
    agent = Agent(scripted_model(fan_out(name, 20)), toolsets=[FunctionToolset([probed_tool(name, probe)])])
    await agent.run("go")
    assert probe.calls == 20
    assert probe.peak >= 4


async def test_a_limit_of_3_holds_over_a_fan_out_of_20(spans: Any) -> None:
    name = unique_name("fan")
    probe = Probe(gate=3)
    toolset = wrap_toolset(
        FunctionToolset([probed_tool(name, probe)]),
        Retry(RetryPolicy()),
        ConcurrencyLimit(3, name=name),
        Timeout(10),
    )
    agent = Agent(scripted_model(fan_out(name, 20)), toolsets=[toolset], capabilities=[Instrumentation()])
    result = await agent.run("go")

    assert result.output == "done"
    assert probe.calls == 20
    assert probe.peak == 3
    ours = scoped(f"execute_tool {name}", "penguiflow")
    theirs = {s.context.span_id: s for s in scoped(f"execute_tool {name}", "pydantic-ai")}
    (run_span,) = scoped("invoke_agent", "pydantic-ai")
    assert len(ours) == 20 and len(theirs) == 20
    # One penguiflow span per call, each nested under Pydantic AI's span of the same call, in the run's trace.
    assert {s.attributes[names.GEN_AI_TOOL_CALL_ID] for s in ours} == {f"call_0_{k}" for k in range(20)}
    for span in ours:
        parent = theirs[span.parent.span_id]
        assert parent.attributes[names.GEN_AI_TOOL_CALL_ID] == span.attributes[names.GEN_AI_TOOL_CALL_ID]
        assert span.context.trace_id == run_span.context.trace_id
    assert outcomes(name, "success") == 20
    assert otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name}) == 20


async def test_503_then_200_succeeds_on_attempt_2_and_back_off_holds_no_slot(server: ScriptedServer) -> None:
    flaky, steady = unique_name("flaky"), unique_name("steady")
    url = server.script("/flaky", Reply(503, "busy", {"Retry-After": "0"}), Reply(200, "fresh data"))
    backoff = BackoffProbe()
    seen_by_other: list[int] = []

    async def fetch(i: int) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.text

    async def other(i: int) -> str:
        seen_by_other.append(server.hits("/flaky"))
        backoff.other_done.set()
        return "steady"

    toolset = wrap_toolset(
        FunctionToolset([Tool(fetch, name=flaky), Tool(other, name=steady)]),
        Retry(RetryPolicy(max_attempts=3), sleep=backoff.sleep),
        ConcurrencyLimit(1, name=unique_name("one_slot")),
    )
    agent = Agent(scripted_model([*fan_out(flaky, 1), *fan_out(steady, 1)]), toolsets=[toolset])
    result = await agent.run("go")

    returns = {
        p.tool_name: p.content for m in result.all_messages() for p in m.parts if p.part_kind == "tool-return"
    }
    assert returns == {flaky: "fresh data", steady: "steady"}
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
    name = unique_name("stuck")

    async def stuck(i: int) -> int:
        await asyncio.sleep(30)
        return i

    toolset = wrap_toolset(
        FunctionToolset([Tool(stuck, name=name)]), Retry(RetryPolicy(max_attempts=1)), Timeout(0.2)
    )
    agent = Agent(scripted_model(fan_out(name, 1)), toolsets=[toolset])
    with pytest.raises(ToolTimeoutError) as raised:
        await agent.run("go")
    assert raised.value.tool == name
    (span,) = scoped(f"execute_tool {name}", "penguiflow")
    assert span.attributes[names.ERROR_TYPE] == "ToolTimeoutError"
    assert span.attributes[names.OUTCOME] == "timeout"
    assert outcomes(name, "timeout") == 1


async def test_an_mcp_toolset_behind_a_stack_declares_its_tools_idempotence() -> None:
    probe = Probe(gate=3)
    mcp = FastMCP("mcp")

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def lookup(i: int) -> str:
        async with probe:
            return f"found {i}"

    @mcp.tool
    async def create(i: int) -> str:
        return f"created {i}"

    declared: dict[str, set[bool | None]] = {}

    async def record(call: Call, call_next: CallNext) -> Any:
        declared.setdefault(call.tool, set()).add(call.idempotent)
        return await call_next(call)

    source = unique_name("mcp")
    toolset = wrap_toolset(MCPToolset(mcp), record, ConcurrencyLimit(3, name=source), source=source)
    agent = Agent(scripted_model([*fan_out("lookup", 20), *fan_out("create", 2)]), toolsets=[toolset])
    async with agent:
        await agent.run("go")
    assert probe.calls == 20
    assert probe.peak == 3
    assert declared == {"lookup": {True}, "create": {False}}
    assert (
        otel.histogram_count(
            names.TOOL_DURATION,
            **{names.GEN_AI_TOOL_NAME: "lookup", names.TOOL_SOURCE: source, names.OUTCOME: "success"},
        )
        == 20
    )


async def test_a_tool_node_as_a_toolset() -> None:
    """A penguiflow ToolNode (an MCP server, limit 3; not yet connected) as a Pydantic AI toolset: the source's own
    limit holds over the agent's fan-out, and arguments the node rejects go back to the model as a retry prompt."""
    probe = Probe(gate=3)
    mcp = FastMCP("catalog")

    @mcp.tool
    async def search(i: int) -> str:
        """Searches."""
        async with probe:
            return f"hit {i}"

    source = unique_name("docs")
    node = ToolNode(
        config=ExternalToolConfig(name=source, transport=TransportType.MCP, connection=mcp, max_concurrency=3)
    )
    prompts: list[str] = []
    tool_name = function_name(f"{source}.search")  # a dot is no valid function name: encoded

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        rounds = sum(isinstance(m, ModelResponse) for m in messages)
        # A ModelRetry comes back as a tool return marked "retried" (Pydantic AI 2.x; a RetryPromptPart before).
        prompts.extend(
            str(p.content)
            for p in messages[-1].parts
            if isinstance(p, RetryPromptPart)
            or (getattr(p, "outcome", None) == "retried" and p.retry.cause == "model_retry")
        )
        if rounds == 0:
            return ModelResponse(parts=[ToolCallPart(tool_name, {"i": "not a number"}, tool_call_id="bad")])
        if rounds == 1:
            return ModelResponse(
                parts=[ToolCallPart(tool_name, {"i": i}, tool_call_id=f"c{i}") for i in range(20)]
            )
        return ModelResponse(parts=[TextPart("done")])

    async with node:
        toolset = catalog_toolset(node)
        agent = Agent(FunctionModel(respond), toolsets=[toolset])
        result = await agent.run("go")
        assert list(await toolset.get_tools(None)) == [tool_name]  # type: ignore[arg-type]
    assert result.output == "done"
    assert prompts == [f"{source}.search: argument 'i' fails 'type' ('integer')"]
    assert probe.calls == 20
    assert probe.peak == 3
    assert outcomes(f"{source}.search", "success") == 20
