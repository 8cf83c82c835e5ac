"""MCP at the edges (issue "safe at the edges"): a result longer than ``max_response_bytes``, a server's flood of
stderr holding a secret, and command lines with line breaks. Local stdio servers started by the tests."""

from __future__ import annotations

import logging
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import ConfigurationError, ToolResponseTooLargeError
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.mcp import McpTransport, split_command
from penguiflow.tools.transports.mcp.command import MAX_LOGGED
from tests.support import everything, otel

pytestmark = pytest.mark.timeout(120)

SERVER = Path(__file__).parent / "edge_mcp_server.py"
MB = 1024 * 1024


def edge_config(**overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": otel.unique("edge").replace(".", "_"),
        "transport": TransportType.MCP,
        "connection": f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))}",
        "timeout_s": 60,
        "connect_timeout_s": 60,
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


def _rss_mb() -> float:
    return float(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / MB


async def test_a_result_over_max_response_bytes_is_refused_at_the_stream_and_not_retried() -> None:
    policy = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.05, wait_exponential_max_s=0.1)
    node = ToolNode(edge_config(max_response_bytes=1 * MB, retry_policy=policy))
    async with node:
        before = _rss_mb()
        started = time.monotonic()
        with pytest.raises(ToolResponseTooLargeError, match="max_response_bytes=1048576") as failed:
            await node.call(f"{node.name}.big", {"size": 32 * MB})
        elapsed = time.monotonic() - started
        grown = _rss_mb() - before
        assert failed.value.limit == 1 * MB and not failed.value.retryable
        # the SDK's own reader took 13 s for 32 MB (quadratic); this one stops reading after 1 MiB
        assert elapsed < 10, elapsed
        assert grown < 100, grown
        assert await node.call(f"{node.name}.big", {"size": 10}) == "x" * 10  # a fresh session works
        assert await node.call(f"{node.name}.served") == {
            "big": 1
        }  # the fresh server: the big call not re-sent


async def test_a_servers_stderr_flood_and_secret_never_reach_ours(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "stderr-secret-value-9931"
    monkeypatch.setenv("PF_TEST_EDGE_SECRET", secret)
    caplog.set_level(logging.INFO, logger="penguiflow.mcp")
    config = edge_config(env={"EDGE_STDERR_BYTES": str(200 * MB), "EDGE_SECRET": "${PF_TEST_EDGE_SECRET}"})
    async with ToolNode(config) as node:
        assert await node.call(f"{node.name}.big", {"size": 3}) == "xxx"  # the flood never blocked the server
    printed = capfd.readouterr()
    assert "noise" not in printed.err and secret not in printed.err
    assert len(printed.err) < 10_000
    ours = [r for r in caplog.records if r.name == f"penguiflow.mcp.{node.name}"]
    logged = sum(len(r.getMessage()) for r in ours)
    assert logged <= MAX_LOGGED + 10_000
    assert any("starting with token ***" in r.getMessage() for r in ours)
    assert all(secret not in r.getMessage() for r in ours)
    assert any(r.levelno == logging.WARNING and "stderr" in r.getMessage() for r in ours)


@pytest.mark.parametrize(
    "line", ["python server.py\nrm -rf /tmp/x", "python server.py\r", "python\x00 server.py"]
)
def test_a_command_line_with_a_line_break_or_nul_is_refused(line: str) -> None:
    with pytest.raises(ConfigurationError, match="connection: the MCP command line holds a line break"):
        split_command(line)
    with pytest.raises(ConfigurationError, match="line break"):
        McpTransport(ExternalToolConfig(name="nl", transport=TransportType.MCP, connection=line))


async def test_an_sse_event_over_max_response_bytes_is_refused_over_http() -> None:
    with everything.http_server() as url:
        config = edge_config(
            connection=url, max_response_bytes=256 * 1024, retry_policy=RetryPolicy(max_attempts=3)
        )
        async with ToolNode(config) as node:
            with pytest.raises(ToolResponseTooLargeError, match="max_response_bytes=262144") as failed:
                await node.call(f"{node.name}.echo", {"message": "y" * (1 * MB)})
            assert not failed.value.retryable
            assert (
                await node.call(f"{node.name}.echo", {"message": "small"}) == "Echo: small"
            )  # session intact
