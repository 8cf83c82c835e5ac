"""What a ``tools/call`` asks of the server in its ``_meta``, against a real fastmcp server (stdio) that answers
with what it received: a progress token only when someone hears progress, and log messages only from the lowest
level someone hears — while nothing anyone hears is lost.

Telemetry off needs a process without the test session's SDK providers: those cases run in a subprocess."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import penguiflow
from penguiflow.middleware.call import Call
from penguiflow.middleware.events import FlowEvent
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from penguiflow.tools.transports.mcp.notifications import Notifications
from tests.support import otel

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[1]
SERVER = Path(__file__).parent / "support" / "meta_mcp_server.py"
PROGRESS_TOKEN = "progressToken"

# Each case: one call (a node for the cases without a progress_callback, one with); prints what the server saw
# and what was heard.
_CASES = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.NOTSET)
            self.records = []
        def emit(self, record):
            self.records.append(record)

    async def case(node, name, progress):
        flow, mcp = logging.getLogger("penguiflow.flow"), logging.getLogger("penguiflow.mcp")
        kept_flow, kept_mcp = Keep(), Keep()
        flow.addHandler(kept_flow)
        mcp.addHandler(kept_mcp)
        flow.setLevel(logging.DEBUG if name == "flow_debug" else logging.NOTSET)
        mcp.setLevel({"mcp_debug": logging.DEBUG, "mcp_error": logging.ERROR, "mcp_off": logging.CRITICAL + 1}
                     .get(name, logging.NOTSET))
        seen = await node.call("meta.request_meta", {})
        flow.removeHandler(kept_flow)
        mcp.removeHandler(kept_mcp)
        return {
            "seen": seen,
            "node_progress": [r.getMessage() for r in kept_flow.records if r.getMessage().startswith("node_progress")],
            "callback": [e.attributes["progress"] for e in progress],
            "server_logs": [r.levelname for r in kept_mcp.records if "line" in r.getMessage()],
        }

    async def main(connection):
        config = ExternalToolConfig(name="meta", transport=TransportType.MCP, connection=connection)
        for names in ([n for n in sys.argv[2:] if n != "callback"], ["callback"]):
            progress = []
            kwargs = {"progress_callback": progress.append} if names == ["callback"] else {}
            async with ToolNode(config, **kwargs) as node:  # the logger levels are read per call
                for name in names:
                    print(json.dumps({"case": name, **await case(node, name, progress)}), flush=True)

    transport, path = sys.argv[1].split(":", 1)
    if transport == "http":  # the same server's streamable HTTP app, under uvicorn in a thread
        import runpy
        from tests.support.asgi_server import serve_asgi
        with serve_asgi(runpy.run_path(path)["server"].http_app()) as base:
            asyncio.run(main(f"{base}/mcp"))
    else:
        asyncio.run(main(f"{sys.executable} {path}"))
    """
)


