"""ReactPlanner: Level 1 and 2 limits, planning hints and budgets, robustness, telemetry (scripted LLM)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from penguiflow.errors import ConfigurationError
from penguiflow.middleware import CallerLimits, ConcurrencyLimit, Stack
from penguiflow.middleware.call import Call, CallNext
from penguiflow.middleware.stack import function_handler
from penguiflow.planner import (
    LLMOutputError,
    LLMReply,
    OpenAIChatClient,
    PlannerResult,
    PlanningHintsError,
    ReactPlanner,
    ScriptedLLM,
    ScriptExhaustedError,
    ToolCall,
    Usage,
)
from penguiflow.planner.llm.base import Message, ToolSchema
from penguiflow.planner.react import LEVEL2_NAME
from penguiflow.telemetry import names
from penguiflow.tools import ToolEntry, tool
from tests.support import otel
from tests.support.timing import eventually


class Tracker:
    """Measures, inside the tool function, how many calls run at once: in total and per tag (per run)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.now_by: dict[str, int] = defaultdict(int)
        self.peak_by: dict[str, int] = defaultdict(int)
        self.intervals: list[tuple[float, float]] = []

    @contextlib.contextmanager
    def enter(self, tag: str = "") -> Iterator[None]:
        start = time.perf_counter()
        self.now += 1
        self.now_by[tag] += 1
        self.peak = max(self.peak, self.now)
        self.peak_by[tag] = max(self.peak_by[tag], self.now_by[tag])
        try:
            yield
        finally:
            self.now -= 1
            self.now_by[tag] -= 1
            self.intervals.append((start, time.perf_counter()))


def work_tool(tracker: Tracker, seconds: float, name: str = "local.work") -> ToolEntry:
    @tool(name=otel.unique(name))
    async def work(i: int, tag: str = "") -> str:
        """Do one unit of work."""
        with tracker.enter(tag):
            await asyncio.sleep(seconds)
        return f"done {i}"

    return work


def fan_out(entry: ToolEntry, count: int, tag: str = "") -> list[tuple[str, dict[str, Any]]]:
    return [(entry.name, {"i": i, "tag": tag}) for i in range(count)]


def by_query(entry: ToolEntry, count: int) -> Any:
    """A script for concurrent runs sharing one LLM: the first turn fans out ``count`` calls tagged with the
    query, the next answers."""

    def script(messages: Sequence[Message], tools: Sequence[ToolSchema]) -> Any:
        if messages[-1]["role"] == "tool":
            return f"answered {messages[1]['content']}"
        return fan_out(entry, count, tag=messages[-1]["content"])

    return script


# --- construction -----------------------------------------------------------------------------------------------


def test_constructing_with_a_model_name_needs_no_key_and_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    planner = ReactPlanner(catalog=[work_tool(Tracker(), 0)], llm="gpt-4")
    assert isinstance(planner.llm, OpenAIChatClient)
    assert planner.absolute_max_parallel == 50
    assert planner.limiter.name == "planner"


