"""Per-flow telemetry of shared (``fair``) limiters: the queue-depth gauge by flow, its cardinality rule, and the
per-flow wait histogram, read through a real OpenTelemetry SDK reader."""

from __future__ import annotations

import asyncio
from typing import Any

from penguiflow import tool
from penguiflow.middleware import Call, ConcurrencyLimit
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.telemetry import names
from tests.support import otel

PLANNER = {names.LIMITER_NAME: "planner"}


def flow_gauge(limiter: str) -> dict[str | None, float]:
    """The per-flow queue gauge of ``limiter`` as the SDK reader collects it: flow (``None``: overflow) → value."""
    found: dict[str | None, float] = {}
    for attributes, point in otel.points(names.LIMITER_FLOW_QUEUED, **{names.LIMITER_NAME: limiter}):
        key = attributes.get(names.LIMITER_FLOW)
        if key is None:
            assert attributes.get(names.OTEL_METRIC_OVERFLOW) is True, attributes
        found[key] = found.get(key, 0) + point.value
    return found


async def until(condition: Any) -> None:
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_the_gauge_is_the_live_queue_of_each_run_flow_and_returns_to_zero() -> None:
    """Two tenants' runs share the planner's Level 1 (2 slots): at every step the gauge equals the calls of each
    flow not yet started (known from inside the tool, not from the limiter), then 0; the admitted counter counts
    every admitted call of each flow, the wait histogram those that waited, and the tool-duration count every
    success."""
    tenant_a, tenant_b = otel.unique("tenant-a"), otel.unique("tenant-b")
    tool_name = otel.unique("flows.work")
    calls = {tenant_a: 6, tenant_b: 4}

    async def main() -> None:
        started = {tenant_a: 0, tenant_b: 0}
        gates: list[asyncio.Event] = []

        async def work(flow: str, i: int) -> int:
            started[flow] += 1
            gate = asyncio.Event()
            gates.append(gate)
            await gate.wait()
            return i

        def reply(messages: Any, _tools: Any) -> Any:
            if any(message["role"] == "tool" for message in messages):
                return "done"
            flow = messages[1]["content"]
            return [(tool_name, {"flow": flow, "i": i}) for i in range(calls[flow])]

        planner = ReactPlanner(
            catalog=[tool(name=tool_name)(work)], llm=ScriptedLLM(reply), absolute_max_parallel=2
        )
        runs = [asyncio.create_task(planner.run(flow, flow=flow)) for flow in calls]
        await until(lambda: sum(started.values()) == 2 and planner.limiter.waiting == 8)
        released = 0
        while True:
            live = {flow: calls[flow] - started[flow] for flow in calls}
            gauge = flow_gauge("planner")
            assert {flow: gauge.get(flow) for flow in calls} == live, (gauge, live, released)
            assert planner.limiter.flows_queued() == {flow: n for flow, n in live.items() if n}
            assert otel.value(names.LIMITER_QUEUED, **PLANNER) == sum(live.values())
            if not any(live.values()):
                break
            gates[released].set()
            released += 1
            expected = released + 2
            await until(lambda: sum(started.values()) == expected)  # noqa: B023 - awaited here, in this pass
        for gate in gates:
            gate.set()
        results = await asyncio.gather(*runs)
        assert [result.tool_calls for result in results] == list(calls.values())
        assert {flow: flow_gauge("planner").get(flow) for flow in calls} == {tenant_a: 0, tenant_b: 0}
        assert (planner.limiter.in_flight, planner.limiter.queued, planner.limiter.flows_queued()) == (
            0,
            0,
            {},
        )

    asyncio.run(main())
    for flow, count in calls.items():
        assert otel.value(names.LIMITER_ADMITTED, **PLANNER, **{names.LIMITER_FLOW: flow}) == count
    waited = sum(
        otel.histogram_count(names.LIMITER_WAIT, **PLANNER, **{names.LIMITER_FLOW: flow}) for flow in calls
    )
    assert waited == 8  # all but the two that found a slot
    assert otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: tool_name}) == 10
    success = {names.GEN_AI_TOOL_NAME: tool_name, names.OUTCOME: "success"}
    assert otel.histogram_count(names.TOOL_DURATION, **success) == 10


