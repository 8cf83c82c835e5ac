"""Attributes that come from outside are bounded: an LLM's 2 MB tool-call id or a server's huge tool name never
reach an exporter whole, whatever SDK the application installed; ``configure()`` sets the SDK's limits too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from penguiflow import tool, wrap
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.telemetry import names
from penguiflow.telemetry.bounds import MAX_OWN_VALUE_CHARS
from tests.support import otel

HUGE_ID = "call_" + "x" * 2_000_000


@tool(name="bounds.echo")
async def echo(text: str) -> str:
    return text


def exported_sizes(span: Any) -> list[int]:
    values = [len(span.name)] + [len(str(v)) for v in span.attributes.values()]
    for event in span.events:
        values += [len(str(v)) for v in (event.attributes or {}).values()]
    return values


async def test_a_2mb_tool_call_id_from_the_llm_is_not_exported_but_the_llm_gets_it_back(spans: Any) -> None:
    seen: list[Any] = []

    def reply(messages: Any, _tools: Any) -> Any:
        seen.extend(messages)
        if any(m.get("role") == "tool" for m in messages):
            return "done"
        return {"tool_calls": [{"name": "bounds.echo", "arguments": {"text": "hi"}, "id": HUGE_ID}]}

    planner = ReactPlanner(catalog=[echo], llm=ScriptedLLM(reply), agent_name="bounds")
    result = await planner.run("echo")
    assert result.answer == "done"
    # the conversation keeps the LLM's id whole: the tool message must answer the call it made
    assert any(m.get("role") == "tool" and m.get("tool_call_id") == HUGE_ID for m in seen)
    (span,) = otel.spans("execute_tool bounds.echo")
    call_id = span.attributes[names.GEN_AI_TOOL_CALL_ID]
    assert len(call_id) <= MAX_OWN_VALUE_CHARS and call_id.startswith("call_xxx")
    assert call_id.endswith(f"[{len(HUGE_ID)} chars]")
    assert max(size for s in otel.SPANS.get_finished_spans() for size in exported_sizes(s)) < 10_000


async def test_a_huge_tool_name_is_bounded_in_span_names_attributes_and_metric_labels(spans: Any) -> None:
    name = "bounds." + "n" * 100_000

    async def work() -> str:
        return "ok"

    assert await wrap(work, name=name)() == "ok"
    (span,) = [s for s in otel.SPANS.get_finished_spans() if s.name.startswith("execute_tool bounds.nnn")]
    assert max(exported_sizes(span)) <= len("execute_tool ") + MAX_OWN_VALUE_CHARS
    assert (
        otel.histogram_count(
            names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: span.attributes[names.GEN_AI_TOOL_NAME]}
        )
        == 1
    )


LIMITS = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from penguiflow.telemetry import configure
exporter = InMemorySpanExporter()
handle = configure(service_name="limits", span_exporters=[exporter], span_processor="simple")
with trace.get_tracer("t").start_as_current_span("s") as span:
    span.set_attribute("big", "v" * 100_000)
    span.add_event("e", {"big": "w" * 100_000})
(finished,) = exporter.get_finished_spans()
print(json.dumps([len(finished.attributes["big"]), len(finished.events[0].attributes["big"])]))
handle.shutdown()
"""


def limited(**env: str) -> list[int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | env
    done = subprocess.run(
        [sys.executable, "-c", LIMITS], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_configure_sets_span_attribute_limits_and_honours_the_environment() -> None:
    assert limited() == [4096, 4096]
    assert limited(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100") == [100, 100]
    assert limited(OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="50") == [50, 4096]
    assert limited(OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="300", OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="30") == [
        30,
        300,
    ]