@pytest.mark.parametrize("value", [0, 1001, -5, True, 2.5, "50"])
def test_absolute_max_parallel_is_validated(value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(catalog=[], llm="gpt-4", absolute_max_parallel=value)  # type: ignore[arg-type]
    assert info.value.field == "absolute_max_parallel"


def test_bad_catalog_and_llm_are_named() -> None:
    entry = work_tool(Tracker(), 0)
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(catalog=[entry, entry], llm="gpt-4")
    assert info.value.field == "catalog[1]" and "duplicate" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(catalog=["nope"], llm="gpt-4")  # type: ignore[list-item]
    assert info.value.field == "catalog[0]"
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(catalog=[], llm=42)  # type: ignore[arg-type]
    assert info.value.field == "llm"


@pytest.mark.parametrize(
    ("hints", "field"),
    [
        ({"max_paralel": 5}, "planning_hints.max_paralel"),
        ({"max_parallel": "5"}, "planning_hints.max_parallel"),
        ({"max_parallel": 0}, "planning_hints.max_parallel"),
        ({"disallow_nodes": "x"}, "planning_hints.disallow_nodes"),
        ({"parallel_groups": [["a", 1]]}, "planning_hints.parallel_groups.0.1"),
        ({"budget": {"max_hop": 3}}, "planning_hints.budget.max_hop"),
        ({"budget": {"max_hops": "3"}}, "planning_hints.budget.max_hops"),
        ({"deadline_s": -1}, "planning_hints.deadline_s"),
        ({"max_tool_calls": 1.5}, "planning_hints.max_tool_calls"),
    ],
)
async def test_bad_planning_hints_are_typed_errors_naming_the_key(hints: dict[str, Any], field: str) -> None:
    llm = ScriptedLLM(["never asked"])
    planner = ReactPlanner(catalog=[], llm=llm)
    with pytest.raises(PlanningHintsError) as info:
        await planner.run("q", planning_hints=hints)
    assert info.value.field == field
    assert isinstance(info.value, ConfigurationError)
    assert llm.calls == []  # refused before anything ran


# --- the loop -----------------------------------------------------------------------------------------------------


async def test_a_run_calls_tools_feeds_results_back_and_answers() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 0.01)
    llm = ScriptedLLM(
        [
            {"content": "thinking", "tool_calls": [{"id": "a", "name": entry.name, "arguments": '{"i": 1}'}]},
            [(entry.name, {"i": 2}), (entry.name, {"i": 3})],
            "all done",
        ]
    )
    result = await ReactPlanner(catalog=[entry], llm=llm).run("do it")
    assert isinstance(result, PlannerResult)
    assert (result.answer, result.reason) == ("all done", "answered")
    assert (result.hops, result.tool_calls, result.failures, result.llm_calls) == (2, 3, 0, 3)
    assert [len(hop.calls) for hop in result.trajectory] == [1, 2, 0]
    first = result.trajectory[0].calls[0]
    assert (first.call_id, first.tool, first.arguments, first.outcome) == (
        "a",
        entry.name,
        {"i": 1},
        "success",
    )
    assert first.result == "done 1" and first.latency_ms >= 5
    # What the LLM saw on its last turn: each call, then each result under its call id.
    last = llm.calls[-1][0]
    assert last[0]["role"] == "system" and last[1] == {"role": "user", "content": "do it"}
    assert last[2]["tool_calls"][0]["function"] == {"name": entry.name, "arguments": '{"i": 1}'}
    assert last[3] == {"role": "tool", "tool_call_id": "a", "content": "done 1"}
    assert [m["content"] for m in last[-2:]] == ["done 2", "done 3"]
    assert [t.name for t in llm.calls[0][1]] == [entry.name]
    assert llm.calls[0][1][0].parameters["properties"]["i"]["type"] == "integer"


async def test_scripted_llm_takes_a_callable_for_every_turn() -> None:
    entry = work_tool(Tracker(), 0)

    def script(messages: Sequence[Message], tools: Sequence[ToolSchema]) -> Any:
        done = sum(1 for m in messages if m["role"] == "tool")
        return f"{done} results" if done >= 3 else [(entry.name, {"i": done})]

    result = await ReactPlanner(catalog=[entry], llm=ScriptedLLM(script)).run("count")
    assert (result.answer, result.hops) == ("3 results", 3)


# --- Level 1 and Level 2 ------------------------------------------------------------------------------------------


async def test_level1_bounds_fifty_issued_calls_to_eight_in_flight() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 0.02)
    planner = ReactPlanner(
        catalog=[entry], llm=ScriptedLLM([fan_out(entry, 50), "ok"]), absolute_max_parallel=8
    )
    result = await planner.run("fan out")
    assert result.tool_calls == 50 and result.failures == 0
    assert tracker.peak == 8
    assert result.trajectory[0].fanout == 50
    assert (planner.limiter.in_flight, planner.limiter.queued) == (0, 0)


