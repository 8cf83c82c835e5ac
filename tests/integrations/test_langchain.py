"""LangChain v1 / LangGraph with penguiflow stacks, inside LangChain's own agent loop (``create_agent``) and a
LangGraph graph, driven offline by LangChain's fake chat model. The tools measure their own concurrency; the
503-then-200 tool talks to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastmcp import FastMCP
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode as LangGraphToolNode
from langgraph.prebuilt import tools_condition
from opentelemetry import trace

from penguiflow.errors import ToolTimeoutError
from penguiflow.integrations.langchain import PenguiflowMiddleware, as_langchain_tools, wrap_tool
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit, Retry, RetryPolicy, Timeout
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from tests.support import otel
from tests.support.scripted_http import Reply, ScriptedServer, scripted_server
from tests.support.tool_probe import BackoffProbe, Probe, unique_name

tracer = trace.get_tracer("tests.langchain")


class ToolCallingFakeModel(FakeMessagesListChatModel):
    """LangChain's fake chat model, able to be bound to tools (``create_agent`` binds them)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


def fan_out(name: str, count: int) -> list[dict[str, Any]]:
    return [
        {"name": name, "args": {"i": i}, "id": f"call_{name}_{i}", "type": "tool_call"} for i in range(count)
    ]


def model_calling(*calls: dict[str, Any]) -> ToolCallingFakeModel:
    return ToolCallingFakeModel(
        responses=[AIMessage(content="", tool_calls=list(calls)), AIMessage(content="done")]
    )


def probed_tool(name: str, probe: Probe) -> BaseTool:
    async def work(i: int) -> int:
        async with probe:
            return i

    return StructuredTool.from_function(coroutine=work, name=name, description="Does one unit of work.")


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


def tool_spans(name: str) -> list[Any]:
    return [s for s in otel.spans(f"execute_tool {name}") if s.instrumentation_scope.name == "penguiflow"]


def outcomes(name: str, outcome: str) -> int:
    return otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: outcome})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


async def test_without_penguiflow_langgraph_runs_the_whole_fan_out_at_once() -> None:
    """The baseline the middleware changes: LangGraph's ToolNode gathers a turn's calls with no bound."""
    name = unique_name("unbounded")
    probe = Probe(gate=4)
    agent = create_agent(model_calling(*fan_out(name, 20)), [probed_tool(name, probe)])
    await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})
    assert probe.calls == 20
    assert probe.peak >= 4


async def test_a_limit_of_3_holds_over_a_fan_out_of_20(spans: Any) -> None:
    name = unique_name("fan")
    probe = Probe(gate=3)
    calls = fan_out(name, 20)
    middleware = PenguiflowMiddleware(Retry(RetryPolicy()), ConcurrencyLimit(3, name=name), Timeout(10))
    agent = create_agent(model_calling(*calls), [probed_tool(name, probe)], middleware=[middleware])
    with tracer.start_as_current_span("agent run") as root:
        result = await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})

    assert result["messages"][-1].content == "done"
    assert sorted(int(m.content) for m in tool_messages(result)) == list(range(20))
    assert probe.calls == 20
    assert probe.peak == 3
    # One execute_tool span per call, in the run's trace, carrying the model's tool call id.
    tool_call_spans = tool_spans(name)
    assert len(tool_call_spans) == 20
    assert {s.attributes[names.GEN_AI_TOOL_CALL_ID] for s in tool_call_spans} == {c["id"] for c in calls}
    assert {s.context.trace_id for s in tool_call_spans} == {root.get_span_context().trace_id}
    assert {s.parent.span_id for s in tool_call_spans} == {root.get_span_context().span_id}
    assert outcomes(name, "success") == 20
    assert otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name}) == 20


async def test_503_then_200_succeeds_on_attempt_2_and_back_off_holds_no_slot(server: ScriptedServer) -> None:
    flaky, steady = unique_name("flaky"), unique_name("steady")
    url = server.script("/flaky", Reply(503, "busy", {"Retry-After": "0"}), Reply(200, "fresh data"))
    limiter = ConcurrencyLimit(1, name=unique_name("one_slot"))
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

    tools = [
        StructuredTool.from_function(coroutine=fetch, name=flaky, description="Fetches."),
        StructuredTool.from_function(coroutine=other, name=steady, description="Answers."),
    ]
    middleware = PenguiflowMiddleware(Retry(RetryPolicy(max_attempts=3), sleep=backoff.sleep), limiter)
    agent = create_agent(
        model_calling(*fan_out(flaky, 1), *fan_out(steady, 1)), tools, middleware=[middleware]
    )
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})

    by_name = {m.name: m.content for m in tool_messages(result)}
    assert by_name == {flaky: "fresh data", steady: "steady"}
    assert server.hits("/flaky") == 2  # attempt 1 got the 503, attempt 2 the 200
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

    tool = StructuredTool.from_function(coroutine=stuck, name=name, description="Never answers in time.")
    middleware = PenguiflowMiddleware(Retry(RetryPolicy(max_attempts=1)), Timeout(0.2))
    agent = create_agent(model_calling(*fan_out(name, 1)), [tool], middleware=[middleware])
    with pytest.raises(ToolTimeoutError) as raised:
        await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})
    assert raised.value.tool == name
    (span,) = tool_spans(name)
    assert span.attributes[names.ERROR_TYPE] == "ToolTimeoutError"
    assert span.attributes[names.OUTCOME] == "timeout"
    assert outcomes(name, "timeout") == 1
    assert otel.value(names.TIMEOUTS, **{names.GEN_AI_TOOL_NAME: name}) == 1


