"""``Timeout``: a typed error that is also a ``TimeoutError``, counted, with a span event and a flow event."""

from __future__ import annotations

import asyncio
import math
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
    assert otel.value(names.TOOL_CALLS, **{names.GEN_AI_TOOL_NAME: tool, names.OUTCOME: "timeout"}) == 1
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