async def test_level2_holds_one_run_to_its_max_parallel_while_another_run_uses_the_rest() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 0.05)
    planner = ReactPlanner(catalog=[entry], llm=ScriptedLLM(by_query(entry, 40)), absolute_max_parallel=20)
    limited, free = await asyncio.gather(
        planner.run("limited", planning_hints={"max_parallel": 5}), planner.run("free")
    )
    assert limited.tool_calls == free.tool_calls == 40
    assert (limited.answer, free.answer) == ("answered limited", "answered free")
    assert tracker.peak_by["limited"] == 5
    assert tracker.peak <= 20
    assert tracker.peak_by["free"] >= 15  # the unlimited run gets the planner's remaining slots


async def test_max_parallel_one_is_strictly_sequential() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 0.005)
    planner = ReactPlanner(catalog=[entry], llm=ScriptedLLM([fan_out(entry, 12), "ok"]))
    result = await planner.run("Debug this query", planning_hints={"max_parallel": 1})
    assert tracker.peak == 1 and result.tool_calls == 12
    intervals = sorted(tracker.intervals)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(intervals))
    # FIFO: the calls ran in the order the LLM issued them.
    assert [call.result for call in result.trajectory[0].calls] == [f"done {i}" for i in range(12)]


async def test_llm_calls_hold_no_tool_slot() -> None:
    entry = work_tool(Tracker(), 0)
    seen: list[int] = []

    class Watching(ScriptedLLM):
        async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply:
            seen.append(planner.limiter.in_flight)
            return await super().complete(messages, tools)

    planner = ReactPlanner(catalog=[entry], llm=Watching([fan_out(entry, 3), "ok"]), absolute_max_parallel=1)
    await planner.run("q")
    assert seen == [0, 0]


# --- hints and budgets ----------------------------------------------------------------------------------------------


async def test_disallow_nodes_hides_the_tool_and_refuses_a_call_to_it() -> None:
    safe, dangerous = work_tool(Tracker(), 0, "safe"), work_tool(Tracker(), 0, "dangerous")
    tracker = Tracker()
    dangerous = work_tool(tracker, 0, "dangerous")
    llm = ScriptedLLM([[(dangerous.name, {"i": 1}), (safe.name, {"i": 2})], "used the safe one"])
    planner = ReactPlanner(catalog=[safe, dangerous], llm=llm)
    result = await planner.run("q", planning_hints={"disallow_nodes": [dangerous.name]})
    assert [t.name for t in llm.calls[0][1]] == [safe.name]  # not offered
    refused, ran = result.trajectory[0].calls
    assert (refused.outcome, refused.error_type) == ("refused", "ToolDisallowedError")
    assert ran.outcome == "success" and tracker.peak == 0  # never ran
    assert (result.refused, result.tool_calls, result.reason) == (1, 1, "answered")
    observation = json.loads(llm.calls[1][0][-2]["content"])  # reported back to the LLM
    assert observation["error"]["type"] == "ToolDisallowedError"
    assert "not allowed" in observation["error"]["message"]


async def test_disallow_nodes_accepts_patterns() -> None:
    entry = work_tool(Tracker(), 0, "github.x")
    other = work_tool(Tracker(), 0, "local.y")
    llm = ScriptedLLM(["fine"])
    await ReactPlanner(catalog=[entry, other], llm=llm).run(
        "q", planning_hints={"disallow_nodes": ["github.*"]}
    )
    assert [t.name for t in llm.calls[0][1]] == [other.name]


async def test_budget_max_hops_stops_the_run() -> None:
    entry = work_tool(Tracker(), 0)
    llm = ScriptedLLM(lambda messages, tools: [(entry.name, {"i": len(messages)})])  # never answers
    planner = ReactPlanner(catalog=[entry], llm=llm)
    result = await planner.run("loop", planning_hints={"budget": {"max_hops": 3}})
    assert (result.reason, result.answer, result.hops, result.tool_calls) == ("budget_exhausted", None, 3, 3)
    # After the last hop the LLM gets one turn with no tools offered, to answer from what it has.
    assert result.llm_calls == 4 and llm.calls[-1][1] == []
    assert "is spent" in llm.calls[-1][0][-1]["content"]
    # The planner's own default applies without the hint.
    result = await ReactPlanner(catalog=[entry], llm=llm, max_hops=2).run("loop")
    assert (result.reason, result.hops) == ("budget_exhausted", 2)