async def test_tool_layers_give_one_tool_a_limit_of_its_own() -> None:
    narrow, wide = unique_name("narrow"), unique_name("wide")
    narrow_probe, wide_probe = Probe(gate=2), Probe(gate=6)
    middleware = PenguiflowMiddleware(
        ConcurrencyLimit(10, name=unique_name("all")),
        tool_layers={narrow: [ConcurrencyLimit(2, name=narrow)]},
    )
    agent = create_agent(
        model_calling(*fan_out(narrow, 8), *fan_out(wide, 8)),
        [probed_tool(narrow, narrow_probe), probed_tool(wide, wide_probe)],
        middleware=[middleware],
    )
    await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})
    assert narrow_probe.peak == 2
    assert wide_probe.peak >= 6


def test_a_sync_agent_run_goes_through_the_same_limit(spans: Any) -> None:
    """``agent.invoke`` (no event loop of the caller's): sync tools in LangGraph's threads, one shared limit."""
    name = unique_name("sync")
    probe = Probe(gate=3)

    def work(i: int) -> int:
        with probe:
            return i

    tool = StructuredTool.from_function(func=work, name=name, description="Does one unit of work.")
    middleware = PenguiflowMiddleware(ConcurrencyLimit(3, name=name), Timeout(10))
    agent = create_agent(model_calling(*fan_out(name, 20)), [tool], middleware=[middleware])
    with tracer.start_as_current_span("sync agent run") as root:
        result = agent.invoke({"messages": [{"role": "user", "content": "go"}]})
    assert sorted(int(m.content) for m in tool_messages(result)) == list(range(20))
    assert probe.calls == 20
    assert probe.peak == 3
    assert outcomes(name, "success") == 20
    # The caller's context crosses to the background loop: the calls' spans are in the run's trace.
    tool_call_spans = tool_spans(name)
    assert len(tool_call_spans) == 20
    assert {s.context.trace_id for s in tool_call_spans} == {root.get_span_context().trace_id}


async def test_wrap_tool_puts_any_base_tool_behind_a_stack(server: ScriptedServer, spans: Any) -> None:
    name = unique_name("wrapped")
    probe = Probe(gate=3)
    inner = probed_tool(name, probe)
    wrapped = wrap_tool(inner, ConcurrencyLimit(3, name=name))
    assert (wrapped.name, wrapped.description) == (name, "Does one unit of work.")
    assert wrapped.args_schema is inner.args_schema
    agent = create_agent(model_calling(*fan_out(name, 20)), [wrapped])
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})
    assert sorted(int(m.content) for m in tool_messages(result)) == list(range(20))
    assert probe.peak == 3
    assert len(tool_spans(name)) == 20

    # A tool call input keeps its id and gets its ToolMessage back; sync and async tools both work.
    url = server.script("/sync", Reply(503, "busy"), Reply(200, "synced"))

    def fetch(i: int) -> str:
        response = httpx.get(url)
        response.raise_for_status()
        return response.text

    sync_name = unique_name("sync_wrapped")
    sync_tool = wrap_tool(
        StructuredTool.from_function(func=fetch, name=sync_name, description="Fetches."),
        Retry(RetryPolicy(max_attempts=2, wait_exponential_min_s=0.01)),
    )
    message = sync_tool.invoke({"type": "tool_call", "name": sync_name, "args": {"i": 1}, "id": "call_x"})
    assert isinstance(message, ToolMessage)
    assert (message.content, message.tool_call_id) == ("synced", "call_x")
    assert server.hits("/sync") == 2
    assert await wrapped.ainvoke({"i": 7}) == 7


async def test_a_tool_nodes_entries_as_langchain_tools_in_a_langgraph_graph() -> None:
    """A penguiflow ToolNode (an MCP server, limit 3) as the tools of a hand-built LangGraph graph: the source's
    own limit holds over the graph's fan-out of 20, measured by the MCP tool."""
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
    async with node:
        tools = as_langchain_tools(node)
        (tool,) = tools
        model = model_calling(*fan_out(tool.name, 20))

        async def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        graph = StateGraph(MessagesState)
        graph.add_node("model", call_model)
        graph.add_node("tools", LangGraphToolNode(tools))
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
        result = await graph.compile().ainvoke({"messages": [{"role": "user", "content": "go"}]})

    contents = sorted(m.content for m in tool_messages(result))
    assert contents == sorted(f"hit {i}" for i in range(20))
    assert probe.calls == 20
    assert probe.peak == 3
    assert outcomes(f"{source}.search", "success") == 20


async def test_two_middlewares_compose_in_one_agent_the_first_outermost() -> None:
    name = unique_name("layered")
    seen: list[str] = []

    def recorder(label: str) -> Any:
        async def record(call: Call, call_next: CallNext) -> Any:
            seen.append(label)
            return await call_next(call)

        return record

    agent = create_agent(
        model_calling(*fan_out(name, 1)),
        [probed_tool(name, Probe())],
        middleware=[
            PenguiflowMiddleware(recorder("outer"), name="outer"),
            PenguiflowMiddleware(recorder("inner"), name="inner"),
        ],
    )
    await agent.ainvoke({"messages": [{"role": "user", "content": "go"}]})
    assert seen == ["outer", "inner"]
