"""Secrets stay secret: a token planted in ``auth_config`` (bearer and API-key header), in the ``env`` of an MCP
stdio server, in an ``Authorization`` header and as the LLM's API key never shows up in a span, a metric, a log
record, an exception (message, repr or chained cause) or the process's output — through a planner run over HTTP
and MCP sources whose servers echo the token back (401, 500 with the token in the body, a tool error quoting it)
and through connect errors. And a ``connection`` with shell metacharacters never reaches a shell.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shlex
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from structlog.testing import capture_logs

from penguiflow.errors import ConfigurationError, ToolConnectionError, ToolError
from penguiflow.middleware import RetryPolicy, log_flow_events
from penguiflow.planner import LLMAuthenticationError, OpenAIChatClient, ReactPlanner
from penguiflow.planner.llm.openai import encode_name
from penguiflow.tools import AuthType, ExternalToolConfig, ToolNode, TransportType
from tests.reliability.servers import (
    GARBAGE_COMMAND,
    ChatCompletions,
    Route,
    ScriptedHttpServer,
    chat_reply,
    function_call,
    iter_chain,
)
from tests.support import otel

pytestmark = pytest.mark.timeout(90)

TOKEN_VAR = "PF_RELIABILITY_SECRET"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"sk-SECRET-{secrets.token_hex(12)}"
    monkeypatch.setenv(TOKEN_VAR, value)
    return value


class Everything(logging.Handler):
    """Every log record of the process, as text: message, fields and formatted exception."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} {record.getMessage()} {record.__dict__!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        self.texts.append(text)


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    flow = logging.getLogger("penguiflow.flow")
    saved = (root.level, flow.level, flow.propagate)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    flow.setLevel(logging.DEBUG)
    flow.propagate = True
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        flow.setLevel(saved[1])
        flow.propagate = saved[2]