async def test_an_answer_after_the_budget_is_kept_with_the_reason() -> None:
    entry = work_tool(Tracker(), 0)

    def script(messages: Sequence[Message], tools: Sequence[ToolSchema]) -> Any:
        return [(entry.name, {"i": 1})] if tools else "best effort"

    result = await ReactPlanner(catalog=[entry], llm=ScriptedLLM(script)).run(
        "q", planning_hints={"budget": {"max_hops": 1}}
    )
    assert (result.reason, result.answer, result.hops) == ("budget_exhausted", "best effort", 1)


async def test_deadline_cancels_in_flight_calls_and_frees_every_slot() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 30)
    planner = ReactPlanner(
        catalog=[entry], llm=ScriptedLLM([fan_out(entry, 6), "never"]), absolute_max_parallel=4
    )
    start = time.perf_counter()
    result = await planner.run("slow", planning_hints={"deadline_s": 0.3})
    assert time.perf_counter() - start < 3
    assert (result.reason, result.answer) == ("deadline", None)
    assert {call.outcome for call in result.trajectory[0].calls} == {"cancelled"}
    assert result.failures == 6
    assert tracker.now == 0 and (planner.limiter.in_flight, planner.limiter.queued) == (0, 0)


async def test_deadline_also_bounds_a_slow_llm() -> None:
    class Slow(ScriptedLLM):
        async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply:
            await asyncio.sleep(30)
            raise AssertionError("unreachable")

    start = time.perf_counter()
    result = await ReactPlanner(catalog=[], llm=Slow([])).run("q", planning_hints={"deadline_s": 0.1})
    assert (result.reason, result.answer, result.llm_calls) == ("deadline", None, 0)
    assert time.perf_counter() - start < 3


async def test_a_timeout_error_of_the_llm_itself_is_not_the_deadline() -> None:
    class Failing(ScriptedLLM):
        async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply:
            raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError, match="provider"):
        await ReactPlanner(catalog=[], llm=Failing([])).run("q", planning_hints={"deadline_s": 10})


async def test_a_scripted_llm_out_of_replies_says_so() -> None:
    with pytest.raises(ScriptExhaustedError, match="turn 1"):
        await ReactPlanner(catalog=[], llm=ScriptedLLM([])).run("q")


async def test_max_tool_calls_is_enforced() -> None:
    tracker = Tracker()
    entry = work_tool(tracker, 0)
    llm = ScriptedLLM([fan_out(entry, 2), fan_out(entry, 2), "partial answer"])
    result = await ReactPlanner(catalog=[entry], llm=llm).run("q", planning_hints={"max_tool_calls": 3})
    assert (result.reason, result.tool_calls, result.refused) == ("max_tool_calls", 3, 1)
    assert result.answer == "partial answer" and llm.calls[-1][1] == []
    assert result.trajectory[1].calls[1].error_type == "ToolBudgetExhaustedError"
    assert len(tracker.intervals) == 3


async def test_guidance_hints_are_rendered_into_the_system_prompt() -> None:
    llm = ScriptedLLM(["ok"])
    hints = {
        "preferred_order": ["auth", "fetch"],
        "parallel_groups": [["a", "b"]],
        "preferred_nodes": ["safe_tool"],
        "budget": {"max_hops": 10},
    }
    await ReactPlanner(catalog=[], llm=llm, system_prompt="Be brief.").run("q", planning_hints=hints)
    prompt = llm.calls[0][0][0]["content"]
    assert prompt.startswith("Be brief.")
    for text in ("auth → fetch", "a, b", "safe_tool", "10 turn"):
        assert text in prompt


# --- robustness -----------------------------------------------------------------------------------------------------


