"""``Call``: the object a call travels in. Its id is made when first read, and is then the call's for good."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.middleware import Call, FlowEvent, Stack, log_flow_events
from penguiflow.middleware.call import make_call
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique


def test_a_call_id_is_unique_and_stays_the_same_once_read() -> None:
    calls = [Call("t", {}) for _ in range(100)] + [make_call("t", {}) for _ in range(100)]
    ids = [call.call_id for call in calls]
    assert len(set(ids)) == len(ids)
    assert all(call_id.startswith("call_") for call_id in ids)
    assert [call.call_id for call in calls] == ids  # read again: the same


def test_a_given_call_id_is_kept_and_one_can_be_set() -> None:
    call = Call("t", {}, call_id="call_from_the_llm")
    assert call.call_id == "call_from_the_llm"
    assert make_call("t", {}, call_id="llm_2").call_id == "llm_2"
    call.call_id = "another"
    assert call.call_id == "another" and "another" in repr(call)


def test_make_call_fills_what_call_would() -> None:
    made, built = make_call("t", {"a": 1}, "src", False), Call("t", {"a": 1}, source="src", idempotent=False)
    for attribute in ("tool", "arguments", "source", "attempt", "context", "limits", "layers", "idempotent"):
        assert getattr(made, attribute) == getattr(built, attribute), attribute
    assert (made.listeners, made.flow, made.weight) == (built.listeners, built.flow, built.weight)


async def test_the_span_and_the_flow_events_carry_the_same_made_id(spans: InMemorySpanExporter) -> None:
    seen: list[FlowEvent] = []

    async def handler(call: Call) -> str:
        return "ok"

    tool = unique("call.id")
    stack = Stack(handler, [log_flow_events(latency_callback=lambda _t, _l, event: seen.append(event))])
    call = Call(tool, {})
    assert await stack(call) == "ok"
    (span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    assert span.attributes is not None
    assert span.attributes[names.GEN_AI_TOOL_CALL_ID] == call.call_id
    assert seen and all(event.call_id == call.call_id for event in seen)