def echo_credentials(headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    """A careless server's 500: every credential it received, raw, bare, URL-encoded and in JSON."""
    received = headers.get("authorization") or headers.get("x-api-key") or ""
    bare = received.split()[-1] if received else ""
    return 500, {
        "detail": f"internal error handling credentials {received!r}",
        "bare": bare,
        "url_encoded": f"/login?token={quote(bare, safe='')}",
        "as_json": json.dumps({"token": bare}),
    }


def unauthorized(headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    received = headers.get("authorization") or headers.get("x-api-key") or ""
    return 401, {"detail": f"credentials {received!r} are not valid"}


def openapi() -> dict[str, Any]:
    ok = {"200": {"description": "OK"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "careless", "version": "1"},
        "paths": {
            f"/{op}": {"get": {"operationId": op, "summary": op, "responses": ok}}
            for op in ("fine", "unauthorized", "boom")
        },
    }


@pytest.fixture
def careless_api() -> Iterator[ScriptedHttpServer]:
    routes = {
        "/openapi.json": Route(openapi()),
        "/fine": Route({"fine": True}),
        "/unauthorized": Route(respond=unauthorized),
        "/boom": Route(respond=echo_credentials),
    }
    with ScriptedHttpServer(routes) as server:
        yield server


def http_source(name: str, url: str, auth_type: AuthType, auth_config: dict[str, str]) -> ExternalToolConfig:
    return ExternalToolConfig(
        name=name,
        transport=TransportType.HTTP,
        connection=url,
        auth_type=auth_type,
        auth_config=auth_config,
        timeout_s=5,
        retry_policy=RetryPolicy(max_attempts=2, wait_exponential_min_s=0.01, wait_exponential_max_s=0.02),
    )


def structlog_layers(config: ExternalToolConfig) -> list[Any]:
    """The default stack, logging its flow events through structlog instead of the stdlib."""
    layers = ToolNode.default_layers(config)
    layers[0] = log_flow_events(structlog.get_logger("penguiflow.flow"))
    return layers


def dump_spans() -> list[str]:
    texts = []
    for span in otel.SPANS.get_finished_spans():
        texts.append(
            json.dumps(
                {
                    "name": span.name,
                    "attributes": dict(span.attributes or {}),
                    "events": [(e.name, dict(e.attributes or {})) for e in span.events],
                    "status": (str(span.status.status_code), span.status.description),
                    "links": [dict(link.attributes or {}) for link in span.links],
                    "resource": dict(span.resource.attributes),
                },
                default=str,
            )
        )
    return texts


def dump_metrics() -> str:
    data = otel.READER.get_metrics_data()
    return data.to_json() if data is not None else ""


def exception_texts(errors: list[BaseException]) -> list[str]:
    texts = []
    for error in errors:
        texts.append("".join(traceback.format_exception(error)))
        for link in iter_chain(error):
            texts += [str(link), repr(link), repr(getattr(link, "args", ()))]
    return texts


async def test_a_planted_token_appears_nowhere(
    token: str,
    careless_api: ScriptedHttpServer,
    all_logs: Everything,
    capfd: pytest.CaptureFixture[str],
    spans: Any,
) -> None:
    suffix = otel.unique("s").replace(".", "")
    bearer = http_source(f"bearer{suffix}", careless_api.url, AuthType.BEARER, {"token": f"${{{TOKEN_VAR}}}"})
    api_key = http_source(
        f"apikey{suffix}", careless_api.url, AuthType.API_KEY, {"header": "X-API-Key", "value": token}
    )
    authz = http_source(
        f"authz{suffix}",
        careless_api.url,
        AuthType.API_KEY,
        {"header": "Authorization", "value": f"Token ${{{TOKEN_VAR}}}"},
    )
    mcp = ExternalToolConfig(
        name=f"mcp{suffix}",
        transport=TransportType.MCP,
        connection=GARBAGE_COMMAND,
        env={"GARBAGE_TOKEN": f"${{{TOKEN_VAR}}}", "GARBAGE_QUIET": "1"},
        timeout_s=5,
        retry_policy=RetryPolicy(max_attempts=1),
    )
    nodes = [
        ToolNode(bearer, layers=structlog_layers(bearer)),
        ToolNode(api_key),
        ToolNode(authz),
        ToolNode(mcp, layers=structlog_layers(mcp)),
    ]
    errors: list[BaseException] = []
    with capture_logs() as structlog_events:
        async with asyncio.timeout(60):
            for node in nodes:
                await node.connect()
            # the servers saw the token: it was really sent (else "appears nowhere" would prove nothing)
            assert careless_api.requests and all(
                token in (h.get("authorization", "") + h.get("x-api-key", ""))
                for _, h, _ in careless_api.requests
            )

            # --- a planner run over every source, with the token as the LLM's API key too -------------------
            http_calls = [
                (f"{node.name}.{op}", {}) for node in nodes[:3] for op in ("fine", "unauthorized", "boom")
            ]
            mcp_calls = [
                (f"{mcp.name}.leak_secret", {}),
                (f"{mcp.name}.ok", {"x": 2}),
                (f"{mcp.name}.boom", {}),
            ]

            def script(request: dict[str, Any]) -> Any:
                if any(m["role"] == "tool" for m in request["messages"]):
                    return chat_reply(content="all done")
                return chat_reply(
                    tool_calls=[
                        function_call(encode_name(name), json.dumps(args), f"call_{i}")
                        for i, (name, args) in enumerate(http_calls + mcp_calls)
                    ]
                )

            with ChatCompletions(script) as chat:
                catalog = [entry for node in nodes for entry in node.get_tools()]
                planner = ReactPlanner(
                    catalog=catalog,
                    llm=OpenAIChatClient("m", api_key=token, base_url=chat.url),
                    agent_name="secrets",
                )
                result = await planner.run("use every tool", planning_hints={"max_parallel": 4})
                await planner.aclose()
                assert chat.headers[0]["authorization"] == f"Bearer {token}"
                observations = chat.bodies[-1]["messages"]
            assert result.answer == "all done"
            outcomes = {call.tool.split(".", 1)[1]: call.outcome for call in result.calls}
            assert outcomes == {
                "fine": "success",
                "unauthorized": "error",
                "boom": "error",
                "leak_secret": "error",
                "ok": "success",
            }
            failed = [call for call in result.calls if call.outcome == "error"]
            assert len(failed) == 8
            for call in failed:  # each quoted the token back, and each message has it masked
                if not (call.tool.startswith(mcp.name) and call.tool.endswith(".boom")):
                    assert call.error is not None and "***" in call.error, call

            # --- the same failures raised straight to a caller, and connect errors ------------------------------
            for node, tool_name in [
                *((node, op) for node in nodes[:3] for op in ("unauthorized", "boom")),
                (nodes[3], "leak_secret"),
                (nodes[3], "die"),
            ]:
                with pytest.raises(ToolError) as info:
                    await node.call(tool_name)
                errors.append(info.value)
            closed = ScriptedHttpServer()
            with closed:
                closed_url = closed.url
            for config in (
                http_source(f"gone{suffix}", closed_url, AuthType.BEARER, {"token": f"${{{TOKEN_VAR}}}"}),
                ExternalToolConfig(
                    name=f"mcpgone{suffix}",
                    transport=TransportType.MCP,
                    connection=f"{closed_url}/mcp",
                    auth_type=AuthType.BEARER,
                    auth_config={"token": token},
                    timeout_s=2,
                ),
            ):
                with pytest.raises(ToolConnectionError) as gone:
                    await ToolNode(config).connect()
                errors.append(gone.value)
            with ChatCompletions(
                [(401, json.dumps({"error": {"message": f"bad key {token}"}}).encode())]
            ) as chat:
                client = OpenAIChatClient("m", api_key=token, base_url=chat.url)
                with pytest.raises(LLMAuthenticationError) as refused:
                    await client.complete([{"role": "user", "content": "hi"}], [])
                await client.aclose()
            errors.append(refused.value)
            for node in nodes:
                await node.close()

    # --- the token was echoed back by the servers (so redaction was really exercised) ... ---------------------
    assert len(careless_api.requests) > 10
    assert any("***" in str(error) for error in errors)
    assert structlog_events and all_logs.texts
    # --- ... and appears nowhere ------------------------------------------------------------------------------
    captured = capfd.readouterr()
    places: dict[str, list[str]] = {
        "spans": dump_spans(),
        "metrics": [dump_metrics()],
        "logs": all_logs.texts,
        "structlog": [repr(event) for event in structlog_events],
        "exceptions": exception_texts(errors),
        "planner result": [repr(call) for call in result.calls] + [str(call.error) for call in result.calls],
        "LLM conversation": [json.dumps(observations)],
        "stdout": [captured.out],
        "stderr": [captured.err],
    }
    assert places["spans"] and places["metrics"][0]
    for place, texts in places.items():
        for text in texts:
            assert token not in text, (
                f"the token leaked into {place}: ...{text[max(0, text.find(token) - 200) :][:400]}"
            )
            assert token.removeprefix("sk-") not in text, place


# --- shell metacharacters in a connection string ------------------------------------------------------------


def _shell_attacks(marker: Path) -> list[str]:
    python = shlex.quote(sys.executable)
    touch = f"touch {shlex.quote(str(marker))}"
    return [
        f"{python} -c pass; {touch}",
        f"{python} -c pass && {touch}",
        f"{python} -c pass || {touch}",
        f"{python} -c pass | {touch}",
        f"{python} -c pass & {touch}",
        f"{python} -c pass > {shlex.quote(str(marker))}",
        f"{python} $({touch})",
        f"{python} `{touch}`",
        f"{python} -c pass\n{touch}",
        f"{python} '$({touch})'",  # quoted: one literal argument, never run
        f"{python} -c 'import sys; sys.exit(0)' \"; {touch}\"",
        f"sh -c {shlex.quote(touch)}",  # the one way to ask for a shell: spelled out, not interpreted by us
    ]


@pytest.mark.parametrize("index", range(12))
async def test_shell_metacharacters_in_a_connection_are_never_interpreted(tmp_path: Path, index: int) -> None:
    marker = tmp_path / "pwned"
    connection = _shell_attacks(marker)[index]
    node = ToolNode(
        ExternalToolConfig(
            name=otel.unique("shell").replace(".", "_"),
            transport=TransportType.MCP,
            connection=connection,
            env={"INNOCENT": f"$(touch {marker})"},
            timeout_s=2,
        )
    )
    async with asyncio.timeout(15):
        with pytest.raises((ConfigurationError, ToolConnectionError)) as info:
            await node.connect()
        await node.close()
    if connection.startswith("sh -c"):
        # an explicit `sh -c` is the user's own command: it runs (and is not an MCP server), nothing of ours did
        assert isinstance(info.value, ToolConnectionError)
        return
    await asyncio.sleep(0.1)
    assert not marker.exists(), f"{connection!r} ran a shell"
    if isinstance(info.value, ConfigurationError):
        assert info.value.field == "connection"


DEMO_WITH_DEBUG_LOGS = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # every library's log lines\n"
    "from penguiflow.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.timeout(120)
def test_a_full_demo_run_never_prints_logs_or_exports_its_token() -> None:
    """``penguiflow demo`` with a planted token: the local API demands it as a bearer token (401 otherwise)
    and quotes it back in its 503 bodies, the MCP server gets it in its env. Nothing the run prints or logs
    (root logger at DEBUG), nor any OTLP request body it or its MCP server exports, may hold it."""
    import os
    import subprocess

    from tests.support.otlp_receiver import OtlpReceiver

    planted = f"sk-SECRET-{secrets.token_hex(12)}"
    root = Path(__file__).resolve().parents[2]
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "PENGUIFLOW_DEMO_TOKEN": planted,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "PYTHONUNBUFFERED": "1",
        }
        # 4 s: --duration is a hard bound, and under load a 2 s run was cut off before the flaky endpoint's 503s.
        argv = ["demo", "--duration", "4", "--console", "--service-name", "secrets-demo"]
        result = subprocess.run(
            [sys.executable, "-c", DEMO_WITH_DEBUG_LOGS, *argv],
            cwd=root, env=env, capture_output=True, text=True, timeout=100,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        receiver.wait_for_spans(
            lambda spans: any(s.service_name != "secrets-demo" for s in spans), timeout=15
        )
        bodies = list(receiver.bodies)
    # The token was really in play: the API let the HTTP sources in (it answers 401 without it) and the
    # flaky endpoint's 503s, which quote it, were retried.
    assert "HTTP/1.1 200 OK" in output and "HTTP/1.1 503" in output  # httpx's own INFO log lines
    assert "HTTP/1.1 401" not in output
    assert len(output.splitlines()) > 100 and len(bodies) > 5  # the DEBUG logs, --console spans, OTLP
    assert planted not in output
    for variant in (planted, quote(planted), json.dumps(planted)[1:-1]):
        assert all(variant.encode() not in body for body in bodies)
