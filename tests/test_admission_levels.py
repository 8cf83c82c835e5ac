"""The three levels under a real ``ReactPlanner``: limits no layers escape, no hold-and-wait, fairness across runs.

The issue's three measured cases, each on a virtual clock (``tests/support/virtual_time.py``): a tool that sleeps
10 ms takes exactly 10 ms of loop time, so waits and makespans are the schedule's own, not the machine's load.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from penguiflow import tool
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit, Stack, Timeout, log_flow_events
from penguiflow.middleware.stack import function_handler
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.telemetry import names
from penguiflow.tools import ToolEntry
from tests.support import otel
from tests.support.virtual_time import run as run_virtual


class Running:
    """How many calls run inside the tools now, in all and per run (the tool's ``run`` argument), and the peaks."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.per_run: dict[str, int] = {}
        self.peak_per_run: dict[str, int] = {}

    def enter(self, run: str) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.per_run[run] = self.per_run.get(run, 0) + 1
        self.peak_per_run[run] = max(self.peak_per_run.get(run, 0), self.per_run[run])

    def leave(self, run: str) -> None:
        self.now -= 1
        self.per_run[run] -= 1


def fan_out(name: str, run: str, calls: int) -> list[Any]:
    return [[(name, {"run": run, "i": i}) for i in range(calls)], "done"]


# --- 1. custom layers cannot escape Levels 1 and 2 -----------------------------------------------------------------


def custom_layer_tools(running: Running) -> list[ToolEntry]:
    async def work(run: str, i: int) -> int:
        running.enter(run)
        try:
            await asyncio.sleep(0.01)
        finally:
            running.leave(run)
        return i

    async def log_only(call: Call, call_next: CallNext) -> Any:
        return await call_next(call)

    return [
        # the README's own pattern: a generous limiter of the tool's own, and a timeout
        tool(
            name="custom.limited",
            layers=[log_flow_events(), ConcurrencyLimit(100, name="custom"), Timeout(5)],
        )(work),
        tool(name="custom.timeout_only", layers=[Timeout(5)])(work),  # no limiter, no CallerLimits
        tool(name="custom.plain", layers=[log_only])(work),  # a user's layer, nothing else
    ]


@pytest.mark.parametrize("tool_name", ["custom.limited", "custom.timeout_only", "custom.plain"])
def test_custom_layers_under_a_planner_respect_levels_1_and_2(tool_name: str) -> None:
    """Before: ``@tool(layers=[log_flow_events(), ConcurrencyLimit(100), Timeout(5)])`` under
    ``absolute_max_parallel=5`` and ``max_parallel=2`` peaked at 40 concurrent calls."""

    async def main() -> None:
        running = Running()
        catalog = custom_layer_tools(running)
        planner = ReactPlanner(
            catalog=catalog,
            llm=ScriptedLLM(lambda messages, tools: _reply(messages, tool_name)),
            absolute_max_parallel=5,
        )
        runs = [planner.run(f"r{n}", planning_hints={"max_parallel": 2} if n < 3 else None) for n in range(4)]
        results = await asyncio.gather(*runs)
        assert all(result.tool_calls == 40 and result.failures == 0 for result in results)
        assert running.peak <= 5, running.peak  # Level 1
        for n in range(3):
            assert running.peak_per_run[f"r{n}"] <= 2, running.peak_per_run  # Level 2
        assert running.peak == 5  # and the levels are used, not just respected
        assert (planner.limiter.in_flight, planner.limiter.queued, planner.limiter.waiting) == (0, 0, 0)

    run_virtual(main())


def _reply(messages: Any, tool_name: str) -> Any:
    run = messages[1]["content"]
    if any(message["role"] == "tool" for message in messages):
        return "done"
    return [(tool_name, {"run": run, "i": i}) for i in range(40)]


# --- 2. no hold-and-wait: a run waiting for its source does not block another run ---------------------------------


def test_a_run_queued_at_its_source_holds_no_planner_slot() -> None:
    """Before: run A's 20 calls to a source limited to 1 took all 10 planner slots (1 running) and run B's one
    native call waited 458 ms; the Level 1 gauge read 10 in flight."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        source = ConcurrencyLimit(1, name=otel.unique("slow.source"))
        started: dict[str, float] = {}
        level1_seen: list[float] = []

        async def slow(run: str, i: int) -> int:
            await asyncio.sleep(0.05)
            return i

        async def fast(run: str, i: int) -> int:
            started[run] = loop.time()
            # Read mid-call, through the metric reader: Level 1 counts what runs (A's one call and this one).
            level1_seen.append(otel.value(names.LIMITER_IN_FLIGHT, **{names.LIMITER_NAME: "planner"}))
            return i

        slow_entry = ToolEntry(
            "src.slow", "slow", {"type": "object"}, "src", Stack(function_handler(slow), [source])
        )
        fast_entry = tool(name="local.fast")(fast)
        planner = ReactPlanner(
            catalog=[slow_entry, fast_entry],
            llm=ScriptedLLM(lambda messages, tools: _script_ab(messages)),
            absolute_max_parallel=10,
        )
        run_a = asyncio.create_task(planner.run("A"))
        while source.queued < 19:  # noqa: ASYNC110 - the limiter's state, no event to wait on
            await asyncio.sleep(0)
        assert (planner.limiter.in_flight, planner.limiter.queued, planner.limiter.waiting) == (1, 0, 19)
        asked = loop.time()
        result_b = await planner.run("B")
        assert result_b.tool_calls == 1 and result_b.failures == 0
        waited_ms = (started["B"] - asked) * 1000
        assert waited_ms <= 2, waited_ms  # at once, while A's 19 calls still queue at its source
        assert source.queued >= 18  # … which they still did
        assert level1_seen == [2]
        await run_a
        assert (planner.limiter.in_flight, source.in_flight, source.queued) == (0, 0, 0)

    run_virtual(main())


def _script_ab(messages: Any) -> Any:
    run = messages[1]["content"]
    if any(message["role"] == "tool" for message in messages):
        return "done"
    if run == "A":
        return [("src.slow", {"run": "A", "i": i}) for i in range(20)]
    return [("local.fast", {"run": "B", "i": 0})]


# --- 3. fairness between runs at Level 1 ---------------------------------------------------------------------


async def small_run_behind_a_big_one(fairness: str) -> tuple[float, int]:
    """With ``absolute_max_parallel=10``: run A fans out 500 × 10 ms calls, run B starts 20 ms later with
    10 × 10 ms calls. Returns B's duration (s) and how many of A's calls finished before B's last one."""
    loop = asyncio.get_running_loop()
    finished: list[str] = []

    @tool(name="local.work")
    async def work(run: str, i: int) -> int:
        await asyncio.sleep(0.01)
        finished.append(run)
        return i

    def script(messages: Any, tools: Any) -> Any:
        run = messages[1]["content"]
        if any(message["role"] == "tool" for message in messages):
            return "done"
        return [("local.work", {"run": run, "i": i}) for i in range(500 if run == "A" else 10)]

    planner = ReactPlanner(
        catalog=[work],
        llm=ScriptedLLM(script),
        absolute_max_parallel=10,
        fairness=fairness,  # type: ignore[arg-type]
    )
    run_a = asyncio.create_task(planner.run("A"))
    await asyncio.sleep(0.02)
    start = loop.time()
    result_b = await planner.run("B")
    duration = loop.time() - start
    assert result_b.tool_calls == 10 and result_b.failures == 0
    a_before_b = finished[: _last(finished, "B")].count("A")
    await run_a
    return duration, a_before_b


def _last(items: list[str], value: str) -> int:
    return len(items) - items[::-1].index(value)


def test_a_small_run_is_not_stuck_behind_a_big_one_under_the_fair_default() -> None:
    duration, a_before_b = run_virtual(small_run_behind_a_big_one("fair"))
    assert duration <= 0.100, duration
    # Round-robin: while B waited, A got one slot in two — not its 480 queued calls first.
    assert a_before_b <= 20 + 10 + 10, a_before_b


def test_fifo_fairness_puts_the_small_run_behind_every_call_of_the_big_one() -> None:
    duration, a_before_b = run_virtual(small_run_behind_a_big_one("fifo"))
    assert duration >= 0.45, duration  # ~500 ms: behind all of A's calls
    assert a_before_b >= 480, a_before_b
