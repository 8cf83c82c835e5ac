"""The MCP transport against a real fastmcp server: a stdio subprocess (the demo's server), an in-process server
and one served over streamable HTTP on 127.0.0.1. Server-side numbers come from the server's own ``stats`` tool."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastmcp.server.dependencies import get_http_headers

from penguiflow.demo.backends import mcp_server
from penguiflow.errors import ConfigurationError, ToolConnectionError, ToolExecutionError, ToolTimeoutError
from penguiflow.telemetry import names
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.mcp import McpTransport, split_command
from tests.support import otel
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.timing import eventually

pytestmark = pytest.mark.timeout(60)

NO_RETRY = RetryPolicy(max_attempts=1)


def stdio_config(
    name: str, *, delay_s: float = 0.05, env: dict[str, str] | None = None, **kw: Any
) -> ExternalToolConfig:
    return ExternalToolConfig(
        name=name,
        transport=TransportType.MCP,
        connection=mcp_server.command(),
        env={"PENGUIFLOW_MCP_DELAY_S": str(delay_s), **(env or {})},
        **kw,
    )


def node_name(prefix: str) -> str:
    return otel.unique(prefix).replace(".", "_")


@pytest.fixture
async def stdio_node() -> AsyncIterator[ToolNode]:
    node = ToolNode(stdio_config(node_name("gh"), delay_s=0.4, max_concurrency=3, timeout_s=10))
    async with node:
        yield node


# --- Level 3 against a stdio subprocess ---------------------------------------------------------------------


async def test_twelve_calls_never_run_more_than_three_on_the_server(stdio_node: ToolNode) -> None:
    node = stdio_node
    await node.call(f"{node.name}.reset_stats")
    limiter = node.limiter
    assert limiter is not None

    tools = ("get_user", "list_repos", "search_code", "create_issue")
    arguments: dict[str, dict[str, Any]] = {
        "get_user": {"username": "octocat"},
        "list_repos": {"org": "acme"},
        "search_code": {"query": "retry"},
        "create_issue": {"repo": "acme/app", "title": "bug"},
    }
    started = time.monotonic()
    tasks = [
        asyncio.create_task(node.call(f"{node.name}.{tool}", arguments[tool]))
        for tool in (tools[i % 4] for i in range(12))
    ]
    await eventually(lambda: limiter.queued == 9, timeout_s=10)
    # Mid-run, through the metrics: 9 calls wait in the node's queue while 3 run.
    assert otel.value(names.LIMITER_QUEUED, **{names.LIMITER_NAME: node.name}) == 9
    assert otel.value(names.LIMITER_IN_FLIGHT, **{names.LIMITER_NAME: node.name}) == 3
    results = await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started

    assert results[0] == {"login": "octocat", "name": "Octocat", "public_repos": 7}
    assert results[1] == [{"full_name": f"acme/repo-{i}", "stars": 10 * i} for i in range(5)]
    stats = await node.call(f"{node.name}.stats")
    assert stats["peak"] == 3  # never more than 3 at once, and 3 really ran together over one session
    assert stats["total"] == 12 and stats["calls"] == dict.fromkeys(tools, 3)
    # 12 calls of 0.4 s three at a time: 4 waves (~1.6 s), not 12 in a row (4.8 s)
    assert 1.5 < elapsed < 4.0, elapsed
    assert otel.value(names.LIMITER_QUEUED, **{names.LIMITER_NAME: node.name}) == 0


async def test_one_session_multiplexes_concurrent_calls() -> None:
    """Without a node limit, concurrent calls all run at once on the one stdio subprocess."""
    transport = McpTransport(stdio_config(node_name("mux"), delay_s=0.5))
    await transport.connect()
    try:
        pid = (await transport.call("stats", {}))["pid"]
        started = time.monotonic()
        await asyncio.gather(*(transport.call("get_user", {"username": f"u{i}"}) for i in range(10)))
        elapsed = time.monotonic() - started
        stats = await transport.call("stats", {})
        assert stats["pid"] == pid and stats["peak"] == 10
        assert elapsed < 2.5, elapsed  # 10 x 0.5 s in parallel, not 5 s in a row
    finally:
        await transport.close()
    await eventually(lambda: not _alive(pid), timeout_s=5)  # close() ends the subprocess


def _server_processes() -> list[int]:
    """Live children of this process running the demo MCP server."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            fields[0] != "Z"
            and int(fields[1]) == os.getpid()
            and b"penguiflow.demo.backends.mcp_server" in cmdline
        ):
            found.append(int(stat.parent.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_killed_server_fails_calls_in_flight_and_the_next_call_reconnects() -> None:
    node = ToolNode(stdio_config(node_name("kill"), retry_policy=NO_RETRY, timeout_s=20))
    async with node:
        pid = (await node.call(f"{node.name}.stats"))["pid"]
        in_flight = [asyncio.create_task(node.call(f"{node.name}.slow", {"seconds": 15})) for _ in range(3)]
        await eventually(lambda: node.limiter is not None and node.limiter.in_flight == 3)
        await asyncio.sleep(0.5)  # the requests are on the server
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()

        results = await asyncio.gather(*in_flight, return_exceptions=True)
        assert time.monotonic() - killed < 5  # promptly, not at the 15 s the tool would take or the timeout
        for result in results:
            assert isinstance(result, ToolConnectionError), result
            assert result.retryable and result.tool == f"{node.name}.slow"
            assert "connection lost" in str(result)

        stats = await node.call(f"{node.name}.stats")  # reconnects: a fresh subprocess
        assert stats["pid"] != pid and stats["total"] == 0
        assert await node.call(f"{node.name}.get_user", {"username": "back"}) == {
            "login": "back",
            "name": "Back",
            "public_repos": 4,
        }


async def test_killed_server_calls_in_flight_are_retried_on_the_fresh_server() -> None:
    policy = RetryPolicy(max_attempts=2, wait_exponential_min_s=0.05, wait_exponential_max_s=0.1)
    node = ToolNode(stdio_config(node_name("killretry"), retry_policy=policy, timeout_s=20))
    async with node:
        pid = (await node.call(f"{node.name}.stats"))["pid"]
        in_flight = [asyncio.create_task(node.call(f"{node.name}.slow", {"seconds": 1})) for _ in range(2)]
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        assert await asyncio.gather(*in_flight) == ["slept 1s", "slept 1s"]
        stats = await node.call(f"{node.name}.stats")
        assert stats["pid"] != pid and stats["calls"] == {"slow": 2}


async def test_a_timed_out_call_is_cancelled_on_the_server_too() -> None:
    """The node's slot is freed at the timeout; the server stops the work too (MCP cancellation), so the server
    never runs more than ``max_concurrency`` calls because of abandoned ones."""
    node = ToolNode(
        stdio_config(node_name("cancel"), max_concurrency=2, timeout_s=0.5, retry_policy=NO_RETRY)
    )
    async with node:
        results = await asyncio.gather(
            *(node.call(f"{node.name}.slow", {"seconds": 5}) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(result, ToolTimeoutError) for result in results), results
        stats = await node.call(f"{node.name}.stats")
        assert stats["current"] == 0 and stats["peak"] == 2 and stats["calls"] == {"slow": 4}


async def test_reconnect_outlives_a_timeout_shorter_than_the_server_start() -> None:
    """Starting the subprocess takes longer than ``timeout_s``: the connection keeps opening in the background
    across timed-out attempts, and a later attempt uses it."""
    # As many attempts as the start takes (a loaded machine starts a Python subprocess in seconds, not tenths):
    # the point is that they share one starting connection, bounded by the deadline, not how many there are.
    policy = RetryPolicy(
        max_attempts=100, wait_exponential_min_s=0.2, wait_exponential_max_s=0.5, deadline_s=60
    )
    node = ToolNode(stdio_config(node_name("restart"), timeout_s=0.3, retry_policy=policy))
    async with node:
        pid = (await node.call(f"{node.name}.stats"))["pid"]
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert await node.call(f"{node.name}.get_user", {"username": "again"}) == {
            "login": "again",
            "name": "Again",
            "public_repos": 5,
        }
        stats = await node.call(f"{node.name}.stats")
        # an attempt that timed out after its request reached the new server may have run there too
        assert stats["pid"] != pid and set(stats["calls"]) == {"get_user"}
        assert _server_processes() == [stats["pid"]]  # timed-out attempts started no extra subprocess
    # at least one attempt timed out while the new server was starting
    assert otel.value(names.TIMEOUTS, **{names.GEN_AI_TOOL_NAME: f"{node.name}.get_user"}) >= 1


async def test_the_subprocess_gets_the_configured_env_not_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PF_TEST_PARENT_ONLY", "must-not-leak")
    monkeypatch.setenv("PF_TEST_TOKEN_SOURCE", "tok-123456")
    config = stdio_config(node_name("env"), env={"GITHUB_TOKEN": "${PF_TEST_TOKEN_SOURCE}"})
    async with ToolNode(config) as node:
        pid = (await node.call(f"{node.name}.stats"))["pid"]
        environ = _environ(pid)
    assert environ["GITHUB_TOKEN"] == "tok-123456"  # ${VAR} expanded at connect time
    assert environ["PATH"] == os.environ["PATH"]  # the minimal inherited set
    assert "PF_TEST_PARENT_ONLY" not in environ and "PF_TEST_TOKEN_SOURCE" not in environ


# --- trace context across the process boundary ---------------------------------------------------------------


async def test_the_servers_spans_join_the_execute_tool_span(spans: object) -> None:
    service = node_name("mcp-server")
    with OtlpReceiver() as receiver:
        config = stdio_config(
            node_name("traced"),
            env={"PENGUIFLOW_MCP_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": service},
        )
        async with ToolNode(config) as node:
            await node.call(f"{node.name}.get_user", {"username": "traced"})
            server_spans = await asyncio.to_thread(
                receiver.wait_for_spans,
                lambda got: any(s.service_name == service and s.name.startswith("tools/call") for s in got),
            )

    (execute_tool,) = [s for s in otel.spans("execute_tool ") if s.attributes[names.TOOL_SOURCE] == node.name]
    assert execute_tool.name == f"execute_tool {node.name}.get_user"
    trace_id = f"{execute_tool.context.trace_id:032x}"
    (server_call,) = [
        s for s in server_spans if s.service_name == service and s.name == "tools/call get_user"
    ]
    assert server_call.trace_id == trace_id

    # Walk up from the server's span, through this process's spans, to our execute_tool span.
    parents = {
        f"{s.context.span_id:016x}": f"{s.parent.span_id:016x}" if s.parent else ""
        for s in otel.SPANS.get_finished_spans()
    }
    parents.update({s.span_id: s.parent_span_id for s in server_spans})
    target = f"{execute_tool.context.span_id:016x}"
    chain = [server_call.parent_span_id]
    while chain[-1] and chain[-1] != target and len(chain) < 10:
        chain.append(parents.get(chain[-1], ""))
    assert chain[-1] == target, f"the server span does not descend from execute_tool: {chain}"


# --- other connections -------------------------------------------------------------------------------------------


async def test_in_process_server_and_tool_filter() -> None:
    server = mcp_server.build_server("inproc", delay_s=0.0)
    name = node_name("inproc")
    node = ToolNode(
        ExternalToolConfig(
            name=name, transport=TransportType.MCP, connection=server, tool_filter=["create_*", "fail"]
        )
    )
    async with node:
        assert sorted(entry.name for entry in node.get_tools()) == [f"{name}.create_issue", f"{name}.fail"]
        entry = node.get_tool("create_issue")
        assert entry.input_schema["required"] == ["repo", "title"]
        issue = await node.call(f"{name}.create_issue", {"repo": "a/b", "title": "t"})
        assert issue == {"repo": "a/b", "number": 1, "title": "t", "body": "", "state": "open"}
        with pytest.raises(ToolExecutionError, match="reported an error: out of coffee") as failed:
            await node.call(f"{name}.fail", {"message": "out of coffee"})
        assert not failed.value.retryable and failed.value.tool == f"{name}.fail"
    assert server.stats.calls == {"create_issue": 1, "fail": 1}  # type: ignore[attr-defined]


@pytest.fixture
def http_mcp_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The demo's MCP server over streamable HTTP on 127.0.0.1, recording the headers its tools see."""
    server = mcp_server.build_server("httpmcp", delay_s=0.0)
    seen: list[dict[str, str]] = []

    @server.tool
    def whoami() -> str:
        """Who is asking."""
        seen.append(get_http_headers(include={"authorization"}))
        return "you"

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(server.http_app(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/mcp", seen
    uv.should_exit = True
    thread.join(10)
    sock.close()


async def test_streamable_http_with_bearer_auth(
    http_mcp_server: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = http_mcp_server
    monkeypatch.setenv("PF_TEST_MCP_TOKEN", "s3cret-token-value")
    name = node_name("httpmcp")
    config = ExternalToolConfig(
        name=name,
        transport=TransportType.MCP,
        connection=url,
        auth_type=AuthType.BEARER,
        auth_config={"token": "${PF_TEST_MCP_TOKEN}"},
    )
    async with ToolNode(config) as node:
        assert f"{name}.whoami" in {entry.name for entry in node.get_tools()}
        assert await node.call(f"{name}.whoami") == "you"
        assert await node.call(f"{name}.list_repos", {"org": "o", "limit": 1}) == [
            {"full_name": "o/repo-0", "stars": 0}
        ]
    assert seen[-1]["authorization"] == "Bearer s3cret-token-value"


async def test_unreachable_http_server_is_a_connection_error_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    monkeypatch.setenv("PF_TEST_MCP_TOKEN2", "another-secret-token")
    config = ExternalToolConfig(
        name=node_name("down"),
        transport=TransportType.MCP,
        connection=f"http://127.0.0.1:{port}/mcp",
        auth_type=AuthType.BEARER,
        auth_config={"token": "${PF_TEST_MCP_TOKEN2}"},
        timeout_s=5,
    )
    with pytest.raises(ToolConnectionError, match="could not connect") as failed:
        await ToolNode(config).connect()
    assert "another-secret-token" not in str(failed.value)


# --- the command line is never given to a shell --------------------------------------------------------------


async def test_shell_operators_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = ExternalToolConfig(
        name=node_name("shell"),
        transport=TransportType.MCP,
        connection=f"python -c 'print(1)'; touch {marker}",
    )
    with pytest.raises(ConfigurationError, match=r"connection: shell operator ';'.*without a shell"):
        await ToolNode(config).connect()
    await asyncio.sleep(0.2)
    assert not marker.exists()


async def test_shell_syntax_inside_arguments_stays_literal(tmp_path: Path) -> None:
    """Backticks and ``$(...)``-free expansions reach the program as plain arguments: no shell runs them."""
    marker = tmp_path / "pwned"
    config = ExternalToolConfig(
        name=node_name("literal"),
        transport=TransportType.MCP,
        connection=f"{sys.executable} -c pass `touch {marker}` $HOME",
        timeout_s=10,
    )
    started = time.monotonic()
    with pytest.raises(ToolConnectionError, match="could not connect to the MCP server"):
        await ToolNode(config).connect()  # python ran 'pass' and exited: no MCP server there
    assert time.monotonic() - started < 8
    assert not marker.exists()


def test_split_command() -> None:
    assert split_command("npx -y @modelcontextprotocol/server-github") == [
        "npx",
        "-y",
        "@modelcontextprotocol/server-github",
    ]
    assert split_command("python -c 'import a; a.b()'") == ["python", "-c", "import a; a.b()"]  # quoted: fine
    for bad in ("a | b", "a && b", "a > out", "a < in", "a & ", "a $(b)"):
        with pytest.raises(ConfigurationError, match="shell operator"):
            split_command(bad)
    with pytest.raises(ConfigurationError, match="cannot parse"):
        split_command("python -c 'unclosed")


async def test_missing_program_is_a_connection_error() -> None:
    config = ExternalToolConfig(
        name=node_name("missing"), transport=TransportType.MCP, connection="no-such-program-xyz --stdio"
    )
    with pytest.raises(ToolConnectionError, match="'no-such-program-xyz'"):
        await ToolNode(config).connect()


def test_connection_of_another_type_is_refused() -> None:
    config = ExternalToolConfig(name="odd", transport=TransportType.MCP, connection=42)
    with pytest.raises(ConfigurationError, match="connection: an MCP connection is a command line"):
        McpTransport(config)


async def test_a_stdio_server_starts_when_sys_stderr_is_not_a_real_file() -> None:
    """Jupyter, capsys and log redirections replace ``sys.stderr`` with an object without a file descriptor;
    the subprocess's stderr then goes to the process's original one instead of failing the connect."""
    import io

    original = sys.stderr
    sys.stderr = io.StringIO()
    try:
        async with ToolNode(stdio_config(node_name("nofileno"), max_concurrency=1)) as node:
            assert (await node.call(f"{node.name}.get_user", {"username": "x"}))["login"] == "x"
    finally:
        sys.stderr = original
