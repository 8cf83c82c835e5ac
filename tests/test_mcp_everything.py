"""The MCP client against the protocol's reference server, ``@modelcontextprotocol/server-everything``, over stdio
and over streamable HTTP: content exactly as MCP sends it, catalog metadata, progress and log notifications,
retry safety from annotations, and telemetry without the client libraries' spans (or their leaks)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from penguiflow.errors import ToolExecutionError, ToolTimeoutError
from penguiflow.middleware import FlowEvent, Retry, Timeout, log_flow_events
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.hooks import Elicitation, Sampling
from tests.support import everything, otel

pytestmark = pytest.mark.timeout(90)

NO_RETRY = RetryPolicy(max_attempts=1)
FAST_RETRY = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.05, wait_exponential_max_s=0.1)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    with everything.http_server() as url:
        yield url


@pytest.fixture(params=["stdio", "http"])
def connection(request: pytest.FixtureRequest) -> str:
    if request.param == "stdio":
        return everything.stdio_command()
    url: str = request.getfixturevalue("http_url")
    return url


def config(connection: str, **overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": otel.unique("everything").replace(".", "_"),
        "transport": TransportType.MCP,
        "connection": connection,
        "timeout_s": 20,
        "retry_policy": NO_RETRY,
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


@pytest.fixture
async def node(connection: str) -> AsyncIterator[ToolNode]:
    async with ToolNode(config(connection)) as opened:
        yield opened


# --- content as MCP sends it --------------------------------------------------------------------------------


async def test_every_content_kind_comes_back_in_mcps_json_shape(node: ToolNode) -> None:
    name = node.name
    image = await node.call(f"{name}.get-tiny-image")
    kinds = [block["type"] for block in image]
    assert "image" in kinds
    (picture,) = [block for block in image if block["type"] == "image"]
    assert picture["mimeType"] == "image/png" and picture["data"] and "mime_type" not in picture

    annotated = await node.call(
        f"{name}.get-annotated-message", {"messageType": "error", "includeImage": True}
    )
    text = next(block for block in annotated if block["type"] == "text")
    assert text["annotations"] == {"audience": ["user", "assistant"], "priority": 1.0}
    assert any(block["type"] == "image" and "annotations" in block for block in annotated)

    # annotations are kept even when every block is text
    success = await node.call(f"{name}.get-annotated-message", {"messageType": "success"})
    assert isinstance(success, list) and all(block["type"] == "text" for block in success)
    assert all("annotations" in block for block in success)

    links = await node.call(f"{name}.get-resource-links", {"count": 2})
    resource_links = [block for block in links if block["type"] == "resource_link"]
    assert len(resource_links) == 2
    assert {"uri", "name", "mimeType"} <= set(resource_links[0])

    reference = await node.call(f"{name}.get-resource-reference", {})
    (embedded,) = [block for block in reference if block["type"] == "resource"]
    assert (
        embedded["resource"]["uri"].startswith("demo://") and embedded["resource"]["mimeType"] == "text/plain"
    )

    assert await node.call(f"{name}.echo", {"message": "plain"}) == "Echo: plain"  # plain text stays text


async def test_structured_content_is_the_result_and_the_catalog_carries_mcp_metadata(node: ToolNode) -> None:
    weather = await node.call(f"{node.name}.get-structured-content", {"location": "Chicago"})
    assert set(weather) == {"temperature", "conditions", "humidity"}
    entry = node.get_tool("get-structured-content")
    assert entry.output_schema is not None and set(entry.output_schema["properties"]) == set(weather)
    echo = node.get_tool("echo")
    assert echo.title == "Echo Tool"
    assert echo.annotations["readOnlyHint"] is True and echo.annotations["idempotentHint"] is True
    assert echo.idempotent is True
    assert node.get_tool("toggle-simulated-logging").idempotent is False


# --- notifications ---------------------------------------------------------------------------------------------


async def test_progress_reaches_flow_events_the_progress_callback_and_the_span(
    connection: str, spans: object
) -> None:
    seen_by_callback: list[FlowEvent] = []
    seen_by_logger: list[tuple[str, FlowEvent]] = []
    layers = [
        log_flow_events(latency_callback=lambda kind, _ms, event: seen_by_logger.append((kind, event))),
        Timeout(20),
    ]
    async with ToolNode(config(connection), layers=layers, progress_callback=seen_by_callback.append) as node:
        result = await node.call(f"{node.name}.trigger-long-running-operation", {"duration": 0.4, "steps": 4})
    assert "completed" in str(result).lower()
    progress = [event for kind, event in seen_by_logger if kind == "node_progress"]
    assert [event.attributes["progress"] for event in progress] == [1, 2, 3, 4]
    assert all(event.attributes["total"] == 4 for event in progress)
    assert [event.attributes["progress"] for event in seen_by_callback] == [1, 2, 3, 4]
    assert seen_by_callback[0].node_name == f"{node.name}.trigger-long-running-operation"
    (span,) = [s for s in otel.spans("execute_tool ") if s.attributes[names.TOOL_SOURCE] == node.name]
    events = [e for e in span.events if e.name == names.EVENT_MCP_PROGRESS]
    assert [e.attributes[names.MCP_PROGRESS] for e in events] == [1, 2, 3, 4]
    assert progress[0].trace_id == f"{span.context.trace_id:032x}"


async def test_server_log_messages_go_to_python_logging_and_the_span_never_to_stderr(
    connection: str, spans: object, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="penguiflow.mcp")
    async with ToolNode(config(connection)) as node:
        await node.call(f"{node.name}.toggle-simulated-logging")  # sends one message at once, then every 5 s
        await node.call(f"{node.name}.toggle-simulated-logging")  # off again
    shape = re.compile(
        r"(\w+)[ -]level[ -]message", re.IGNORECASE
    )  # "Debug-level message", "Alert level-message"
    records = [
        r for r in caplog.records if r.name == f"penguiflow.mcp.{node.name}" and shape.search(r.message)
    ]
    assert records, [r.message for r in caplog.records]
    mapped = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "notice": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
        "alert": logging.CRITICAL,
        "emergency": logging.CRITICAL,
    }
    for record in records:
        level = shape.search(record.message)
        assert level is not None and record.levelno == mapped[level.group(1).lower()], record.message
    toggles = [s for s in otel.spans("execute_tool ") if s.attributes[names.TOOL_SOURCE] == node.name]
    logged = [e for s in toggles for e in s.events if e.name == names.EVENT_MCP_LOG]
    assert logged and shape.search(str(logged[0].attributes[names.MCP_LOG_DATA]))
    printed = capfd.readouterr()
    assert not shape.search(printed.err) and "Starting default" not in printed.err


# --- retry safety from annotations -------------------------------------------------------------------------------


async def test_a_non_idempotent_tool_that_times_out_is_sent_once(connection: str) -> None:
    asked: list[Sampling] = []

    async def slow_llm(request: Sampling) -> str:
        asked.append(request)
        await asyncio.sleep(30)
        return "never"

    node = ToolNode(config(connection, timeout_s=1, retry_policy=FAST_RETRY), sampling_handler=slow_llm)
    async with node:
        entry = node.get_tool("trigger-sampling-request")
        assert entry.idempotent is False  # readOnlyHint and idempotentHint are false
        with pytest.raises(ToolTimeoutError):
            await node.call(f"{node.name}.trigger-sampling-request", {"prompt": "hi"})
        await asyncio.sleep(0.5)
    assert len(asked) == 1  # the server asked our LLM once: the tool ran once, despite max_attempts=3


async def test_an_idempotent_tool_that_times_out_is_retried(connection: str) -> None:
    events: list[tuple[str, FlowEvent]] = []
    layers = [
        log_flow_events(latency_callback=lambda kind, _ms, event: events.append((kind, event))),
        Retry(FAST_RETRY),
        Timeout(0.6),
    ]
    async with ToolNode(config(connection), layers=layers) as node:
        with pytest.raises(ToolTimeoutError):
            await node.call(f"{node.name}.trigger-long-running-operation", {"duration": 3, "steps": 30})
    attempts = {event.attempt for kind, event in events if kind == "node_progress"}
    assert attempts == {1, 2, 3}  # each attempt reached the server and reported progress there
    assert sum(kind == "node_retry" for kind, _ in events) == 2


# --- telemetry: our spans only, nothing leaked -------------------------------------------------------------------


async def test_one_span_per_call_and_no_span_of_the_client_libraries(node: ToolNode, spans: object) -> None:
    otel.SPANS.clear()
    await node.call(f"{node.name}.echo", {"message": "one"})
    exported = otel.SPANS.get_finished_spans()
    assert [s.name for s in exported] == [f"execute_tool {node.name}.echo"]
    (span,) = exported
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == names.SCOPE
    assert span.attributes[names.MCP_METHOD_NAME] == "tools/call"
    assert span.attributes[names.JSONRPC_REQUEST_ID]
    assert span.attributes[names.NETWORK_TRANSPORT] in {"pipe", "tcp"}
    if span.attributes[names.NETWORK_TRANSPORT] == "tcp":
        assert span.attributes[names.MCP_SESSION_ID]


async def test_connecting_exports_only_the_connect_span(connection: str, spans: object) -> None:
    otel.SPANS.clear()
    async with ToolNode(config(connection)) as node:
        pass
    exported = otel.SPANS.get_finished_spans()
    assert [s.name for s in exported] == [f"connect {node.name}"]
    assert exported[0].status.status_code.name == "UNSET"  # no ERROR "MCP send server/discover"


async def test_a_secret_echoed_in_a_json_rpc_error_is_in_no_exported_span(
    connection: str, spans: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "planted-s3cret-value-4711"
    monkeypatch.setenv("PF_TEST_PLANTED", secret)
    otel.SPANS.clear()
    cfg = config(connection, env={"PLANTED": "${PF_TEST_PLANTED}"})
    # server-everything lists trigger-url-elicitation only to a client that declares elicitation
    async with ToolNode(cfg, elicitation_handler=lambda request: None) as node:
        with pytest.raises(ToolExecutionError) as failed:
            # the server answers with JSON-RPC error -32042 quoting the URL it was given
            await node.call(
                f"{node.name}.trigger-url-elicitation",
                {"url": f"https://example.invalid/auth?token={secret}", "errorPath": True},
            )
    assert secret not in str(failed.value)
    exported = otel.SPANS.get_finished_spans()
    assert exported
    scopes = {s.instrumentation_scope.name for s in exported if s.instrumentation_scope is not None}
    assert scopes == {names.SCOPE}
    for span in exported:
        dumped = span.to_json()
        assert secret not in dumped, span.name


# --- resources, prompts and the server's own requests ----------------------------------------------------------


async def test_resources_and_prompts_are_traced_like_tool_calls(node: ToolNode, spans: object) -> None:
    otel.SPANS.clear()
    resources = await node.list_resources()
    assert resources and {"uri", "name"} <= set(resources[0])
    text = next(r for r in resources if r.get("mimeType") == "text/markdown" or "text" in r["uri"])
    (content,) = await node.read_resource(text["uri"])
    assert content["uri"] == text["uri"] and ("text" in content or "blob" in content)
    prompts = await node.list_prompts()
    assert {"simple-prompt", "args-prompt"} <= {p["name"] for p in prompts}
    prompt = await node.get_prompt("args-prompt", {"city": "Lyon", "state": "Rhone"})
    assert "Lyon" in json.dumps(prompt["messages"])
    exported = [
        s for s in otel.SPANS.get_finished_spans() if s.attributes.get(names.TOOL_SOURCE) == node.name
    ]
    assert [s.name for s in exported] == [
        f"execute_tool {node.name}.resources/list",
        f"execute_tool {node.name}.resources/read",
        f"execute_tool {node.name}.prompts/list",
        f"execute_tool {node.name}.prompts/get",
    ]
    assert exported[1].attributes[names.MCP_METHOD_NAME] == "resources/read"
    assert exported[1].attributes[names.MCP_RESOURCE_URI] == text["uri"]
    assert exported[3].attributes[names.GEN_AI_PROMPT_NAME] == "args-prompt"


async def test_a_secret_in_a_resource_error_is_masked_and_in_no_span(
    connection: str, spans: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "planted-resource-secret-0815"
    monkeypatch.setenv("PF_TEST_PLANTED2", secret)
    otel.SPANS.clear()
    async with ToolNode(config(connection, env={"PLANTED": "${PF_TEST_PLANTED2}"})) as node:
        with pytest.raises(ToolExecutionError, match="Unknown resource") as failed:
            await node.read_resource(f"demo://resource/dynamic/text/{secret}")
    assert secret not in str(failed.value)
    for span in otel.SPANS.get_finished_spans():
        assert secret not in span.to_json(), span.name


async def test_sampling_elicitation_and_roots_reach_the_nodes_hooks(connection: str) -> None:
    asked: list[Sampling] = []

    def llm(request: Sampling) -> str:
        asked.append(request)
        return "a haiku"

    async def user(request: Elicitation) -> dict[str, Any]:
        return {"name": "Ada"}  # the other fields come from the schema's defaults

    node = ToolNode(
        config(connection), sampling_handler=llm, elicitation_handler=user, roots=["/srv/project"]
    )
    async with node:
        sampled = await node.call(f"{node.name}.trigger-sampling-request", {"prompt": "write a haiku"})
        assert "a haiku" in json.dumps(sampled)
        assert asked and "write a haiku" in json.dumps(asked[0].messages)
        elicited = await node.call(f"{node.name}.trigger-elicitation-request")
        assert "Ada" in json.dumps(elicited)
        roots = await node.call(f"{node.name}.get-roots-list")
        assert "file:///srv/project" in json.dumps(roots)


async def test_without_hooks_the_node_declares_nothing_and_the_server_hides_what_needs_them(
    connection: str,
) -> None:
    # server-everything lists its elicitation, sampling and roots tools only to a client declaring each one
    # (the test above shows them with hooks): a node without hooks declares none, so its catalog has none.
    async with ToolNode(config(connection)) as node:
        listed = {entry.name.split(".", 1)[1] for entry in node.get_tools()}
    assert "echo" in listed
    assert {"trigger-elicitation-request", "trigger-sampling-request", "get-roots-list"}.isdisjoint(listed)
