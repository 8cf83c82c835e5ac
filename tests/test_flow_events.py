"""``log_flow_events``: structured events to a stdlib or structlog logger, with trace ids, and latency callbacks."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from penguiflow import log_flow_events, wrap
from penguiflow.errors import ToolServerError
from penguiflow.middleware import EVENT_TYPES, ConcurrencyLimit, FlowEvent, Retry, RetryPolicy, Timeout
from penguiflow.telemetry import add_trace_ids, names
from tests.support import otel
from tests.support.otel import unique


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def hex_ids(span: Any) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


async def test_stdlib_records_carry_the_fields_and_trace_ids(
    caplog: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> None:
    tool = unique("events.stdlib")
    logger = logging.getLogger(unique("test.flow"))
    caplog.set_level(logging.DEBUG, logger=logger.name)

    async def double(x: int) -> int:
        return 2 * x

    assert await wrap(double, log_flow_events(logger), name=tool, source="src")(x=4) == 8
    records = [r for r in caplog.records if r.name == logger.name]
    assert [r.event_type for r in records] == ["node_start", "node_success"]  # type: ignore[attr-defined]
    (span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    for record in records:
        assert record.node_name == tool  # type: ignore[attr-defined]
        assert record.tool_source == "src"  # type: ignore[attr-defined]
        assert (record.trace_id, record.span_id) == hex_ids(span)  # type: ignore[attr-defined]
        assert isinstance(record.latency_ms, float)  # type: ignore[attr-defined]
        assert record.call_id == span.attributes[names.GEN_AI_TOOL_CALL_ID]  # type: ignore[attr-defined]
    assert records[0].levelno == logging.DEBUG and records[1].levelno == logging.INFO
    assert records[1].getMessage().startswith(f"node_success {tool} ")


async def test_structlog_logger_gets_keyword_fields(spans: InMemorySpanExporter) -> None:
    tool = unique("events.structlog")

    async def fails() -> None:
        raise ToolServerError("boom", status_code=500)

    with capture_logs() as logs, pytest.raises(ToolServerError):
        await wrap(fails, log_flow_events(structlog.get_logger()), name=tool)()
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("node_start", "debug"),
        ("node_error", "error"),
    ]
    (span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    error = logs[1]
    assert error["node_name"] == tool and error["error_type"] == "ToolServerError"
    assert (error["trace_id"], error["span_id"]) == hex_ids(span)
    assert "boom" not in str(error)  # the type, never the message


async def test_a_real_structlog_pipeline_with_add_trace_ids(spans: InMemorySpanExporter) -> None:
    captured: list[MutableMapping[str, Any]] = []

    def capture(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    logger = structlog.wrap_logger(
        structlog.PrintLogger(), processors=[add_trace_ids, structlog.processors.add_log_level, capture]
    )
    logger.info("outside any span")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("inside") as span:
        logger.info("inside a span")
        logger.info("ids kept", trace_id="mine")
    assert "trace_id" not in captured[0] and "span_id" not in captured[0]
    ctx = span.get_span_context()
    assert captured[1]["trace_id"] == format(ctx.trace_id, "032x")
    assert captured[1]["span_id"] == format(ctx.span_id, "016x")
    assert captured[2]["trace_id"] == "mine"  # an id already set is not overwritten

    # And as the logger of log_flow_events: the processor agrees with the event's own ids.
    tool = unique("events.pipeline")
    captured.clear()

    async def ok() -> str:
        return "ok"

    await wrap(ok, log_flow_events(logger), name=tool)()
    (tool_span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    assert {(e["event"], e["trace_id"], e["span_id"]) for e in captured} == {
        ("node_start", *hex_ids(tool_span)),
        ("node_success", *hex_ids(tool_span)),
    }


async def test_latency_callback_gets_type_latency_and_event() -> None:
    tool = unique("events.callback")
    seen: list[tuple[str, float, FlowEvent]] = []

    async def nap() -> str:
        await asyncio.sleep(0.02)
        return "ok"

    await wrap(nap, log_flow_events(latency_callback=lambda *a: seen.append(a)), name=tool)()
    ((event_type, latency_ms, event),) = seen  # no callback for node_start
    assert event_type == "node_success" and event.event_type == "node_success"
    assert event.node_name == tool
    assert 15 <= latency_ms < 5000 and latency_ms == event.latency_ms


# The user guide's "Example Logging", verbatim. It annotates with `Any` without importing it: it runs in a
# module that has `Any` (the only name we provide).
GUIDE_EXAMPLE = """
import logging
from penguiflow import log_flow_events

logger = logging.getLogger("penguiflow.concurrency")

def track_latency(event_type: str, latency_ms: float, event: Any) -> None:
    if latency_ms > 1000:  # > 1 second
        logger.warning(
            f"Slow tool execution: {event.node_name} took {latency_ms:.0f}ms"
        )