async def test_failing_and_timing_out_tools_become_observations() -> None:
    @tool(name=otel.unique("local.boom"))
    def boom() -> str:
        raise ValueError("the disk is on fire")

    @tool(name=otel.unique("local.stuck"), timeout_s=0.05)
    async def stuck() -> str:
        await asyncio.sleep(5)
        return "never"

    llm = ScriptedLLM([[(boom.name, {}), (stuck.name, {}), (boom.name, {"unexpected": 1})], "coped"])
    result = await ReactPlanner(catalog=[boom, stuck], llm=llm).run("q")
    assert (result.answer, result.reason, result.failures) == ("coped", "answered", 3)
    failed, timed_out, invalid_args = result.trajectory[0].calls
    assert failed.outcome == "error" and "disk is on fire" in (failed.error or "")
    assert (timed_out.outcome, timed_out.error_type) == ("timeout", "ToolTimeoutError")
    assert (invalid_args.outcome, invalid_args.error_type) == ("error", "ToolValidationError")
    observations = [json.loads(m["content"]) for m in llm.calls[1][0] if m["role"] == "tool"]
    assert [o["error"]["type"] for o in observations] == [
        failed.error_type,
        "ToolTimeoutError",
        "ToolValidationError",
    ]


async def test_malformed_llm_output_is_reported_back_then_a_typed_error() -> None:
    entry = work_tool(Tracker(), 0)
    good = ToolCall("g", entry.name, {"i": 1})
    bad_json = ToolCall("b", entry.name, '{"i": 1')
    unknown = ToolCall("u", "no.such_tool", {})
    not_object = ToolCall("n", entry.name, "[1, 2]")
    llm = ScriptedLLM([LLMReply(tool_calls=(good, bad_json)), [unknown], LLMReply(content=""), "recovered"])
    result = await ReactPlanner(catalog=[entry], llm=llm, max_invalid_replies=3).run("q")
    assert (result.answer, result.invalid, result.tool_calls) == ("recovered", 2, 1)
    assert result.hops == 1  # a turn in which no call could run does not use up the hop budget
    seen = llm.calls[1][0]
    assert seen[-1]["tool_call_id"] == "b" and "not valid JSON" in seen[-1]["content"]
    assert "unknown tool 'no.such_tool'" in llm.calls[2][0][-1]["content"]
    assert "empty" in llm.calls[3][0][-1]["content"]

    stubborn = ScriptedLLM(lambda messages, tools: LLMReply(tool_calls=(not_object,)))
    with pytest.raises(LLMOutputError) as info:
        await ReactPlanner(catalog=[entry], llm=stubborn, max_invalid_replies=2).run("q")
    assert info.value.attempts == 3 and "JSON object" in str(info.value)
    assert len(stubborn.calls) == 3


async def test_cancelling_a_run_cancels_its_calls_and_frees_every_slot() -> None:
    tracker = Tracker()
    seen_limits: list[tuple[ConcurrencyLimit, ...]] = []
    source_limit = ConcurrencyLimit(2, name=otel.unique("source"))

    async def capture(call: Call, call_next: CallNext) -> Any:
        seen_limits.append(call.limits)
        return await call_next(call)

    async def slow(i: int, tag: str = "") -> str:
        with tracker.enter(tag):
            await asyncio.sleep(30)
        return "never"

    name = otel.unique("ext.slow")
    entry = ToolEntry(
        name,
        "slow",
        {"type": "object"},
        "ext",
        Stack(function_handler(slow), [capture, CallerLimits(), source_limit]),
    )
    planner = ReactPlanner(catalog=[entry], llm=ScriptedLLM([fan_out(entry, 10)]), absolute_max_parallel=4)
    task = asyncio.create_task(planner.run("q", planning_hints={"max_parallel": 3}))
    await eventually(lambda: tracker.now == 2 and source_limit.queued == 8)
    level2 = seen_limits[0][0]
    # The 2 running calls hold a slot at every level; the 8 waiting for the source hold none, and are counted
    # as held up by the source only (each waiting call is queued at the one limiter it waits for).
    assert (level2.name, level2.in_flight, level2.queued, level2.waiting) == ("run", 2, 0, 8)
    assert (planner.limiter.in_flight, planner.limiter.queued) == (2, 0)
    # Level 1 and 2 show in the limiter gauges like any ConcurrencyLimit.
    run_labels = {names.LIMITER_NAME: "run"}
    assert otel.value(names.LIMITER_IN_FLIGHT, **run_labels) == 2
    assert otel.value(names.LIMITER_QUEUED, **run_labels) == 0
    assert otel.value(names.LIMITER_QUEUED, **{names.LIMITER_NAME: source_limit.name}) == 8
    assert otel.value(names.LIMITER_IN_FLIGHT, **{names.LIMITER_NAME: "planner"}) >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tracker.now == 0
    for limiter in (planner.limiter, level2, source_limit):
        assert (limiter.in_flight, limiter.queued) == (0, 0), limiter
    assert otel.value(names.LIMITER_QUEUED, **run_labels) == 0


