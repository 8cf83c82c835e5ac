"""``penguiflow demo`` exports its traces and metrics over OTLP/HTTP: the real protobuf, one trace per agent run.

The demo runs as a subprocess with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at an :class:`OtlpReceiver`; the demo
passes the endpoint on to its stdio MCP server, whose own SDK exports the server's spans. The tree must be:
``invoke_agent`` → ``execute_tool`` (with a ``queue_wait`` event where the call queued, → ``attempt`` where it was
retried) → the MCP server's ``tools/call`` spans — all in the agent run's trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, iter_descendants, span_tree

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "penguiflow-demo-otlp"


@pytest.fixture(scope="module")
def exported() -> Iterator[tuple[OtlpReceiver, str]]:
    with OtlpReceiver() as receiver:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "PYTHONUNBUFFERED": "1"}
        # --duration is a hard bound: 6 s leaves the audit query's slow reports call (1 s timeout, a retry,
        # 1 s again: ~2.5 s) time to end as a timed-out call before the round is cut off.
        result = subprocess.run(
            [sys.executable, "-m", "penguiflow", "demo", "--duration", "6", "--service-name", SERVICE],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        # the MCP server subprocess flushes on exit; give its last batch a moment to land
        receiver.wait_for_spans(lambda spans: any(s.service_name != SERVICE for s in spans), timeout=15)
        yield receiver, output


def by_operation(spans: list[ReceivedSpan], operation: str) -> list[ReceivedSpan]:
    """penguiflow's own spans of a GenAI operation (fastmcp's client and server spans say execute_tool too)."""
    return [
        span
        for span in spans
        if span.attributes.get(names.GEN_AI_OPERATION_NAME) == operation and span.scope == names.SCOPE
    ]


def test_traces_arrive_as_protobuf_over_http(exported: tuple[OtlpReceiver, str]) -> None:
    receiver, _output = exported
    paths = {path for path, _encoding in receiver.requests}
    assert "/v1/traces" in paths and "/v1/metrics" in paths
    spans = receiver.spans()
    assert {span.service_name for span in spans} >= {SERVICE}
    assert by_operation(spans, names.OPERATION_INVOKE_AGENT)


def test_agent_run_tree_reaches_the_mcp_servers_spans(exported: tuple[OtlpReceiver, str]) -> None:
    receiver, _output = exported
    spans = receiver.spans()
    children = span_tree(spans)
    ids = {span.span_id for span in spans}
    agents = by_operation(spans, names.OPERATION_INVOKE_AGENT)
    assert agents

    seen_queue_wait = seen_attempt = seen_server = False
    for agent in agents:
        tree = list(iter_descendants(agent, children))
        assert all(span.trace_id == agent.trace_id for span in tree)
        tools = by_operation(tree, names.OPERATION_EXECUTE_TOOL)
        assert tools, f"{agent.name} has no execute_tool spans"
        for tool_span in tools:
            below = list(iter_descendants(tool_span, children))
            seen_queue_wait |= any(name == names.EVENT_QUEUE_WAIT for name, _ in tool_span.events)
            seen_attempt |= any(span.name.startswith("attempt ") for span in below)
            server = [span for span in below if span.service_name and span.service_name != SERVICE]
            if server:
                seen_server = True
                assert tool_span.attributes[names.TOOL_SOURCE] == "github"
                assert any(span.name.startswith("tools/call") for span in server), [s.name for s in server]
    assert seen_queue_wait, "no execute_tool span has a queue_wait event"
    assert seen_attempt, "no execute_tool span has an attempt child (no retry happened?)"
    assert seen_server, "the MCP server's spans did not join the agent's trace"
    # every parent id that is referenced exists: the tree is whole (nothing lost between two processes)
    dangling = [span.name for span in spans if span.parent_span_id and span.parent_span_id not in ids]
    assert not dangling, f"spans whose parent never arrived: {sorted(set(dangling))[:10]}"


def test_execute_tool_spans_carry_the_genai_attributes(exported: tuple[OtlpReceiver, str]) -> None:
    receiver, _output = exported
    tools = by_operation(receiver.spans(), names.OPERATION_EXECUTE_TOOL)
    outcomes = {span.attributes.get(names.OUTCOME, "success") for span in tools}
    assert {"success", "timeout", "rejected"} <= outcomes, outcomes
    for span in tools:
        assert span.name == names.SPAN_EXECUTE_TOOL.format(tool=span.attributes[names.GEN_AI_TOOL_NAME])
        assert span.attributes[names.GEN_AI_TOOL_CALL_ID]
    timed_out = [span for span in tools if span.attributes.get(names.OUTCOME) == "timeout"]
    assert any(name == names.EVENT_TIMEOUT for span in timed_out for name, _attrs in span.events)


def test_metrics_arrive_over_otlp_by_the_table_names(exported: tuple[OtlpReceiver, str]) -> None:
    receiver, _output = exported
    arrived = receiver.metric_names()
    expected = set(otel.ENGINE_METRICS)
    assert expected <= arrived, sorted(expected - arrived)
    assert all(
        metric.resource.get("service.name") == SERVICE
        for metric in receiver.metrics()
        if metric.name in expected
    )
