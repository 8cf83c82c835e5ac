"""Joint admission end to end: random runs, sources, limits, durations, failures and cancellations through real
stacks (the catalog entries a planner calls, with their caller limits and flows), on a virtual clock.

``tests/test_admission_model.py`` checks the algorithm step by step; this drives the same guarantees through the
layers, tasks and telemetry: no level is ever exceeded (measured inside the tools), calls of one run to one
source start in arrival order, and afterwards every gauge is 0 and the outcome counters equal what the callers
got back.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from penguiflow.middleware import (
    ConcurrencyLimit,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    admission,
    log_flow_events,
)
from penguiflow.middleware.stack import function_handler
from penguiflow.telemetry import names
from penguiflow.tools import ToolEntry
from tests.support import otel
from tests.support.virtual_time import run as run_virtual


@dataclass(frozen=True)
class Spec:
    run: int
    source: int | None  # None: a native tool (Levels 1 and 2 only)
    at_ms: int  # when the call is made
    duration_ms: int
    behaviour: str  # ok | fail | hang (past the Timeout)
    cancel_after_ms: int | None


calls = st.builds(
    Spec,
    run=st.integers(0, 3),
    source=st.none() | st.integers(0, 2),
    at_ms=st.integers(0, 20),
    duration_ms=st.integers(0, 15),
    behaviour=st.sampled_from(["ok", "ok", "ok", "fail", "hang"]),
    cancel_after_ms=st.none() | st.integers(0, 30),
)


class Probe:
    def __init__(self, limiters: list[ConcurrencyLimit]) -> None:
        self.running: Counter[int] = Counter()
        self.limits = {id(limiter): limiter for limiter in limiters}
        self.starts: list[tuple[int, int | None, int]] = []  # (run, source, call index) in start order

    def enter(self, path: tuple[ConcurrencyLimit, ...], key: tuple[int, int | None, int]) -> None:
        self.starts.append(key)
        for limiter in path:
            self.running[id(limiter)] += 1
            assert self.running[id(limiter)] <= limiter.limit, limiter  # measured where the call runs
            assert limiter.in_flight <= limiter.limit

    def leave(self, path: tuple[ConcurrencyLimit, ...]) -> None:
        for limiter in path:
            self.running[id(limiter)] -= 1


async def scenario(
    specs: list[Spec], level1: int, level2: list[int | None], level3: list[int], fair: bool
) -> None:
    loop = asyncio.get_running_loop()
    planner = ConcurrencyLimit(level1, name=otel.unique("prop.planner"), fairness="fair" if fair else "fifo")
    runs = [ConcurrencyLimit(n, name=otel.unique("prop.run")) if n is not None else None for n in level2]
    sources = [ConcurrencyLimit(n, name=otel.unique("prop.source")) for n in level3]
    limiters = [planner, *[r for r in runs if r is not None], *sources]
    probe = Probe(limiters)
    paths: dict[int, tuple[ConcurrencyLimit, ...]] = {}

    def caller_limits(spec: Spec) -> tuple[ConcurrencyLimit, ...]:
        level2_limit = runs[spec.run]
        return (level2_limit, planner) if level2_limit is not None else (planner,)

    async def work(index: int) -> int:
        spec = specs[index]
        path = paths[index]
        if index not in admitted:  # admitted at once, in this very step
            admitted.append(index)
        probe.enter(path, (spec.run, spec.source, index))
        try:
            await asyncio.sleep((spec.duration_ms if spec.behaviour != "hang" else 1000) / 1000)
            if spec.behaviour == "fail":
                raise ValueError("tool failed")
            return index
        finally:
            probe.leave(path)

    tool_name = otel.unique("prop.tool")
    retry = Retry(RetryPolicy(max_attempts=1))
    entries = [
        ToolEntry(
            f"{tool_name}.s{n}",
            "source tool",
            {"type": "object"},
            f"s{n}",
            Stack(function_handler(work), [log_flow_events(), retry, limiter, Timeout(0.05)]),
        )
        for n, limiter in enumerate(sources)
    ]
    native = ToolEntry(
        f"{tool_name}.native",
        "native tool",
        {"type": "object"},
        None,
        Stack(function_handler(work), [log_flow_events(), Timeout(0.05)]),  # no limiter: the engine admits
    )
    flows = [object() for _ in runs]
    arrived: list[int] = []
    # The order calls were admitted (got their slots): a call admitted at once is admitted where it starts; a
    # waiting one the moment the core hands it its slots (admission.observer), which is one loop step before
    # its task runs, so a call that finds room in that step may *start* first without taking its slot.
    admitted: list[int] = []
    waiting_call: dict[admission.Waiter, int] = {}
    current = contextvars.ContextVar[int]("current")
    enqueue = admission.enqueue

    def enqueue_of_call(*args: Any) -> admission.Waiter:
        waiter = enqueue(*args)
        waiting_call[waiter] = current.get()
        return waiter

    def observe(waiter: admission.Waiter, _path: object) -> None:
        admitted.append(waiting_call[waiter])

    async def one(index: int) -> Any:
        spec = specs[index]
        await asyncio.sleep(spec.at_ms / 1000)
        entry = native if spec.source is None else entries[spec.source % len(entries)]
        own = () if spec.source is None else (sources[spec.source % len(sources)],)
        paths[index] = caller_limits(spec) + own
        arrived.append(index)  # nothing suspends between here and the admission point
        current.set(index)
        return await entry.invoke({"index": index}, limits=caller_limits(spec), flow=flows[spec.run])

    if not sources:  # no tool source drawn: every call is native
        specs = [Spec(s.run, None, s.at_ms, s.duration_ms, s.behaviour, s.cancel_after_ms) for s in specs]
    specs = [
        Spec(s.run % len(runs), s.source, s.at_ms, s.duration_ms, s.behaviour, s.cancel_after_ms)
        for s in specs
    ]
    tasks = [asyncio.create_task(one(i)) for i in range(len(specs))]
    for task, spec in zip(tasks, specs, strict=True):
        if spec.cancel_after_ms is not None:
            loop.call_later((spec.at_ms + spec.cancel_after_ms) / 1000, task.cancel)
    admission.enqueue, admission.observer = enqueue_of_call, observe  # type: ignore[assignment]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        admission.enqueue, admission.observer = enqueue, None

    # Calls of one run to one source were admitted in the order they arrived, and every call that ran was
    # admitted first.
    arrival = {index: position for position, index in enumerate(arrived)}
    group_of = {index: (specs[index].run, specs[index].source) for index in arrival}
    assert {index for _, _, index in probe.starts} <= set(admitted)
    by_group: dict[tuple[int, int | None], list[int]] = {}
    for index in admitted:
        by_group.setdefault(group_of[index], []).append(index)
    for group, order in by_group.items():
        assert [arrival[i] for i in order] == sorted(arrival[i] for i in order), group
    # Afterwards: every limiter idle, as its attributes and its gauges say.
    for limiter in limiters:
        assert (limiter.in_flight, limiter.queued, limiter.waiting) == (0, 0, 0), limiter
        for metric in (names.LIMITER_IN_FLIGHT, names.LIMITER_QUEUED):
            assert otel.value(metric, **{names.LIMITER_NAME: limiter.name}) == 0
    # Counters equal outcomes.
    expected: Counter[str] = Counter()
    for result, task in zip(results, tasks, strict=True):
        if task.cancelled():
            expected["cancelled"] += 1
        elif isinstance(result, TimeoutError):
            expected["timeout"] += 1
        elif isinstance(result, ValueError):
            expected["error"] += 1
        else:
            assert not isinstance(result, BaseException), result
            expected["success"] += 1
    counted: Counter[str] = Counter()
    for attributes, point in otel.points(names.TOOL_DURATION):
        if str(attributes[names.GEN_AI_TOOL_NAME]).startswith(tool_name + "."):
            counted[str(attributes[names.OUTCOME])] += int(point.count)
    # A call cancelled before it reached its stack (still sleeping until its moment) is no tool call.
    never_made = sum(1 for i, task in enumerate(tasks) if task.cancelled() and i not in paths)
    expected["cancelled"] -= never_made
    assert +counted == +expected


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no 'explain': its tracing is slow here
)
@given(
    specs=st.lists(calls, min_size=1, max_size=30),
    level1=st.integers(1, 5),
    level2=st.lists(st.none() | st.integers(1, 3), min_size=1, max_size=4),
    level3=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    fair=st.booleans(),
)
def test_three_levels_hold_end_to_end_under_random_mixes(
    specs: list[Spec], level1: int, level2: list[int | None], level3: list[int], fair: bool
) -> None:
    run_virtual(scenario(specs, level1, level2, level3, fair))
