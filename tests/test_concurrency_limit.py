"""``ConcurrencyLimit``: never exceeded, strictly FIFO, no slot leaks, and telemetry that matches what happened.

The property tests drive random mixes of durations, failures, per-attempt timeouts, outer deadlines and
cancellations (while queued and while running) through the limit, alone and inside the full default stack,
and check the limit, the order, the final state and the metric counters against what the test itself saw.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.errors import ConfigurationError, LimiterRejectedError, ToolTimeoutError
from penguiflow.middleware import (
    Call,
    CallerLimits,
    CallNext,
    ConcurrencyLimit,
    FlowEvent,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    log_flow_events,
    wrap,
)
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique
from tests.support.timing import eventually


def calls_by_outcome(tool: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for attributes, point in otel.points(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: tool}):
        outcome = attributes[names.OUTCOME]
        counts[outcome] = counts.get(outcome, 0) + int(point.count)
    return counts


def limiter_gauge(metric: str, limiter: str) -> float:
    return otel.value(metric, **{names.LIMITER_NAME: limiter})


# --- property tests ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One call of a generated scenario."""

    duration_ms: int
    behaviour: str  # ok | fail | hang
    cancel_after_ms: int | None  # task.cancel() this long after all calls started
    deadline_ms: int | None  # asyncio.timeout around the call, in the caller


specs = st.builds(
    Spec,
    duration_ms=st.integers(0, 4),
    behaviour=st.sampled_from(["ok", "ok", "ok", "fail", "hang"]),
    cancel_after_ms=st.none() | st.integers(0, 12),
    deadline_ms=st.none() | st.integers(1, 12),
)

TIMEOUT_S = 0.008  # the Timeout layer's bound; "hang" calls sleep far longer


class Recorder:
    """What the test sees: arrivals at the limiter, who had to queue, slots taken (inside the tool), concurrency
    inside the tool."""

    def __init__(self) -> None:
        self.limiter: ConcurrencyLimit | None = None
        self.arrivals: list[tuple[int, int]] = []  # (call index, attempt) in the order they reached the limit
        self.free_at_arrival: dict[tuple[int, int], bool] = {}  # was a slot free when it arrived?
        self.waited: set[tuple[int, int]] = set()  # … that queued (reported by the limiter's queue_wait)
        self.starts: list[tuple[int, int]] = []  # … in the order they got a slot and started
        self.index_of: dict[str, int] = {}  # call id -> call index
        self.running = 0
        self.max_running = 0

    async def arrive(self, call: Call, call_next: CallNext) -> Any:
        """A layer placed just outside the limit: records the arrival order."""
        assert self.limiter is not None
        self.index_of[call.call_id] = call.arguments["index"]
        key = (call.arguments["index"], call.attempt)
        self.arrivals.append(key)
        self.free_at_arrival[key] = self.limiter.in_flight < self.limiter.limit
        return await call_next(call)

    def on_wait(self, event_type: str, latency_ms: float, event: FlowEvent) -> None:
        assert event_type == "queue_wait"
        self.waited.add((self.index_of[event.call_id], event.attempt))

    async def enter(self, call: Call, call_next: CallNext) -> Any:
        """The innermost layer, right before the tool: records the order in which attempts got a slot."""
        self.starts.append((call.arguments["index"], call.attempt))
        return await call_next(call)

    def tool(self, specs: list[Spec]) -> Callable[..., Awaitable[int]]:
        async def work(index: int) -> int:
            assert self.limiter is not None
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            # Measured inside the wrapped function: what the backend would see.
            assert self.running <= self.limiter.limit
            assert self.limiter.in_flight <= self.limiter.limit
            try:
                spec = specs[index]
                await asyncio.sleep(spec.duration_ms / 1000 if spec.behaviour != "hang" else 10)
                if spec.behaviour == "fail":
                    raise ValueError("tool failed")
                return index
            finally:
                self.running -= 1

        return work


def expected_outcome(result: BaseException | Any, task: asyncio.Task[Any]) -> str:
    """The outcome the stack must have recorded, from what the caller got back."""
    if task.cancelled():
        return "cancelled"
    if isinstance(result, LimiterRejectedError):
        return "rejected"
    if isinstance(result, ToolTimeoutError):
        return "timeout"
    if isinstance(result, TimeoutError):
        return "cancelled"  # the caller's own asyncio.timeout: the stack saw a cancellation
    if isinstance(result, ValueError):
        return "error"
    assert not isinstance(result, BaseException), result
    return "success"


