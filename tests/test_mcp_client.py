"""The MCP client's edges that need no reference server: bounded connecting (a server that never lists its tools,
a planner deadline), typed authentication failures, a caller's cancellation, and the library's logging manners."""

from __future__ import annotations

import asyncio
import importlib
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import ToolAuthenticationError, ToolConnectionError
from penguiflow.planner import ReactPlanner
from penguiflow.planner.llm.scripted import ScriptedLLM
from penguiflow.telemetry import names
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from tests.reliability.servers import Route, ScriptedHttpServer
from tests.support import otel

pytestmark = pytest.mark.timeout(60)

HANGING = Path(__file__).parent / "support" / "hanging_mcp_server.py"


def hanging_config(**overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": otel.unique("hanging").replace(".", "_"),
        "transport": TransportType.MCP,
        "connection": f"{shlex.quote(sys.executable)} {shlex.quote(str(HANGING))}",
        "connect_timeout_s": 3.0,
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


async def test_connect_fails_within_connect_timeout_when_tools_list_never_comes() -> None:
    importlib.import_module(
        "penguiflow.tools.transports.mcp"
    )  # a one-time import (seconds) is not connecting
    # Long enough for the server to start and answer initialize even on a loaded machine: what the test shows is
    # that tools/list, which never comes, is bounded by the same connect_timeout_s.
    node = ToolNode(hanging_config(connect_timeout_s=8.0))
    started = time.monotonic()
    with pytest.raises(ToolConnectionError, match=r"tools/list not answered within connect_timeout_s=8"):
        await node.connect()
    elapsed = time.monotonic() - started
    assert 7.9 <= elapsed < 11, elapsed  # the bound (start, initialize and tools/list together), not the hour
    assert not node.connected


async def test_a_planner_deadline_covers_connecting_its_sources() -> None:
    node = ToolNode(hanging_config(connect_timeout_s=60.0))
    planner = ReactPlanner([*node.get_tools()], ScriptedLLM(["never asked"]))
    started = time.monotonic()
    result = await planner.run("anything", planning_hints={"deadline_s": 1.5})
    elapsed = time.monotonic() - started
    assert result.reason == "deadline" and result.answer is None
    assert elapsed < 4, elapsed
    await node.close()


# --- 401 / 403 -----------------------------------------------------------------------------------------------------


async def test_401_is_a_typed_authentication_error_and_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusing = ScriptedHttpServer({"/mcp": Route({"error": "invalid_token"}, status=401)})
    with refusing:
        await _refused(refusing, monkeypatch)


async def _refused(refusing: ScriptedHttpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{refusing.url}/mcp"
    monkeypatch.setenv("PF_TEST_BAD_TOKEN", "expired-token-123456")
    config = ExternalToolConfig(
        name=otel.unique("refused").replace(".", "_"),
        transport=TransportType.MCP,
        connection=url,
        auth_type=AuthType.BEARER,
        auth_config={"token": "${PF_TEST_BAD_TOKEN}"},
        retry_policy=RetryPolicy(max_attempts=5, wait_exponential_min_s=0.01, wait_exponential_max_s=0.02),
    )
    node = ToolNode(config)
    with pytest.raises(ToolAuthenticationError) as failed:
        await node.connect()
    error = failed.value
    assert error.status_code == 401 and not error.retryable
    assert "HTTP 401" in str(error) and "auth_type" in str(error) and "expired-token" not in str(error)
    once = refusing.hits["/mcp"]
    assert 1 <= once <= 2  # the protocol probe and initialize, each once
    with pytest.raises(ToolAuthenticationError):
        await node.call(f"{node.name}.anything")
    assert (
        refusing.hits["/mcp"] == 2 * once
    )  # the call connected once more; Retry (max_attempts=5) re-sent nothing


# --- cancellation and logging manners --------------------------------------------------------------------------------


async def test_a_callers_cancellation_is_cancelled_not_an_error(
    spans: object, caplog: pytest.LogCaptureFixture
) -> None:
    from penguiflow.demo.backends import mcp_server

    caplog.set_level(logging.DEBUG, logger="penguiflow")
    config = ExternalToolConfig(
        name=otel.unique("cancel").replace(".", "_"),
        transport=TransportType.MCP,
        connection=mcp_server.build_server("cancel", delay_s=0.0),
    )
    async with ToolNode(config) as node:
        task = asyncio.create_task(node.call(f"{node.name}.slow", {"seconds": 10}))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = [s for s in otel.spans("execute_tool ") if s.attributes[names.TOOL_SOURCE] == node.name]
    assert span.attributes[names.OUTCOME] == "cancelled"
    assert span.status.status_code.name == "UNSET" and names.ERROR_TYPE not in span.attributes
    flow = [r for r in caplog.records if r.name == "penguiflow.flow" and node.name in r.getMessage()]
    assert flow and all(r.levelno <= logging.INFO for r in flow), [
        (r.levelname, r.getMessage()) for r in flow
    ]


def test_the_library_prints_nothing_without_logging_configured() -> None:
    """With no logging configured, a WARNING of ours would reach Python's last-resort handler (stderr)."""
    code = (
        "import logging, penguiflow\n"
        "logging.getLogger('penguiflow.tools.mcp').warning('a warning of ours')\n"
        "logging.getLogger('penguiflow.flow').error('an error event of ours')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
