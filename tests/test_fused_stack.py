"""The engine's fused runner (``middleware/fused.py``) does exactly what the built-in layers do one by one.

Every scenario runs twice: through ``wrap()`` with the built-in layers (fused: one frame), and through the same
layers each behind a pass-through user layer (which keeps every built-in layer in its own frame, called as the
public ``Middleware`` protocol says). The outcome, the spans (names, attributes, status, events, parents), the
metrics, the flow events and the log records must be the same, tool and limiter names aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.errors import ToolTimeoutError
from penguiflow.middleware import (
    Call,
    CallNext,
    ConcurrencyLimit,
    FlowEvent,
    Middleware,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    log_flow_events,
    specialise,
    wrap,
)
from penguiflow.middleware.stack import function_handler
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique

Tool = Callable[[], Awaitable[Any]]


class PassThrough:
    """A user's layer that does nothing: between built-in layers it keeps each one in its own frame."""

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        return await call_next(call)


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


@contextlib.contextmanager
def as_written() -> Iterator[None]:
    """Stacks made inside run the runners as written: specialise.py finds no source to compile (and no
    compiled combination to reuse), as in an application frozen without its .py files."""

    def no_source(*_args: Any) -> Any:
        raise OSError("no source (as_written)")

    with (
        mock.patch.object(specialise, "_compile", no_source),
        mock.patch.object(specialise, "_FACTORIES", {}),
    ):
        yield