async def run_scenario(specs: list[Spec], limit: int, max_queue: int | None, full_stack: bool) -> None:
    tool = unique("prop.tool")
    recorder = Recorder()
    limiter = ConcurrencyLimit(
        limit, name=unique("prop.limit"), max_queue=max_queue, latency_callback=recorder.on_wait
    )
    recorder.limiter = limiter
    terminal: Counter[str] = Counter()

    def on_event(event_type: str, latency_ms: float, event: FlowEvent) -> None:
        if event_type in {"node_success", "node_error"}:
            terminal[event.call_id] += 1

    if full_stack:

        async def no_sleep(_seconds: float) -> None:
            await asyncio.sleep(0)

        layers: list[Any] = [
            log_flow_events(latency_callback=on_event),
            Retry(RetryPolicy(max_attempts=2, wait_exponential_min_s=0.001), sleep=no_sleep),
            CallerLimits(),
            recorder.arrive,
            limiter,
            Timeout(TIMEOUT_S),
            recorder.enter,
        ]
    else:
        layers = [recorder.arrive, limiter, Timeout(TIMEOUT_S), recorder.enter]
    wrapped = wrap(recorder.tool(specs), *layers, name=tool)

    async def one(index: int) -> Any:
        spec = specs[index]
        if spec.deadline_ms is None:
            return await wrapped(index=index)
        async with asyncio.timeout(spec.deadline_ms / 1000):
            return await wrapped(index=index)

    tasks = [asyncio.create_task(one(i)) for i in range(len(specs))]
    await asyncio.sleep(0)  # every call has entered its stack (and the limit's queue) before any cancel
    loop = asyncio.get_running_loop()
    for task, spec in zip(tasks, specs, strict=True):
        if spec.cancel_after_ms is not None:
            loop.call_later(spec.cancel_after_ms / 1000, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)

    # The limit was never exceeded.
    assert recorder.max_running <= limit
    # FIFO: calls that queued got their slots in arrival order (nobody overtook a call still queued) …
    position = {key: i for i, key in enumerate(recorder.arrivals)}
    queued_starts = [position[key] for key in recorder.starts if key in recorder.waited]
    assert queued_starts == sorted(queued_starts), (recorder.arrivals, recorder.starts, recorder.waited)
    # … and a call that did not queue found a slot free on arrival (nobody skipped the queue). A call handed
    # a slot may resume a little after a later arrival took a slot freed meanwhile: that is not overtaking.
    for key in recorder.starts:
        assert key in recorder.waited or recorder.free_at_arrival[key], key
    # Nothing leaked.
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert limiter_gauge(names.LIMITER_IN_FLIGHT, limiter.name) == 0
    assert limiter_gauge(names.LIMITER_QUEUED, limiter.name) == 0
    # Every call ended in exactly one outcome, and the counters say the same.
    expected = Counter(expected_outcome(r, t) for r, t in zip(results, tasks, strict=True))
    assert sum(expected.values()) == len(specs)
    assert calls_by_outcome(tool) == dict(expected)
    if max_queue is None:
        assert "rejected" not in expected
    if full_stack:
        assert len(terminal) == len(specs) and set(terminal.values()) == {1}, terminal
        assert set(terminal) == set(recorder.index_of)


scenario_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@scenario_settings
@given(
    specs=st.lists(specs, min_size=1, max_size=14),
    limit=st.integers(1, 4),
    max_queue=st.none() | st.integers(0, 6),
)
def test_limit_alone_holds_under_random_mixes(specs: list[Spec], limit: int, max_queue: int | None) -> None:
    asyncio.run(run_scenario(specs, limit, max_queue, full_stack=False))


@scenario_settings
@given(
    specs=st.lists(specs, min_size=1, max_size=14),
    limit=st.integers(1, 4),
    max_queue=st.none() | st.integers(0, 6),
)
def test_full_stack_holds_under_random_mixes(specs: list[Spec], limit: int, max_queue: int | None) -> None:
    asyncio.run(run_scenario(specs, limit, max_queue, full_stack=True))


# --- the must-show: 30 calls through ConcurrencyLimit(10) ----------------------------------------------------