def test_flows_beyond_flow_labels_share_one_overflow_series() -> None:
    """A shared limiter labels its first ``flow_labels`` flows; the queued calls (and waits) of later flows are
    summed under ``otel.metric.overflow=true``, so a flow key per request cannot grow the series count."""
    name = otel.unique("shared.db")

    async def main() -> None:
        limiter = ConcurrencyLimit(1, name=name, fairness="fair")
        limiter.flow_labels = 2
        holder = Call("hold", {}, flow="t0")
        await limiter.acquire(holder)  # "t0" labelled first, by its admission
        flows = ["t0", "t1", "t2", "t3", "t4", "t3"]
        waiters = [asyncio.create_task(limiter.acquire(Call("q", {}, flow=flow))) for flow in flows]
        await until(lambda: limiter.queued == 6)
        assert flow_gauge(name) == {"t0": 1, "t1": 1, None: 4}  # t2, t3 (2), t4
        assert limiter.flows_queued() == {"t0": 1, "t1": 1, "t2": 1, "t3": 2, "t4": 1}
        for _ in waiters:
            limiter.release()
            await asyncio.sleep(0)
        await asyncio.gather(*waiters)
        limiter.release()
        assert flow_gauge(name) == {"t0": 0, "t1": 0, None: 0}
        assert limiter.flows_queued() == {}
        assert limiter._labelled == {"t0", "t1"}  # bounded: no state kept for the other flows
        assert len(limiter._wait_attributes) <= 3  # t0, t1, overflow
        assert set(limiter.admissions_reported()) <= {None, "t0", "t1", True}  # bounded the same way

    asyncio.run(main())
    wait = {names.LIMITER_NAME: name}
    # Admissions: the holder and one waiter of t0, t1's waiter, four overflow waiters (t2, t3 twice, t4).
    assert otel.value(names.LIMITER_ADMITTED, **wait, **{names.LIMITER_FLOW: "t0"}) == 2
    assert otel.value(names.LIMITER_ADMITTED, **wait, **{names.LIMITER_FLOW: "t1"}) == 1
    assert otel.value(names.LIMITER_ADMITTED, **wait, **{names.OTEL_METRIC_OVERFLOW: True}) == 4
    assert otel.value(names.LIMITER_ADMITTED, **wait) == 7  # every admission, once
    # Waits: every one but the holder's, which found the slot free.
    assert otel.histogram_count(names.LIMITER_WAIT, **wait, **{names.LIMITER_FLOW: "t0"}) == 1
    assert otel.histogram_count(names.LIMITER_WAIT, **wait, **{names.LIMITER_FLOW: "t1"}) == 1
    assert otel.histogram_count(names.LIMITER_WAIT, **wait, **{names.OTEL_METRIC_OVERFLOW: True}) == 4
    assert otel.histogram_count(names.LIMITER_WAIT, **wait) == 6


def test_fifo_limiters_and_unnamed_flows_report_no_flow_series() -> None:
    name = otel.unique("plain")

    async def main() -> None:
        fifo = ConcurrencyLimit(1, name=name)
        await fifo.acquire(Call("a", {}, flow="tenant"))
        waiter = asyncio.create_task(fifo.acquire(Call("b", {}, flow="tenant")))
        await until(lambda: fifo.queued == 1)
        assert flow_gauge(name) == {} and fifo.flows_reported() == []
        fifo.release()
        await waiter
        fifo.release()
        fair = ConcurrencyLimit(1, name=name + ".fair", fairness="fair")
        await fair.acquire(Call("a", {}, flow=("run", 1)))  # a planner run's own key: not a name
        fair.release()
        assert fair.flows_reported() == [] and not fair._labelled

    asyncio.run(main())