def _run_cases(transport: str, cases: list[str]) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", _CASES, f"{transport}:{SERVER}", *cases],
        cwd=ROOT,  # for tests.support
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = {line["case"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert set(found) == set(cases), done.stdout
    return found


@pytest.fixture(scope="module")
def telemetry_off() -> dict[str, dict[str, Any]]:
    return _run_cases("stdio", ["default", "flow_debug", "callback", "mcp_debug", "mcp_error", "mcp_off"])


@pytest.fixture(scope="module")
def telemetry_off_http() -> dict[str, dict[str, Any]]:
    # Over streamable HTTP a call goes through fastmcp's call_tool_mcp, not the stdio path's direct one.
    return _run_cases("http", ["default", "flow_debug", "callback"])


def test_no_progress_token_and_only_heard_log_levels_when_nobody_listens(
    telemetry_off: dict[str, dict[str, Any]],
) -> None:
    default = telemetry_off["default"]
    seen = dict(default["seen"])
    # No logging configured: the logger's level is the root's WARNING, so warnings and errors are asked for
    # (and arrive), debug and info are not.
    assert PROGRESS_TOKEN not in seen["keys"]
    assert seen["log_level"] == "warning"
    assert default["server_logs"] == ["WARNING", "ERROR"]
    assert default["node_progress"] == [] and default["callback"] == []


def test_a_listener_that_reads_progress_gets_a_token_and_the_progress(
    telemetry_off: dict[str, dict[str, Any]],
) -> None:
    flow_debug, callback = telemetry_off["flow_debug"], telemetry_off["callback"]
    assert PROGRESS_TOKEN in dict(flow_debug["seen"])["keys"]
    assert len(flow_debug["node_progress"]) == 1  # log_flow_events at DEBUG logs node_progress
    assert PROGRESS_TOKEN in dict(callback["seen"])["keys"]
    assert callback["callback"] == [1]


def test_over_http_too_a_progress_token_only_when_someone_hears(
    telemetry_off_http: dict[str, dict[str, Any]],
) -> None:
    default, flow_debug, callback = (
        telemetry_off_http[case] for case in ("default", "flow_debug", "callback")
    )
    assert PROGRESS_TOKEN not in dict(default["seen"])["keys"]
    assert dict(default["seen"])["log_level"] == "warning"
    assert PROGRESS_TOKEN in dict(flow_debug["seen"])["keys"]
    assert len(flow_debug["node_progress"]) == 1
    assert PROGRESS_TOKEN in dict(callback["seen"])["keys"]
    assert callback["callback"] == [1]


def test_the_log_level_asked_for_follows_the_sources_logger(telemetry_off: dict[str, dict[str, Any]]) -> None:
    debug, error, off = telemetry_off["mcp_debug"], telemetry_off["mcp_error"], telemetry_off["mcp_off"]
    assert dict(debug["seen"])["log_level"] == "debug"
    assert debug["server_logs"] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert dict(error["seen"])["log_level"] == "error"
    assert error["server_logs"] == ["ERROR"]
    assert dict(off["seen"])["log_level"] == "emergency"  # MCP has no level for "none"
    assert off["server_logs"] == []


async def test_with_telemetry_on_every_level_and_progress_reach_the_span(spans: object) -> None:
    config = ExternalToolConfig(
        name=otel.unique("meta").replace(".", "_"),
        transport=TransportType.MCP,
        connection=f"{sys.executable} {SERVER}",
    )
    async with ToolNode(config) as node:
        otel.SPANS.clear()
        seen = dict(await node.call(f"{node.name}.request_meta", {}))
        (span,) = otel.SPANS.get_finished_spans()
    assert PROGRESS_TOKEN in seen["keys"]
    assert seen["log_level"] == "debug"
    events = [event.name for event in span.events]
    assert events.count(names.EVENT_MCP_PROGRESS) == 1
    assert events.count(names.EVENT_MCP_LOG) == 4


async def test_progress_handled_after_its_call_ended_is_not_put_on_the_ended_span(
    spans: object, caplog: pytest.LogCaptureFixture
) -> None:
    # The mcp SDK spawns a task per progress notification: one may run after the result ended the call's span.
    notifications = Notifications("late", lambda text: text, None)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("execute_tool late.tool") as span:
        key, on_progress, _ = notifications.start(None)
        notifications.end(key)
        assert on_progress is not None  # the span records
    assert not span.is_recording()
    with caplog.at_level(logging.WARNING):
        await on_progress(1, 2, "late")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    (ended,) = otel.SPANS.get_finished_spans()
    assert ended.events == ()


async def test_a_node_declares_only_the_capabilities_it_has_a_hook_for() -> None:
    # MCP 2026-07-28 carries the client's capabilities in every request's _meta; the server parses them per call
    # and lists tools by them (server-everything hides its elicitation and sampling tools from a client without).
    def config() -> ExternalToolConfig:
        return ExternalToolConfig(
            name=otel.unique("caps").replace(".", "_"),
            transport=TransportType.MCP,
            connection=f"{sys.executable} {SERVER}",
        )

    async with ToolNode(config()) as bare:
        seen = dict(await bare.call(f"{bare.name}.request_meta", {}))
    assert seen["capabilities"] == {}
    assert seen["client_info"] == {"name": "penguiflow", "version": penguiflow.__version__}  # not fastmcp
    hooked = ToolNode(
        config(),
        elicitation_handler=lambda request: None,
        sampling_handler=lambda request: "text",
        roots=["/srv/project"],
    )
    async with hooked:
        declared = dict(await hooked.call(f"{hooked.name}.request_meta", {}))["capabilities"]
    assert declared["elicitation"] == {"form": {}, "url": {}}
    assert declared["sampling"] == {}
    assert "roots" in declared


async def test_progress_handled_after_its_call_ended_reaches_no_listener() -> None:
    # The mcp SDK spawns a task per progress notification, which may run after the call's result: a node_progress
    # after the call's node_success would tell a listener (a progress bar, say) that a finished call is running.
    heard: list[FlowEvent] = []
    notifications = Notifications("late", lambda text: text, heard.append)
    call = Call("late.tool", {}, source="late")
    key, on_progress, _ = notifications.start(call)
    assert on_progress is not None  # the node has a progress_callback
    await on_progress(1, 2, "in flight")
    notifications.end(key)
    await on_progress(2, 2, "after the result")
    assert [event.attributes["message"] for event in heard] == ["in flight"]