async def test_thirty_calls_through_a_limit_of_ten_read_mid_run(spans: InMemorySpanExporter) -> None:
    tool, name = unique("mustshow.tool"), unique("mustshow.limit")
    gate = asyncio.Event()
    started = 0

    async def handler(call: Call) -> str:
        nonlocal started
        started += 1
        await gate.wait()
        return call.call_id

    stack = Stack(handler, [ConcurrencyLimit(10, name=name)])
    calls = [Call(tool, {}, call_id=f"{tool}#{i}") for i in range(30)]
    tasks = [asyncio.create_task(stack(call)) for call in calls]
    await eventually(lambda: started == 10)
    await asyncio.sleep(0.01)  # and no eleventh call gets in

    # Read mid-run through the in-memory metric reader.
    assert started == 10
    assert limiter_gauge(names.LIMITER_QUEUED, name) == 20
    assert limiter_gauge(names.LIMITER_IN_FLIGHT, name) == 10
    assert limiter_gauge(names.LIMITER_LIMIT, name) == 10

    gate.set()
    assert await asyncio.gather(*tasks) == [call.call_id for call in calls]
    assert limiter_gauge(names.LIMITER_QUEUED, name) == 0
    assert limiter_gauge(names.LIMITER_IN_FLIGHT, name) == 0

    # Every call admitted (10 found a slot free), and a wait-time sample for each of the 20 that waited.
    assert otel.value(names.LIMITER_ADMITTED, **{names.LIMITER_NAME: name}) == 30
    assert otel.histogram_count(names.LIMITER_WAIT, **{names.LIMITER_NAME: name}) == 20

    # A queue_wait event on the execute_tool span of each call that waited, and no span of its own.
    tool_spans = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    assert len(tool_spans) == 30
    assert len(otel.SPANS.get_finished_spans()) == 30
    waits = otel.span_events(names.EVENT_QUEUE_WAIT, **{names.LIMITER_NAME: name})
    assert len(waits) == 20
    waited_calls = set()
    for span, attributes in waits:
        assert span in tool_spans
        waited_calls.add(span.attributes[names.GEN_AI_TOOL_CALL_ID])
        # 10 running; the i-th waiter joined the queue as its (i - 9)-th call, under the limit of 10.
        assert attributes[names.LIMITER_LIMIT_AT_ARRIVAL] == 10
        assert 1 <= attributes[names.LIMITER_QUEUED_AT_ARRIVAL] <= 20
        assert attributes[names.LIMITER_WAIT_S] > 0
        assert span.events[0].timestamp >= span.start_time  # at admission, inside the call's span
    assert waited_calls == {f"{tool}#{i}" for i in range(10, 30)}
    queued = sorted(a[names.LIMITER_QUEUED_AT_ARRIVAL] for _, a in waits)
    assert queued == list(range(1, 21))


# --- run-time limit changes, bounded queue, cancellation ------------------------------------------------------


async def test_set_limit_up_admits_waiters_and_down_lets_running_calls_finish() -> None:
    limiter = ConcurrencyLimit(2, name=unique("resize"))
    gate = asyncio.Event()
    running = 0
    peak: list[int] = []

    async def work(call: Call) -> None:
        nonlocal running
        running += 1
        peak.append(running)
        try:
            await gate.wait()
        finally:
            running -= 1

    stack = Stack(work, [limiter])
    tasks = [asyncio.create_task(stack(Call("resize", {}))) for _ in range(8)]
    await eventually(lambda: running == 2)
    assert limiter.queued == 6

    limiter.set_limit(5)  # raising admits three waiters at once
    await eventually(lambda: running == 5)
    assert (limiter.in_flight, limiter.queued, limiter.limit) == (5, 3, 5)
    assert limiter_gauge(names.LIMITER_LIMIT, limiter.name) == 5

    limiter.set_limit(1)  # lowering preempts nobody
    assert (limiter.in_flight, limiter.queued) == (5, 3)
    peak.clear()
    gate.set()
    await asyncio.gather(*tasks)
    # The three that were still queued ran one at a time under the new limit.
    assert peak == [1, 1, 1]
    assert (limiter.in_flight, limiter.queued) == (0, 0)

    with pytest.raises(ConfigurationError, match="max_concurrency"):
        limiter.set_limit(0)


