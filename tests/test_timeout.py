"""``Timeout``: a typed error that is also a ``TimeoutError``, counted, with a span event and a flow event."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.errors import ConfigurationError, ToolError, ToolTimeoutError
from penguiflow.middleware import Call, ConcurrencyLimit, FlowEvent, Stack, Timeout, wrap
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique


async def test_a_slow_attempt_raises_tool_timeout_error(spans: InMemorySpanExporter) -> None:
    tool = unique("timeout.slow")
    events: list[tuple[str, float, FlowEvent]] = []

    async def slow() -> None:
        await asyncio.sleep(5)

    wrapped = wrap(slow, Timeout(0.02, latency_callback=lambda *args: events.append(args)), name=tool)
    with pytest.raises(ToolTimeoutError) as info:
        await wrapped()
    error = info.value
    assert isinstance(error, TimeoutError) and isinstance(error, ToolError)
    assert error.tool == tool and error.seconds == 0.02 and error.retryable is True
    assert "0.02" in str(error)

    assert otel.value(names.TIMEOUTS, **{names.GEN_AI_TOOL_NAME: tool}) == 1
    assert (
        otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: tool, names.OUTCOME: "timeout"})
        == 1
    )
    (span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    (event,) = span.events
    assert event.name == names.EVENT_TIMEOUT
    assert event.attributes == {names.TIMEOUT_S: 0.02, names.ATTEMPT: 1}
    assert span.attributes[names.ERROR_TYPE] == "ToolTimeoutError"

    ((event_type, latency_ms, flow_event),) = events
    assert event_type == "node_timeout" and flow_event.node_name == tool
    assert 15 <= latency_ms < 5000
    assert flow_event.attributes["timeout_s"] == 0.02


async def test_a_timeout_error_of_the_tool_itself_passes_through() -> None:
    tool = unique("timeout.own")
    own = TimeoutError("the tool's own timeout")

    async def raises() -> None:
        raise own

    with pytest.raises(TimeoutError) as info:
        await wrap(raises, Timeout(5), name=tool)()
    assert info.value is own and not isinstance(info.value, ToolTimeoutError)
    assert otel.value(names.TIMEOUTS, **{names.GEN_AI_TOOL_NAME: tool}) == 0


async def test_the_timeout_bounds_the_attempt_not_the_queueing() -> None:
    """Inside the limit (the default order): time spent waiting for a slot does not count."""
    limiter = ConcurrencyLimit(1, name=unique("timeout.limit"))

    async def work(call: Call) -> str:
        await asyncio.sleep(0.02)
        return "ok"

    stack = Stack(work, [limiter, Timeout(0.15)])
    # Ten calls of 20 ms through one slot: the last waits 180 ms, longer than the timeout, and still succeeds.
    assert await asyncio.gather(*(stack(Call("tq", {})) for _ in range(10))) == ["ok"] * 10


async def test_a_fast_call_is_untouched() -> None:
    async def fast(x: int) -> int:
        return x * 2

    assert await wrap(fast, Timeout(1), name=unique("timeout.fast"))(21) == 42


@pytest.mark.parametrize("seconds", [-1, 0, -0.5, math.nan, math.inf, True, "5", None])
def test_bad_timeouts_fail_at_construction_naming_the_field(seconds: Any) -> None:
    with pytest.raises(ConfigurationError, match="seconds") as info:
        Timeout(seconds)
    assert info.value.field == "seconds"


async def test_cancelling_the_caller_is_not_turned_into_a_timeout() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(5)

    task = asyncio.create_task(wrap(slow, Timeout(5), name=unique("timeout.cancel"))())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_an_outer_timeout_firing_first_stays_the_outer_ones() -> None:
    """Nested bounds: the inner Timeout must not claim the outer deadline's cancellation."""

    async def slow() -> None:
        await asyncio.sleep(5)

    inner = wrap(slow, Timeout(2), name=unique("timeout.nested"))
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0.02):
            await inner()
    assert not isinstance(info.value, ToolTimeoutError)


async def test_a_tool_that_swallows_the_cancellation_leaves_the_task_clean() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    task = asyncio.current_task()
    assert task is not None
    before = task.cancelling()
    assert await wrap(stubborn, Timeout(0.01), name=unique("timeout.swallow"))() == "swallowed"
    assert task.cancelling() == before
    await asyncio.sleep(0.01)  # no cancellation left pending on this task


async def test_after_a_timeout_the_task_carries_no_pending_cancellation() -> None:
    async def slow() -> None:
        await asyncio.sleep(5)

    wrapped = wrap(slow, Timeout(0.01), name=unique("timeout.clean"))
    task = asyncio.current_task()
    assert task is not None
    for _ in range(3):
        with pytest.raises(ToolTimeoutError):
            await wrapped()
        assert task.cancelling() == 0
    await asyncio.sleep(0.01)