# --- telemetry ------------------------------------------------------------------------------------------------------


async def test_spans_and_metrics_of_a_run(spans: Any) -> None:
    agent = otel.unique("agent")
    entry = work_tool(Tracker(), 0)
    llm = ScriptedLLM(
        [
            {"tool_calls": fan_out(entry, 3), "usage": {"input_tokens": 100, "output_tokens": 20}},
            {"content": "ok", "usage": {"input_tokens": 150, "output_tokens": 5}},
        ],
        model="scripted-model",
    )
    result = await ReactPlanner(catalog=[entry], llm=llm, agent_name=agent).run("q")
    assert result.usage == Usage(250, 25)
    (run_span,) = otel.spans(f"invoke_agent {agent}")
    attributes = dict(run_span.attributes or {})
    assert attributes[names.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attributes[names.GEN_AI_AGENT_NAME] == agent
    assert attributes[names.PLANNER_STOP_REASON] == "answered"
    chats = otel.spans("chat scripted-model")
    assert len(chats) == 2
    assert chats[0].attributes[names.GEN_AI_USAGE_INPUT_TOKENS] == 100  # type: ignore[index]
    assert chats[0].attributes[names.GEN_AI_PROVIDER_NAME] == "scripted"  # type: ignore[index]
    tools = otel.spans(f"execute_tool {entry.name}")
    assert len(tools) == 3
    run_id = run_span.context.span_id
    assert all(span.parent is not None and span.parent.span_id == run_id for span in [*chats, *tools])
    labels = {names.GEN_AI_AGENT_NAME: agent}
    assert otel.value(names.PLANNER_RUNS, **labels, **{names.PLANNER_STOP_REASON: "answered"}) == 1
    assert otel.value(names.PLANNER_HOPS, **labels) == 1
    ((_, fanout),) = otel.points(names.PLANNER_FANOUT, **labels)
    assert (fanout.count, fanout.sum) == (1, 3)
    assert otel.histogram_count(names.AGENT_DURATION, **labels) == 1
    model = {names.GEN_AI_REQUEST_MODEL: "scripted-model"}
    assert otel.histogram_count(names.LLM_DURATION, **model) >= 2
    ((_, tokens),) = otel.points(names.LLM_TOKENS, **model, **{names.GEN_AI_TOKEN_TYPE: "input"})
    assert tokens.sum >= 250


async def test_a_runs_level2_limiter_leaves_the_gauges_when_the_run_ends() -> None:
    """Level 2 limiters share the name ``run``: a finished run must stop adding its limit to that gauge."""

    def run_limit() -> float:
        return otel.value(names.LIMITER_LIMIT, **{names.LIMITER_NAME: LEVEL2_NAME})

    before = run_limit()
    release = asyncio.Event()
    seen_during: list[float] = []

    @tool(name=otel.unique("local.hold"))
    async def hold() -> str:
        """Wait until released."""
        seen_during.append(run_limit())
        await release.wait()
        return "held"

    planner = ReactPlanner(catalog=[hold], llm=ScriptedLLM([[(hold.name, {})], "ok"]))
    task = asyncio.create_task(planner.run("q", planning_hints={"max_parallel": 3}))
    await eventually(lambda: bool(seen_during))
    release.set()
    assert (await task).answer == "ok"
    assert seen_during == [before + 3]
    assert run_limit() == before


async def test_a_source_listed_before_connecting_is_connected_by_the_first_run() -> None:
    """``ReactPlanner(catalog=[*node.get_tools()])`` right after building the node, as the guide writes it: an
    unreachable source fails the run with its typed error, and the next run tries it again."""
    import socket

    from penguiflow.demo.backends import HttpApiServer
    from penguiflow.errors import ToolConnectionError
    from penguiflow.tools import ExternalToolConfig, PendingTools, ToolNode, TransportType

    with socket.socket() as probe:  # a port nobody listens on, then a server on that very port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = ToolNode(
        config=ExternalToolConfig(
            name=otel.unique("late").replace(".", "_"),
            transport=TransportType.HTTP,
            connection=f"http://127.0.0.1:{port}",
            timeout_s=2,
        )
    )
    llm = ScriptedLLM([[(f"{node.name}.echo", {"message": "hi"})], "done"])
    planner = ReactPlanner(catalog=node.get_tools(), llm=llm)
    assert [type(entry) for entry in planner.catalog.values()] == [PendingTools]
    with pytest.raises(ToolConnectionError):
        await planner.run("first")
    async with HttpApiServer(port=port):
        result = await planner.run("second")
        await node.close()
    assert result.answer == "done" and result.trajectory[0].calls[0].outcome == "success"
    assert f"{node.name}.echo" in planner.catalog and f"{node.name}.*" not in planner.catalog