async def test_max_queue_rejects_at_once_with_a_typed_error(spans: InMemorySpanExporter) -> None:
    tool, name = unique("reject.tool"), unique("reject.limit")
    limiter = ConcurrencyLimit(1, name=name, max_queue=2)
    gate = asyncio.Event()

    async def work(call: Call) -> str:
        await gate.wait()
        return "ok"

    stack = Stack(work, [limiter])
    admitted = [asyncio.create_task(stack(Call(tool, {}))) for _ in range(3)]  # 1 running + 2 queued
    await eventually(lambda: limiter.queued == 2)

    with pytest.raises(LimiterRejectedError) as info:
        await stack(Call(tool, {}))
    assert info.value.limiter == name and info.value.max_queue == 2
    assert name in str(info.value)
    assert limiter.queued == 2  # the rejected call never joined the queue

    gate.set()
    assert await asyncio.gather(*admitted) == ["ok"] * 3
    assert otel.value(names.LIMITER_REJECTED, **{names.LIMITER_NAME: name}) == 1
    assert calls_by_outcome(tool) == {"success": 3, "rejected": 1}
    rejected = [s for s in otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool)) if s.events]
    assert [event.name for event in rejected[0].events] == [names.EVENT_REJECTED]


async def test_cancelled_while_queued_leaves_the_queue() -> None:
    limiter = ConcurrencyLimit(1, name=unique("cancel.queued"))
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await eventually(lambda: limiter.queued == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert await limiter.acquire() == 0.0  # the slot is free at once


async def test_a_cancelled_wait_and_a_joint_wait_are_events_on_the_calls_span(
    spans: InMemorySpanExporter,
) -> None:
    # Telemetry on: a call cancelled while queued still says it waited (on its execute_tool span, which
    # ends cancelled), and a joint wait is named after the limiter that held it up, with that limiter's queue.
    outer = ConcurrencyLimit(5, name=unique("event.outer"))
    inner = ConcurrencyLimit(1, name=unique("event.inner"))
    await inner.acquire()
    stack = Stack(lambda call: asyncio.sleep(0), [CallerLimits()])
    cancelled = asyncio.create_task(stack(Call("event.cancelled", {}, limits=(outer, inner))))
    await eventually(lambda: inner.queued == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    joint = asyncio.create_task(stack(Call("event.joint", {}, limits=(outer, inner))))
    await eventually(lambda: inner.queued == 1)
    await asyncio.sleep(0.01)
    inner.release()
    await joint
    by_tool = {span.name: span for span in otel.spans("execute_tool event.")}
    assert set(by_tool) == {"execute_tool event.cancelled", "execute_tool event.joint"}
    for tool, outcome in (("event.cancelled", "cancelled"), ("event.joint", None)):
        span = by_tool[f"execute_tool {tool}"]
        assert span.attributes is not None and span.attributes.get(names.OUTCOME) == outcome
        (event,) = [e for e in span.events if e.name == names.EVENT_QUEUE_WAIT]
        assert event.attributes is not None
        assert event.attributes[names.LIMITER_NAME] == inner.name
        assert (
            event.attributes[names.LIMITER_QUEUED_AT_ARRIVAL],
            event.attributes[names.LIMITER_LIMIT_AT_ARRIVAL],
        ) == (1, 1)
        assert event.attributes[names.LIMITER_WAIT_S] > 0
    assert by_tool["execute_tool event.joint"].events[0].attributes[names.LIMITER_WAIT_S] >= 0.01  # type: ignore[index]
    assert len(spans.get_finished_spans()) == 2  # no span of the wait's own
    assert (inner.in_flight, outer.in_flight) == (0, 0)


async def test_cancelled_while_running_frees_the_slot_and_counts_as_cancelled() -> None:
    tool = unique("cancel.running")
    limiter = ConcurrencyLimit(1, name=unique("cancel.running.limit"))
    started = asyncio.Event()

    async def hangs(call: Call) -> None:
        started.set()
        await asyncio.sleep(10)

    stack = Stack(hangs, [limiter, Timeout(30)])
    running = asyncio.create_task(stack(Call(tool, {})))
    queued = asyncio.create_task(stack(Call(tool, {})))
    await started.wait()
    started.clear()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.wait_for(started.wait(), 1)  # the queued call got the slot
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert calls_by_outcome(tool) == {"cancelled": 2}


async def test_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    limiter = ConcurrencyLimit(1, name=unique("cancel.handed"))
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await eventually(lambda: limiter.queued == 2)
    limiter.release()  # hands the slot to `first` …
    first.cancel()  # … which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to the next in line
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_newcomer_behind_a_just_cancelled_waiter_is_not_stranded() -> None:
    """Regression: a waiter cancelled in the same loop iteration as a release still counted as queued, so a
    newcomer then went to the queue although the slot was free, and nobody ever woke it."""
    limiter = ConcurrencyLimit(1, name=unique("stranded"))
    await limiter.acquire()
    queued = asyncio.create_task(limiter.acquire())
    await eventually(lambda: limiter.queued == 1)

    newcomer = asyncio.create_task(limiter.acquire())  # its first step runs after what follows
    queued.cancel()  # the waiter's future is cancelled now, its task cleans up later
    limiter.release()  # skips the cancelled waiter: the slot is free
    await asyncio.wait_for(newcomer, 1)
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()


async def test_a_listener_that_raises_after_a_wait_does_not_leak_the_slot() -> None:
    """Regression: an exception while reporting a finished wait escaped after the slot was taken."""
    limiter = ConcurrencyLimit(1, name=unique("listener"))

    def broken(_event: FlowEvent) -> None:
        raise RuntimeError("listener bug")

    async def work(call: Call) -> str:
        await asyncio.sleep(0.005)
        return "done"

    stack = Stack(work, [limiter])
    calls = [Call("listener", {}, listeners=[broken]) for _ in range(3)]
    assert await asyncio.gather(*(stack(call) for call in calls)) == ["done"] * 3
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_release_without_acquire_is_an_error() -> None:
    limiter = ConcurrencyLimit(1, name=unique("overrelease"))
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        limiter.release()
    assert limiter.in_flight == 0


async def test_timeout_around_a_queued_call_frees_its_place() -> None:
    limiter = ConcurrencyLimit(1, name=unique("timeout.queued"))
    await limiter.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await limiter.acquire()
    assert (limiter.in_flight, limiter.queued) == (1, 0)
    limiter.release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)


# --- joint admission of the caller's limits: nothing held while waiting ------------------------------------------


async def test_caller_limits_take_nothing_when_one_of_them_rejects() -> None:
    outer = ConcurrencyLimit(5, name=unique("caller.outer"))
    inner = ConcurrencyLimit(1, name=unique("caller.inner"), max_queue=0)
    await inner.acquire()  # full, and no queue: the next call is rejected there
    stack = Stack(lambda call: asyncio.sleep(0), [CallerLimits()])
    with pytest.raises(LimiterRejectedError):
        await stack(Call("caller", {}, limits=(outer, inner)))
    assert (outer.in_flight, outer.waiting, inner.waiting) == (0, 0, 0)
    inner.release()


async def test_a_call_waiting_for_one_limit_holds_no_slot_of_the_others() -> None:
    outer = ConcurrencyLimit(5, name=unique("caller.outer"))
    inner = ConcurrencyLimit(1, name=unique("caller.inner"))
    await inner.acquire()
    stack = Stack(lambda call: asyncio.sleep(0), [CallerLimits()])
    task = asyncio.create_task(stack(Call("caller", {}, limits=(outer, inner))))
    await eventually(lambda: inner.queued == 1)
    # Waiting for `inner` only: `outer` has no slot taken and no call held up by it.
    assert (outer.in_flight, outer.queued, outer.waiting) == (0, 0, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (outer.in_flight, outer.waiting, inner.in_flight, inner.queued, inner.waiting) == (0, 0, 1, 0, 0)
    inner.release()


@pytest.mark.parametrize("narrowest_first", [True, False])
async def test_a_limited_query_holds_only_the_planner_slots_it_runs_in(narrowest_first: bool) -> None:
    """Whatever the order of ``call.limits``: a query limited to 1 runs in one planner slot and its other calls
    wait at its own limit, not at the planner's."""
    planner = ConcurrencyLimit(3, name=unique("caller.planner"))
    query = ConcurrencyLimit(1, name=unique("caller.query"))
    gate = asyncio.Event()

    async def work(call: Call) -> None:
        await gate.wait()

    limits = (query, planner) if narrowest_first else (planner, query)
    stack = Stack(work, [CallerLimits()])
    tasks = [asyncio.create_task(stack(Call("q", {}, limits=limits))) for _ in range(5)]
    await eventually(lambda: query.queued == 4)
    assert (planner.in_flight, planner.queued, planner.waiting) == (1, 0, 4)
    gate.set()
    await asyncio.gather(*tasks)
    assert (planner.in_flight, query.in_flight, planner.waiting, query.waiting) == (0, 0, 0, 0)


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_concurrency": 2, "name": ""}, "name"),
        ({"max_concurrency": 2, "max_queue": -1}, "max_queue"),
        ({"max_concurrency": 2, "max_queue": 1.5}, "max_queue"),
    ],
)
def test_bad_limits_fail_at_construction_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    kwargs.setdefault("name", "bad")
    max_concurrency = kwargs.pop("max_concurrency")
    with pytest.raises(ConfigurationError, match=field) as info:
        ConcurrencyLimit(max_concurrency, **kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
