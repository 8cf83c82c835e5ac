"""Every ``ReactPlanner(...)`` and ``planner.run(...)`` snippet of the concurrency guide, pasted.

Each ``ReactPlanner`` snippet constructs as written (``llm="gpt-4"``: no key, no network), then runs with
``llm="gpt-4"`` replaced by a scripted LLM, against a catalog of real tools: an HTTP tool source on a local
server (``stripe``) and native tools.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from penguiflow import ModelRegistry
from penguiflow.demo.backends import HttpApiServer
from penguiflow.planner import OpenAIChatClient, PlannerResult, ScriptedLLM
from penguiflow.tools import ExternalToolConfig, ToolEntry, ToolNode, TransportType, tool
from tests.support import otel


@pytest.fixture(scope="module")
def api() -> Iterator[HttpApiServer]:
    with HttpApiServer() as server:
        yield server


@pytest.fixture
async def catalog(api: HttpApiServer) -> AsyncIterator[list[ToolEntry]]:
    stripe = ToolNode(
        config=ExternalToolConfig(
            name="stripe", transport=TransportType.HTTP, connection=api.url, max_concurrency=5
        ),
        registry=ModelRegistry(),
    )
    await stripe.connect()

    @tool(name=otel.unique("local.summarize"))
    async def summarize(text: str, max_words: int = 5) -> str:
        """Summarize a text."""
        return " ".join(text.split()[:max_words])

    yield [*stripe.get_tools(), summarize]
    await stripe.close()


def scripted(catalog: list[ToolEntry], calls: int = 6) -> ScriptedLLM:
    """One hop fanning out ``calls`` calls (slow HTTP calls and summaries), then an answer."""
    summarize = next(entry for entry in catalog if entry.source is None)
    hop: list[tuple[str, dict[str, Any]]] = []
    for i in range(calls):
        if i % 2:
            hop.append((summarize.name, {"text": f"customer record number {i} of many"}))
        else:
            hop.append(("stripe.slow", {"ms": 20}))
    return ScriptedLLM([hop, "processed"])


def assert_ran(result: PlannerResult, calls: int = 6) -> None:
    assert (result.answer, result.reason) == ("processed", "answered")
    assert (result.tool_calls, result.failures) == (calls, 0)


def construct_offline(monkeypatch: pytest.MonkeyPatch, build: Any) -> Any:
    with monkeypatch.context() as patch:
        patch.delenv("OPENAI_API_KEY", raising=False)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("constructing a planner tried to reach the network")

        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        return build()


async def test_level_1_snippet(catalog: list[ToolEntry], monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> Any:
        from penguiflow.planner import ReactPlanner

        planner = ReactPlanner(
            catalog=catalog,
            llm="gpt-4",
            absolute_max_parallel=50,  # Default: 50
        )
        return planner

    planner = construct_offline(monkeypatch, build)
    assert isinstance(planner.llm, OpenAIChatClient) and planner.absolute_max_parallel == 50

    from penguiflow.planner import ReactPlanner

    planner = ReactPlanner(
        catalog=catalog,
        llm=scripted(catalog),
        absolute_max_parallel=50,  # Default: 50
    )
    assert_ran(await planner.run("Process all customer data"))


async def test_level_2_snippet(catalog: list[ToolEntry]) -> None:
    from penguiflow.planner import ReactPlanner

    planner = ReactPlanner(catalog=catalog, llm=scripted(catalog, 12))
    result = await planner.run(
        "Process all customer data",
        planning_hints={
            "max_parallel": 5,  # Limit this query to 5 parallel tools
        },
    )
    assert_ran(result, 12)


async def test_additional_planning_hints_snippet(catalog: list[ToolEntry]) -> None:
    from penguiflow.planner import ReactPlanner

    planning_hints = {
        "max_parallel": 5,                    # Max concurrent tool calls
        "preferred_order": ["auth", "fetch"], # Hint execution order
        "parallel_groups": [["a", "b"]],      # Tools that can run together
        "disallow_nodes": ["dangerous_tool"], # Block specific tools
        "preferred_nodes": ["safe_tool"],     # Prefer certain tools
        "budget": {"max_hops": 10},           # Limit planning iterations
    }  # fmt: skip
    llm = scripted(catalog)
    planner = ReactPlanner(catalog=catalog, llm=llm)
    result = await planner.run("Process all customer data", planning_hints=planning_hints)
    assert_ran(result)
    prompt = llm.calls[0][0][0]["content"]
    assert all(word in prompt for word in ("auth → fetch", "a, b", "safe_tool", "10 turn"))


async def test_high_throughput_snippet(catalog: list[ToolEntry], monkeypatch: pytest.MonkeyPatch) -> None:
    from penguiflow.planner import ReactPlanner

    def build() -> Any:
        planner = ReactPlanner(
            catalog=catalog,
            llm="gpt-4",
            absolute_max_parallel=100,
        )
        return planner

    assert construct_offline(monkeypatch, build).absolute_max_parallel == 100
    planner = ReactPlanner(
        catalog=catalog,
        llm=scripted(catalog, 20),
        absolute_max_parallel=100,
    )
    assert_ran(await planner.run("Process all customer data"), 20)


async def test_debug_mode_snippet(catalog: list[ToolEntry], api: HttpApiServer) -> None:
    from penguiflow.planner import ReactPlanner

    api.stats.reset()
    planner = ReactPlanner(catalog=catalog, llm=scripted(catalog))
    result = await planner.run(
        "Debug this query",
        planning_hints={"max_parallel": 1},  # Sequential execution
    )
    assert_ran(result)
    assert api.stats.count("slow") == 3 and api.stats.peak("slow") == 1  # one after another, server side


@pytest.mark.skipif(
    importlib.util.find_spec("penguiflow.tools.transports.mcp") is None
    or importlib.util.find_spec("penguiflow.tools.transports.utcp") is None
    or importlib.util.find_spec("penguiflow.demo.backends.mcp_server") is None,
    reason="needs the MCP and UTCP transports and the MCP test server (issue 3)",
)
async def test_mixed_workload_snippet(api: HttpApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's mixed workload, each node pointed at a local stand-in for its service (connection only)."""
    from penguiflow.demo.backends import mcp_server
    from penguiflow.planner import ReactPlanner

    registry = ModelRegistry()
    # Fast, reliable internal API
    internal = ToolNode(
        config=ExternalToolConfig(
            name="internal",
            transport=TransportType.UTCP,
            connection=f"{api.url}/openapi.json",
            max_concurrency=30,
        ),
        registry=registry,
    )

    # Rate-limited external API
    github = ToolNode(
        config=ExternalToolConfig(
            name="github",
            transport=TransportType.MCP,
            connection=mcp_server.command(),
            max_concurrency=10,
        ),
        registry=registry,
    )

    # Expensive external API (costs per call)
    openai_tools = ToolNode(
        config=ExternalToolConfig(
            name="openai",
            transport=TransportType.HTTP,
            connection=api.url,
            max_concurrency=5,  # Limit spend rate
        ),
        registry=registry,
    )
    nodes = (internal, github, openai_tools)
    # As the guide writes it: no connect() before building the planner; its first run connects the nodes.
    try:

        def build() -> Any:
            # Planner respects all limits
            planner = ReactPlanner(
                catalog=[*internal.get_tools(), *github.get_tools(), *openai_tools.get_tools()],
                llm="gpt-4",
                absolute_max_parallel=50,
            )
            return planner

        assert construct_offline(monkeypatch, build).absolute_max_parallel == 50
        llm = ScriptedLLM(
            [
                [
                    ("internal.slow", {"ms": 10}),
                    ("openai.slow", {"ms": 10}),
                    ("openai.echo", {"message": "hi"}),
                ],
                "processed",
            ]
        )
        planner = ReactPlanner(
            catalog=[*internal.get_tools(), *github.get_tools(), *openai_tools.get_tools()],
            llm=llm,
            absolute_max_parallel=50,
        )
        assert not any(node.connected for node in nodes)
        assert_ran(await planner.run("Process all customer data"), 3)
        assert all(node.connected for node in nodes)
        assert {"internal.slow", "github.create_issue", "openai.echo"} <= set(planner.catalog)
    finally:
        await asyncio.gather(*(node.close() for node in nodes))