async def test_planner_middleware_wraps_every_call_and_sees_the_sources_retries() -> None:
    """The guide's "Example Logging" middleware given to the planner: it runs around native and external calls
    alike, inside each call's ``execute_tool`` span, and hears the retries of the source's own Retry layer."""
    import logging

    from penguiflow import log_flow_events
    from penguiflow.demo.backends import HttpApiServer
    from penguiflow.middleware import FlowEvent
    from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(otel.unique("penguiflow.concurrency"))
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    events: list[FlowEvent] = []
    middleware = log_flow_events(logger, latency_callback=lambda _type, _ms, event: events.append(event))

    tracker = Tracker()
    native = work_tool(tracker, 0.001)
    async with HttpApiServer() as api:
        node = ToolNode(
            ExternalToolConfig(
                name=otel.unique("api").replace(".", "_"),
                transport=TransportType.HTTP,
                connection=api.url,
                retry_policy=RetryPolicy(wait_exponential_min_s=0.01, wait_exponential_max_s=0.02),
            )
        )
        async with node:
            flaky = f"{node.name}.flaky"
            llm = ScriptedLLM([[(flaky, {"key": "k1", "failures": 1}), (native.name, {"i": 1})], "ok"])
            planner = ReactPlanner(catalog=[*node.get_tools(), native], llm=llm, middleware=[middleware])
            result = await planner.run("q")
    assert [call.outcome for call in result.trajectory[0].calls] == ["success", "success"]
    by_type = {(event.event_type, event.node_name) for event in events}
    assert {("node_retry", flaky), ("node_success", flaky), ("node_success", native.name)} <= by_type
    assert {record.getMessage().split()[0] for record in records} >= {"node_retry", "node_success"}
    # inside the call's span: the events carry the execute_tool span's ids
    spans = {span.context.span_id: span for span in otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=flaky))}
    success = next(e for e in events if e.event_type == "node_success" and e.node_name == flaky)
    assert success.span_id is not None and int(success.span_id, 16) in spans


def test_planner_middleware_is_validated() -> None:
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(catalog=[], llm=ScriptedLLM(["ok"]), middleware=["not a layer"])  # type: ignore[list-item]
    assert info.value.field == "middleware[0]"