async def test_a_tool_that_ignores_its_timeout_is_logged_and_holds_its_slot_until_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What Timeout cannot do, documented in the README: stop a tool that swallows the cancellation. The slot
    stays taken until the tool returns, and the overrun is logged."""
    limiter = ConcurrencyLimit(1, name=unique("timeout.stubborn"))
    released = asyncio.Event()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await released.wait()  # keeps running after its timeout
            return "late"
        return "slept"

    wrapped = wrap(stubborn, limiter, Timeout(0.01), name=unique("timeout.ignore"))
    with caplog.at_level(logging.WARNING, logger="penguiflow.middleware.timeout"):
        task = asyncio.create_task(wrapped())
        await asyncio.sleep(0.05)
        assert limiter.in_flight == 1  # past its timeout, still holding the slot
        released.set()
        assert await task == "late"
    assert limiter.in_flight == 0
    assert any("ignored the cancellation of its timeout" in r.getMessage() for r in caplog.records)


async def test_a_tool_that_blocks_the_loop_past_its_timeout_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def blocking() -> str:
        time.sleep(0.25)  # noqa: ASYNC251 - the point: it blocks the loop, so the timer cannot fire
        return "done"

    with caplog.at_level(logging.WARNING, logger="penguiflow.middleware.timeout"):
        assert await wrap(blocking, Timeout(0.05), name=unique("timeout.block"))() == "done"
    assert any("the event loop was blocked" in r.getMessage() for r in caplog.records)


async def test_one_layer_times_out_each_of_many_concurrent_attempts_at_its_own_deadline() -> None:
    # One timer per layer serves every attempt through it: attempts that finish early must not keep a later
    # one from timing out, nor make an early one fire late; the loop holds one timer for the layer, not one
    # per attempt.
    layer = Timeout(0.05)
    loop = asyncio.get_running_loop()
    scheduled_before = len(loop._scheduled)  # type: ignore[attr-defined]

    async def run(i: int) -> str:
        await asyncio.sleep(0.01 if i % 2 else 5)
        return "done"

    stack = Stack(lambda call: run(call.arguments["i"]), [layer])
    started = time.monotonic()
    tasks = [asyncio.create_task(stack(Call(unique("timeout.many"), {"i": i}))) for i in range(20)]
    await asyncio.sleep(0)
    assert len(loop._scheduled) - scheduled_before <= 1 + 20  # type: ignore[attr-defined]  # the sleeps + ours
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    for i, result in enumerate(results):
        if i % 2:
            assert result == "done", (i, result)
        else:
            assert isinstance(result, ToolTimeoutError), (i, result)
    assert elapsed < 2.0  # each slow attempt ended at its 50 ms deadline, not after its 5 s sleep
    deadlines = layer._deadlines
    assert deadlines is not None and deadlines.live == 0


async def test_a_layer_used_from_two_event_loops_times_out_on_each() -> None:
    layer = Timeout(0.02)

    async def slow() -> None:
        await asyncio.sleep(5)

    wrapped = wrap(slow, layer, name=unique("timeout.loops"))

    def in_new_loop() -> BaseException | None:
        try:
            asyncio.run(wrapped())
        except BaseException as exc:
            return exc
        return None

    with pytest.raises(ToolTimeoutError):
        await wrapped()
    other = await asyncio.to_thread(in_new_loop)  # another loop, in another thread, same layer
    assert isinstance(other, ToolTimeoutError)
    with pytest.raises(ToolTimeoutError):
        await wrapped()


async def test_finished_attempts_behind_a_long_one_do_not_pile_up() -> None:
    # A long-running attempt at the head of the layer's queue: thousands of short ones finishing behind it
    # must not all stay queued until it ends (the queue is compacted).
    layer = Timeout(30)
    release = asyncio.Event()

    async def long() -> None:
        await release.wait()

    async def short() -> None:
        return None

    long_call = asyncio.create_task(wrap(long, layer, name=unique("timeout.head"))())
    await asyncio.sleep(0)
    fast = wrap(short, layer, name=unique("timeout.short"))
    for _ in range(5000):
        await fast()
    deadlines = layer._deadlines
    assert deadlines is not None
    assert len(deadlines.queue) < 300, len(deadlines.queue)
    release.set()
    await long_call
    assert deadlines.live == 0


def test_seconds_is_read_only() -> None:
    layer = Timeout(1.5)
    assert layer.seconds == 1.5
    with pytest.raises(AttributeError):
        layer.seconds = 2  # type: ignore[misc]


def test_a_loop_with_a_clock_of_its_own_keeps_the_timeouts_right() -> None:
    # The layer reads asyncio's clock directly only for a loop whose time() is asyncio's own: a loop whose clock
    # is shifted (a simulated or offset clock) must see its deadlines on that clock, or they fall due at once
    # (clock ahead) or never (clock behind).
    def run(offset: float) -> tuple[object, object]:
        loop = asyncio.new_event_loop()
        loop.time = lambda: time.monotonic() + offset  # type: ignore[method-assign]
        layer = Timeout(0.2)

        async def pause(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "done"

        async def both() -> tuple[object, object]:
            quick = await wrap(pause, layer, name=unique("timeout.clock"))(0.01)
            try:
                slow: object = await asyncio.wait_for(wrap(pause, layer, name=unique("timeout.clock"))(3), 2)
            except BaseException as exc:
                slow = exc
            return quick, slow

        try:
            return loop.run_until_complete(both())
        finally:
            loop.close()

    for offset in (1000.0, -1000.0):
        quick, slow = run(offset)
        assert quick == "done", offset
        assert isinstance(slow, ToolTimeoutError), (offset, slow)


async def test_sequential_attempts_leave_the_queue_as_they_finish() -> None:
    layer = Timeout(30)
    fast = wrap(_instant, layer, name=unique("timeout.sequential"))
    for _ in range(10):
        await fast()
    deadlines = layer._deadlines
    assert deadlines is not None and len(deadlines.queue) == 0 and deadlines.live == 0


async def _instant() -> None:
    return None