class Run:
    """One variant of a scenario: its names, its layers, what it recorded."""

    def __init__(
        self,
        fused: bool,
        *,
        timeout_s: float = 30.0,
        limit: int = 10,
        max_queue: int | None = None,
        present: tuple[int, ...] = (0, 1, 2, 3),
        through: str = "wrap",
    ):
        self.fused = fused
        self.through = through  # "wrap": wrap()'s own entry; "stack": a Stack called with a Call
        self.tool = unique("fused.tool")
        self.limiter = unique("fused.limit")
        self.events: list[tuple[Any, ...]] = []
        self.logger = logging.getLogger(unique("fused.log"))
        self.logger.setLevel(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = self.records.append  # type: ignore[method-assign]
        self.logger.addHandler(handler)
        self.logger.propagate = False
        policy = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.0, wait_exponential_max_s=0.0, jitter=0)
        # Which of the four (logger, retry, limit, timeout) this run has, in their order; only those are made
        # (a limiter made and dropped would still report its admissions until collected).
        makers: list[Callable[[], Middleware]] = [
            lambda: log_flow_events(self.logger, latency_callback=self._on_event),
            lambda: Retry(policy, sleep=_no_sleep),
            lambda: ConcurrencyLimit(limit, name=self.limiter, max_queue=max_queue),
            lambda: Timeout(timeout_s),
        ]
        self.layers: list[Middleware] = [make() for i, make in enumerate(makers) if i in present]

    def _on_event(self, event_type: str, _latency_ms: float, event: FlowEvent) -> None:
        attributes = {k: v for k, v in event.attributes.items() if k != "wait_s" or v == 0}
        self.events.append((event_type, event.attempt, event.error_type, self._norm(attributes)))

    def wrap(self, fn: Callable[..., Awaitable[Any]]) -> Tool:
        if not self.fused:
            # Each layer in its own frame, and what runs around them (the span, wrap()'s entry) the functions
            # as written, not compiled (specialise.py): nothing of the fused side's making is compared with
            # itself.
            layers: list[Middleware] = [PassThrough()]
            for layer in self.layers:
                layers += [layer, PassThrough()]
            with as_written():
                return self._tool(fn, layers)
        return self._tool(fn, self.layers)

    def _tool(self, fn: Callable[..., Awaitable[Any]], layers: list[Middleware]) -> Tool:
        if self.through == "wrap":
            return wrap(fn, *layers, name=self.tool, source="fused")
        stack, signature = Stack(function_handler(fn), layers), inspect.signature(fn)

        def call(*args: Any) -> Awaitable[Any]:
            return stack(Call(self.tool, signature.bind(*args).arguments, source="fused"))

        return call

    def _norm(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self.tool, "TOOL").replace(self.limiter, "LIMIT")
        if isinstance(value, dict):
            return {k: self._norm(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return type(value)(self._norm(v) for v in value)
        return value

    def record(self, spans: InMemorySpanExporter) -> dict[str, Any]:
        mine = [s for s in spans.get_finished_spans() if self.tool in s.name or self.limiter in s.name]
        by_id = {s.context.span_id: s for s in mine}
        span_view = sorted(
            (
                (
                    self._norm(s.name),
                    self._norm(
                        {k: v for k, v in (s.attributes or {}).items() if k != names.GEN_AI_TOOL_CALL_ID}
                    ),
                    s.status.status_code.name,
                    s.status.description,
                    tuple((e.name, self._norm(_untimed(e.attributes))) for e in s.events),
                    self._norm(by_id[s.parent.span_id].name)
                    if s.parent and s.parent.span_id in by_id
                    else None,
                )
                for s in mine
            ),
            key=repr,  # attributes are dicts: order by their text
        )
        data = otel.READER.get_metrics_data()  # one collection for every metric below
        metric_view = {
            "duration": sorted(
                (a[names.OUTCOME], p.count)
                for a, p in otel.points(names.TOOL_DURATION, data, **{names.GEN_AI_TOOL_NAME: self.tool})
            ),
            "retries": sorted(
                (a[names.RETRY_REASON], p.value)
                for a, p in otel.points(names.RETRY_ATTEMPTS, data, **{names.GEN_AI_TOOL_NAME: self.tool})
            ),
            "timeouts": [
                p.value for _, p in otel.points(names.TIMEOUTS, data, **{names.GEN_AI_TOOL_NAME: self.tool})
            ],
            "rejected": [
                p.value
                for _, p in otel.points(names.LIMITER_REJECTED, data, **{names.LIMITER_NAME: self.limiter})
            ],
            "admitted": [
                p.value
                for _, p in otel.points(names.LIMITER_ADMITTED, data, **{names.LIMITER_NAME: self.limiter})
            ],
            "waits": [
                p.count
                for _, p in otel.points(names.LIMITER_WAIT, data, **{names.LIMITER_NAME: self.limiter})
            ],
        }
        logs = [
            (r.levelname, getattr(r, "event_type", None), getattr(r, "attempt", None)) for r in self.records
        ]
        limiter = next((layer for layer in self.layers if isinstance(layer, ConcurrencyLimit)), None)
        return {
            "in_flight": limiter.in_flight if limiter is not None else 0,
            "spans": span_view,
            "metrics": metric_view,
            "events": self.events,
            "logs": logs,
        }


def _untimed(attributes: Any) -> dict[str, Any]:
    """An event's attributes without what measures time (a queue wait's seconds)."""
    return {k: v for k, v in (attributes or {}).items() if k != names.LIMITER_WAIT_S}


def _outcome(run: Run, result: Any) -> Any:
    if isinstance(result, BaseException):
        return ("raised", type(result).__name__, run._norm(str(result)))
    return ("returned", result)


async def compare(
    scenario: Callable[[Run], Awaitable[Any]], spans: InMemorySpanExporter, **options: Any
) -> Any:
    seen = []
    for fused in (True, False):
        run = Run(fused, **options)
        try:
            result = await scenario(run)
        except BaseException as exc:  # the outcome is compared, cancellation included
            result = exc
        seen.append((_outcome(run, result), run.record(spans)))
    (fused_outcome, fused_record), (generic_outcome, generic_record) = seen
    assert fused_outcome == generic_outcome
    assert fused_record == generic_record
    assert fused_record["in_flight"] == 0  # no scenario leaks a slot
    return fused_outcome, fused_record


async def test_success_is_the_same(spans: InMemorySpanExporter) -> None:
    async def scenario(run: Run) -> Any:
        async def ok() -> int:
            return 42

        return await run.wrap(ok)()

    outcome, record = await compare(scenario, spans)
    assert outcome == ("returned", 42)
    assert record["metrics"]["duration"] == [("success", 1)] and record["metrics"]["admitted"] == [1]
    assert [e[0] for e in record["events"]] == ["node_success"]
    assert [log[1] for log in record["logs"]] == ["node_start", "node_success"]


async def failing(run: Run) -> Any:
    async def boom() -> None:
        raise ValueError("boom")

    return await run.wrap(boom)()


async def flaky(run: Run) -> Any:
    """Two connection failures, then a success."""
    failures = [ConnectionError("down"), ConnectionError("down")]

    async def tool() -> str:
        if failures:
            raise failures.pop()
        return "up"

    return await run.wrap(tool)()


async def slow(run: Run) -> Any:
    async def sleeps() -> None:
        await asyncio.sleep(5)

    return await run.wrap(sleeps)()


async def cancelled(run: Run) -> Any:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await asyncio.sleep(5)

    task = asyncio.ensure_future(run.wrap(waits)())
    await started.wait()
    task.cancel()
    try:
        return await task
    finally:
        limiter = next((layer for layer in run.layers if isinstance(layer, ConcurrencyLimit)), None)
        assert limiter is None or limiter.in_flight == 0  # the slot is never leaked


async def test_a_failure_is_the_same(spans: InMemorySpanExporter) -> None:
    outcome, record = await compare(failing, spans)
    assert outcome == ("raised", "ValueError", "boom")
    assert record["metrics"]["duration"] == [("error", 1)]
    assert record["spans"][0][2] == "ERROR"


async def test_retries_are_the_same(spans: InMemorySpanExporter) -> None:
    outcome, record = await compare(flaky, spans)
    assert outcome == ("returned", "up")
    assert record["metrics"]["retries"] == [("connection", 2)] and record["metrics"]["admitted"] == [3]
    assert [e[0] for e in record["events"]] == ["node_retry", "node_retry", "node_success"]
    assert sum(1 for s in record["spans"] if s[0] == names.SPAN_ATTEMPT.format(tool="TOOL")) == 3


async def test_timeouts_are_the_same(spans: InMemorySpanExporter) -> None:
    outcome, record = await compare(slow, spans, timeout_s=0.02)
    assert outcome == ("raised", "ToolTimeoutError", str(ToolTimeoutError("TOOL", 0.02)))
    assert record["metrics"]["timeouts"] == [3] and record["metrics"]["duration"] == [("timeout", 1)]
    assert [e[0] for e in record["events"]] == ["node_timeout", "node_retry"] * 2 + [
        "node_timeout",
        "node_error",
    ]


async def test_cancellation_is_the_same(spans: InMemorySpanExporter) -> None:
    outcome, record = await compare(cancelled, spans)
    assert outcome[:2] == ("raised", "CancelledError")
    assert record["metrics"]["duration"] == [("cancelled", 1)]
    assert [e[0] for e in record["events"]] == ["node_error"]


async def test_waiting_and_rejection_are_the_same(spans: InMemorySpanExporter) -> None:
    async def scenario(run: Run) -> Any:
        release = asyncio.Event()
        entered: list[int] = []

        async def held(n: int) -> int:
            entered.append(n)
            await release.wait()
            return n

        tool = run.wrap(held)
        first = asyncio.ensure_future(tool(1))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(tool(2))  # waits: the limit is 1
        await asyncio.sleep(0.01)
        rejected: BaseException | None = None
        try:
            await tool(3)  # the queue (1) is full
        except Exception as exc:
            rejected = exc
        release.set()
        return (await first, await second, type(rejected).__name__, entered)

    outcome, record = await compare(scenario, spans, limit=1, max_queue=1)
    assert outcome == ("returned", (1, 2, "LimiterRejectedError", [1, 2]))
    assert record["metrics"]["rejected"] == [1] and record["metrics"]["waits"] == [1]
    waited = [e for s in record["spans"] for e in s[4] if e[0] == names.EVENT_QUEUE_WAIT]
    assert len(waited) == 1 and waited[0][1][names.LIMITER_NAME] == "LIMIT"


async def test_the_built_in_layers_run_in_one_frame() -> None:
    """What the comparison above relies on: the default layers are fused (no layer's own ``__call__`` on the
    stack), and a user's layer between them leaves each in its own frame."""

    async def frames(run: Run) -> list[str]:
        async def boom() -> None:
            raise ValueError("boom")

        async def call() -> list[str]:
            try:
                await run.wrap(boom)()
            except ValueError as exc:
                return [
                    f"{f.filename.rsplit('/', 1)[-1]}:{f.name}"
                    for f in traceback.extract_tb(exc.__traceback__)
                ]
            raise AssertionError("no error")

        return await call()

    fused, generic = await frames(Run(True)), await frames(Run(False))
    layer_frames = {
        "events.py:__call__",
        "retry.py:__call__",
        "concurrency.py:__call__",
        "timeout.py:__call__",
    }
    assert not layer_frames & set(fused)
    assert layer_frames <= set(generic)


@pytest.mark.parametrize("position", [0, 1, 2, 3, 4])
async def test_a_user_layer_anywhere_sees_every_call(position: int, spans: InMemorySpanExporter) -> None:
    seen: list[int] = []

    class Counting:
        async def __call__(self, call: Call, call_next: CallNext) -> Any:
            seen.append(call.attempt)
            return await call_next(call)

    run = Run(True)
    layers = list(run.layers)
    layers.insert(position, Counting())
    failures = [ConnectionError("down")]

    async def flaky() -> str:
        if failures:
            raise failures.pop()
        return "up"

    assert await wrap(flaky, *layers, name=run.tool)() == "up"
    # Outside Retry it sees the call once; inside, each attempt.
    assert seen == ([1] if position <= 1 else [1, 2])
    assert otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: run.tool}) == 1


async def test_the_logger_level_is_read_as_it_is_now() -> None:
    """The fused run reads a stdlib logger's level cache: a level changed (or the logger disabled) between
    calls decides the next call's records, as ``isEnabledFor`` would."""
    run = Run(True)
    run.logger.setLevel(logging.WARNING)

    async def ok() -> int:
        return 1

    # No latency callback: the logger alone decides (the path that reads its cache).
    tool = wrap(ok, log_flow_events(run.logger), *run.layers[1:], name=run.tool)
    await tool()
    assert run.records == []
    run.logger.setLevel(logging.INFO)
    await tool()
    assert [getattr(r, "event_type", None) for r in run.records] == ["node_success"]
    run.logger.disabled = True
    await tool()
    assert len(run.records) == 1
    run.logger.disabled = False
    run.logger.setLevel(logging.DEBUG)
    await tool()
    assert [getattr(r, "event_type", None) for r in run.records[1:]] == ["node_start", "node_success"]