middleware = log_flow_events(logger, latency_callback=track_latency)
"""


async def test_the_guides_example_logging_works(caplog: pytest.LogCaptureFixture) -> None:
    namespace: dict[str, Any] = {"Any": Any}
    exec(compile(GUIDE_EXAMPLE, "concurrency-guide.md", "exec"), namespace)
    caplog.set_level(logging.WARNING, logger="penguiflow.concurrency")

    async def slow_tool() -> str:
        await asyncio.sleep(1.02)
        return "done"

    async def quick_tool() -> str:
        return "done"

    tool = unique("guide.slow")
    assert await wrap(slow_tool, namespace["middleware"], name=tool)() == "done"
    assert await wrap(quick_tool, namespace["middleware"], name=unique("guide.quick"))() == "done"
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Slow tool execution")]
    assert len(warnings) == 1
    assert re.fullmatch(rf"Slow tool execution: {re.escape(tool)} took \d{{4,}}ms", warnings[0]), warnings


async def test_a_callback_that_raises_is_logged_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event_type: str, latency_ms: float, event: FlowEvent) -> None:
        raise RuntimeError("callback bug")

    async def ok() -> str:
        return "ok"

    tool = unique("events.broken")
    layers = [
        log_flow_events(latency_callback=broken),
        ConcurrencyLimit(1, name=unique("b"), latency_callback=broken),
    ]
    with caplog.at_level(logging.ERROR, logger="penguiflow.middleware"):
        assert await wrap(ok, *layers, name=tool)() == "ok"
        # the limiter's own callback too, on a queue wait
        assert await asyncio.gather(*(wrap(ok, *layers, name=tool)() for _ in range(3))) == ["ok"] * 3
    logged = [r for r in caplog.records if r.name == "penguiflow.middleware"]
    assert logged and all("latency_callback raised" in r.getMessage() for r in logged)
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in logged)


async def test_every_event_type_occurs_in_one_scenario(caplog: pytest.LogCaptureFixture) -> None:
    """A timeout that is retried, a call that queues, one that fails: every event type, each with its tool — but
    node_progress, which only a source that reports progress emits (MCP: see test_mcp_everything.py)."""
    logger = logging.getLogger(unique("test.flow.all"))
    caplog.set_level(logging.DEBUG, logger=logger.name)
    seen: list[tuple[str, str]] = []
    attempts: dict[str, int] = {}

    async def tool(mode: str) -> str:
        attempts[mode] = attempts.get(mode, 0) + 1
        if mode == "slow-once" and attempts[mode] == 1:
            await asyncio.sleep(5)
        if mode == "fail":
            raise ValueError("not retryable")
        await asyncio.sleep(0.01)
        return mode

    name = unique("events.all")
    wrapped = wrap(
        tool,
        log_flow_events(logger, latency_callback=lambda t, ms, e: seen.append((t, e.node_name))),
        Retry(RetryPolicy(max_attempts=2), sleep=no_sleep),
        ConcurrencyLimit(1, name=unique("events.all.limit")),
        Timeout(0.2),
        name=name,
    )
    results = await asyncio.gather(
        wrapped("slow-once"), wrapped("queued"), wrapped("fail"), return_exceptions=True
    )
    assert results[:2] == ["slow-once", "queued"] and isinstance(results[2], ValueError)
    logged = {r.event_type for r in caplog.records if r.name == logger.name}  # type: ignore[attr-defined]
    assert logged == set(EVENT_TYPES) - {"node_progress"}
    assert {t for t, _ in seen} == set(EVENT_TYPES) - {"node_start", "node_progress"}
    assert {n for _, n in seen} == {name}


async def test_nested_event_loggers_log_each_event_once(caplog: pytest.LogCaptureFixture) -> None:
    """A planner's ``log_flow_events`` around a source's default one (examples/monitoring.py): every event of
    the call is logged once, by the outer logger, and the inner one's latency callback still sees its events."""
    tool = unique("events.nested")
    outer = logging.getLogger(unique("test.outer"))
    inner = logging.getLogger(unique("test.inner"))
    caplog.set_level(logging.DEBUG)
    inner_seen: list[str] = []
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ToolServerError("busy", status_code=503)
        return "ok"

    stack = wrap(
        flaky,
        log_flow_events(outer),
        log_flow_events(inner, latency_callback=lambda kind, _ms, _event: inner_seen.append(kind)),
        Retry(RetryPolicy(max_attempts=2, retry_on_status=[503]), sleep=no_sleep),
        name=tool,
    )
    assert await stack() == "ok"
    logged = [(r.name, r.event_type) for r in caplog.records if r.name in {outer.name, inner.name}]  # type: ignore[attr-defined]
    assert logged == [(outer.name, "node_start"), (outer.name, "node_retry"), (outer.name, "node_success")]
    assert inner_seen == ["node_retry", "node_success"]
