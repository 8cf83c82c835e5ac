"""The concurrency guide's example scenario, end to end with real tool sources and a scripted LLM.

    1. Planner issues 50 parallel tool calls
    2. 30 go to GitHub, 15 to Stripe, 5 to native tools
    3. GitHub ToolNode's semaphore allows 10 concurrent, queues 20
    4. Stripe ToolNode's semaphore allows 5 concurrent, queues 10
    5. Native tools execute immediately (no ToolNode limiting)

GitHub is a real fastmcp server over stdio (a subprocess), Stripe a real HTTP API on 127.0.0.1; both count
server side how many calls run at once. The native tools count it in the function.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from penguiflow import ModelRegistry
from penguiflow.demo.backends import HttpApiServer, mcp_server
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolEntry, ToolNode, TransportType, tool
from tests.support import otel
from tests.support.timing import eventually

HOLD_S = 0.4  # how long each call runs: long enough to sample the queues mid-run, on a busy machine too
GITHUB_TOOLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("create_issue", {"repo": "penguiflow/demo", "title": "flaky test"}),
    ("list_repos", {"org": "penguiflow"}),
    ("get_user", {"username": "octocat"}),
    ("search_code", {"query": "semaphore"}),
)


class Gauge:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    @contextlib.contextmanager
    def enter(self) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            self.now -= 1


@pytest.fixture
async def sources() -> AsyncIterator[tuple[ToolNode, ToolNode, HttpApiServer]]:
    registry = ModelRegistry()
    github = ToolNode(
        config=ExternalToolConfig(
            name="github",
            transport=TransportType.MCP,
            connection=mcp_server.command(),
            max_concurrency=10,
            env={"PENGUIFLOW_MCP_DELAY_S": str(HOLD_S)},
        ),
        registry=registry,
    )
    async with HttpApiServer() as api:
        stripe = ToolNode(
            config=ExternalToolConfig(
                name="stripe", transport=TransportType.HTTP, connection=api.url, max_concurrency=5
            ),
            registry=registry,
        )
        async with github, stripe:
            yield github, stripe, api


def native_tools(gauge: Gauge) -> list[ToolEntry]:
    entries: list[ToolEntry] = []
    for kind in ("summarize", "classify", "translate", "extract", "score"):

        @tool(name=f"local.{kind}", description=f"{kind.title()} a text.")
        async def run(text: str) -> str:
            with gauge.enter():
                await asyncio.sleep(HOLD_S)
            return text[:20]

        entries.append(run)
    return entries


async def test_the_guides_example_scenario(
    sources: tuple[ToolNode, ToolNode, HttpApiServer], spans: Any
) -> None:
    github, stripe, api = sources
    gauge = Gauge()
    natives = native_tools(gauge)
    catalog = [*github.get_tools(), *stripe.get_tools(), *natives]
    hop: list[tuple[str, dict[str, Any]]] = [
        (f"github.{GITHUB_TOOLS[i % 4][0]}", GITHUB_TOOLS[i % 4][1]) for i in range(30)
    ]
    hop += [("stripe.slow", {"ms": int(HOLD_S * 1000)}) for _ in range(15)]
    hop += [(entry.name, {"text": f"ticket {i}"}) for i, entry in enumerate(natives)]
    agent = otel.unique("scenario")
    planner = ReactPlanner(
        catalog=catalog, llm=ScriptedLLM([hop, "triaged"]), absolute_max_parallel=50, agent_name=agent
    )
    await github.call("github.reset_stats")
    api.stats.reset()
    assert github.limiter is not None and stripe.limiter is not None

    peak_total = 0
    peak_executing = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak_total, peak_executing
        while sampling:
            executing = github.limiter.in_flight + stripe.limiter.in_flight + gauge.now  # type: ignore[union-attr]
            peak_total = max(peak_total, planner.limiter.in_flight)
            peak_executing = max(peak_executing, executing)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    run = asyncio.create_task(planner.run("Triage this week's incidents"))
    # Mid-run: every call issued, 10 + 5 + 5 running, 20 and 10 queued at Level 3.
    await eventually(lambda: github.limiter.queued == 20 and stripe.limiter.queued == 10, timeout_s=10)  # type: ignore[union-attr]
    queued = {
        source: otel.value(names.LIMITER_QUEUED, **{names.LIMITER_NAME: source})
        for source in ("github", "stripe")
    }
    in_flight = {
        source: otel.value(names.LIMITER_IN_FLIGHT, **{names.LIMITER_NAME: source})
        for source in ("github", "stripe")
    }
    level1 = (planner.limiter.in_flight, planner.limiter.queued, planner.limiter.waiting)
    result = await run
    sampling = False
    await sampler

    assert (result.answer, result.reason) == ("triaged", "answered")
    assert (result.tool_calls, result.failures, result.trajectory[0].fanout) == (50, 0, 50)
    assert queued == {"github": 20, "stripe": 10}  # penguiflow.limiter.queued, as the metric reader saw it
    assert in_flight == {"github": 10, "stripe": 5}
    # Measured where the calls run: the MCP server, the HTTP server, the native functions.
    server_side = await github.call("github.stats")
    assert server_side["peak"] == 10 and server_side["total"] == 30
    assert api.stats.peak("slow") == 5 and api.stats.count("slow") == 15
    assert gauge.peak == 5
    # Level 1 counts the calls running (10 + 5 + 5): the 30 waiting at Level 3 hold no planner slot, and are
    # counted as queued at their source only.
    assert level1 == (20, 0, 30)
    assert peak_total == 20 and peak_executing <= 20
    assert (planner.limiter.in_flight, planner.limiter.queued) == (0, 0)
    # Traces: the 50 execute_tool spans hang under the run's invoke_agent span.
    (run_span,) = otel.spans(f"invoke_agent {agent}")
    tool_spans = [
        s for s in otel.spans("execute_tool ") if s.parent and s.parent.span_id == run_span.context.span_id
    ]
    assert len(tool_spans) == 50
    waits = otel.span_events(names.EVENT_QUEUE_WAIT, **{names.LIMITER_NAME: "github"})
    assert len(waits) >= 20
    assert all(span in tool_spans for span, _ in waits)
    ((_, fanout),) = otel.points(names.PLANNER_FANOUT, **{names.GEN_AI_AGENT_NAME: agent})
    assert fanout.sum == 50
