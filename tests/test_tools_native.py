"""``@tool``: Python functions as catalog entries — schema from hints, validation, events, timeout, no own limit."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import pytest
from pydantic import BaseModel

import penguiflow
from penguiflow import tool
from penguiflow.errors import ConfigurationError, ToolTimeoutError, ToolValidationError
from penguiflow.middleware import CallerLimits, ConcurrencyLimit, Timeout
from penguiflow.middleware.events import FlowEventLogger
from penguiflow.tools import NativeTool, ToolEntry, ValidateArguments
from tests.support import otel

_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"local.{prefix}{next(_ids)}"


class Point(BaseModel):
    x: int
    y: int


def test_bare_decorator_builds_an_entry_from_the_signature() -> None:
    @tool
    async def summarize(text: str, max_words: int = 50, point: Point | None = None) -> str:
        """Summarize a text.

        Longer explanation that is not part of the description.
        """
        return text

    assert isinstance(summarize, NativeTool) and isinstance(summarize, ToolEntry)
    assert summarize.name == "summarize" and summarize.source is None
    assert summarize.description == "Summarize a text."
    schema = summarize.input_schema
    assert schema["required"] == ["text"]
    assert schema["properties"]["max_words"] == {"default": 50, "title": "Max Words", "type": "integer"}
    assert schema["additionalProperties"] is False
    assert "Point" in schema["$defs"]
    assert penguiflow.tool is tool


def test_the_native_stack_has_no_per_source_limit() -> None:
    @tool(name="local.summarize", description="Summaries.", timeout_s=12)
    def summarize(text: str) -> str:
        return text

    layers = summarize.stack.layers
    assert [type(layer) for layer in layers] == [FlowEventLogger, ValidateArguments, CallerLimits, Timeout]
    assert not any(isinstance(layer, ConcurrencyLimit) for layer in layers)
    timeout = layers[-1]
    assert isinstance(timeout, Timeout) and timeout.seconds == 12.0
    assert summarize.name == "local.summarize" and summarize.description == "Summaries."
    assert summarize.timeout_s == 12.0


async def test_invoke_validates_coerces_and_calls_sync_and_async(spans: Any) -> None:
    name = unique("add")

    @tool(name=name)
    def add(a: int, b: int = 1, point: Point | None = None) -> dict[str, Any]:
        return {"sum": a + b, "point_type": type(point).__name__}

    async_name = unique("mul")

    @tool(name=async_name)
    async def mul(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a * b

    assert await add.invoke({"a": "2", "point": {"x": 1, "y": 2}}) == {"sum": 3, "point_type": "Point"}
    assert await mul.invoke({"a": 3, "b": 4}) == 12
    assert add(1, 2) == {"sum": 3, "point_type": "NoneType"}  # the plain function, no stack
    assert await mul(2, 5) == 10
    (span,) = otel.spans(f"execute_tool {name}")
    assert span.attributes["gen_ai.tool.type"] == "function"
    assert span.attributes["penguiflow.tool.source"] == ""


async def test_bad_arguments_never_run_the_function(spans: Any) -> None:
    calls: list[int] = []
    name = unique("count")

    @tool(name=name)
    def count(n: int) -> int:
        calls.append(n)
        return n

    with pytest.raises(ToolValidationError, match=r"argument 'n': Input should be a valid integer"):
        await count.invoke({"n": "many"})
    with pytest.raises(ToolValidationError, match=r"argument 'n': Field required"):
        await count.invoke({})
    with pytest.raises(ToolValidationError, match=r"argument 'm': Extra inputs are not permitted"):
        await count.invoke({"n": 1, "m": 2})
    assert calls == []
    errors = [s.attributes["error.type"] for s in otel.spans(f"execute_tool {name}")]
    assert errors == ["ToolValidationError"] * 3


async def test_timeout_applies_and_counts_as_timeout() -> None:
    name = unique("sleepy")

    @tool(name=name, timeout_s=0.2)
    async def sleepy() -> None:
        await asyncio.sleep(5)

    start = time.perf_counter()
    with pytest.raises(ToolTimeoutError):
        await sleepy.invoke({})
    assert time.perf_counter() - start < 1.5
    assert otel.value("penguiflow.timeouts", **{"gen_ai.tool.name": name}) == 1
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": name, "penguiflow.outcome": "timeout"}
        )
        == 1
    )


async def test_native_tools_run_unlimited_but_honour_caller_limits() -> None:
    running = peak = 0

    @tool(name=unique("io"))
    async def io() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await asyncio.gather(*(io.invoke({}) for _ in range(20)))
    assert peak == 20  # no per-source limit
    peak = 0
    planner_limit = ConcurrencyLimit(4, name=unique("planner").replace(".", "_"))
    await asyncio.gather(*(io.invoke({}, limits=(planner_limit,)) for _ in range(20)))
    assert peak == 4  # Level 1/2 limits still apply


async def test_flow_events_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="penguiflow.flow")
    name = unique("logged")

    @tool(name=name)
    def logged(x: int) -> int:
        return x

    await logged.invoke({"x": 1})
    events = [(r.event_type, r.node_name) for r in caplog.records if getattr(r, "node_name", None) == name]
    assert events == [("node_start", name), ("node_success", name)]


def test_unsupported_signatures_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\*args/\*\*kwargs"):

        @tool
        def variadic(*items: int) -> None: ...

    with pytest.raises(ConfigurationError, match="timeout_s"):

        @tool(timeout_s=0)
        def zero() -> None: ...
