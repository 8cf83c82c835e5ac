"""The errors of real client libraries (httpx, aiohttp, requests, the OpenAI and Anthropic SDKs), raised against
a real HTTP server on 127.0.0.1, mean to ``Retry`` and to the outcome metrics what they say.

On the code before ``client_errors`` every one of them was an unclassified ``"error"``: nothing was retried.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx
import openai
import pytest
import requests

from penguiflow import wrap
from penguiflow.middleware import Failure, Retry, RetryPolicy, classify, failures
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique
from tests.support.scripted_http import Reply, ScriptedServer, closed_port, scripted_server

ROOT = Path(__file__).resolve().parents[1]
NEVER_SENT = Failure("connection", request_sent=False)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


def refused_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/"


def raised(fn: Any) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


async def araised(awaitable: Any) -> BaseException:
    try:
        await awaitable
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


# --- the README's wrap example ---------------------------------------------------------------------------------


def readme_wrap_example() -> dict[str, Any]:
    """The README's httpx ``wrap`` block, executed as written, bar its last line (which fetches example.org)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    block = next(b for b in blocks if "fetch = wrap(" in b and "import httpx" in b)
    code = "\n".join(line for line in block.splitlines() if not line.startswith("page = await"))
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


async def test_readme_httpx_wrap_example_retries_a_503(server: ScriptedServer) -> None:
    fetch = readme_wrap_example()["fetch"]
    url = server.script("/page", Reply(503, "busy", {"Retry-After": "0"}), Reply(200, "the page"))
    assert await fetch(url) == "the page"
    assert server.hits("/page") == 2


async def test_readme_httpx_wrap_example_retries_a_connect_error() -> None:
    """The first attempt finds nothing listening (a real ``httpx.ConnectError``); the server comes up when the
    retry is logged — before the back-off ends — so the second attempt gets the page. No timing involved."""
    fetch = readme_wrap_example()["fetch"]
    port = closed_port()
    started: list[ScriptedServer] = []

    class StartOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event_type", None) == "node_retry" and not started:
                assert getattr(record, "error_type", None) == "ConnectError"
                started.append(ScriptedServer(port))
                started[0].script("/page", Reply(200, "up now"))

    handler = StartOnRetry()
    logger = logging.getLogger("penguiflow.flow")
    logger.addHandler(handler)
    try:
        assert await fetch(f"http://127.0.0.1:{port}/page") == "up now"
    finally:
        logger.removeHandler(handler)
        for running in started:
            running.close()
    assert started and started[0].hits("/page") == 1


# --- httpx ---------------------------------------------------------------------------------------------------


async def test_httpx_errors(server: ScriptedServer) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as client:
        response = await client.get(server.script("/503", Reply(503, "busy", {"Retry-After": "7"})))
        assert classify(raised(response.raise_for_status)) == Failure(
            "status", status_code=503, retry_after=7.0
        )
        response = await client.get(
            server.script("/429", Reply(429, "slow down", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
        )
        assert classify(raised(response.raise_for_status)) == Failure(
            "status", status_code=429, retry_after=0.0
        )

        refused = await araised(client.get(refused_url()))
        assert isinstance(refused, httpx.ConnectError)
        assert classify(refused) == NEVER_SENT

        slow = await araised(client.get(server.script("/slow", Reply(delay_s=1.0))))
        assert isinstance(slow, httpx.ReadTimeout)
        assert classify(slow) == Failure("timeout")

        lost = await araised(client.get(server.script("/hangup", Reply(hangup=True))))
        assert isinstance(lost, httpx.RemoteProtocolError)
        assert classify(lost) == Failure("connection")

        assert classify(await araised(client.get("ftp://127.0.0.1/"))) == Failure("error")


async def test_an_httpx_read_timeout_is_a_timeout_outcome_and_503_a_status_reason(
    server: ScriptedServer,
) -> None:
    name = unique("httpx.tool")
    url = server.script("/flaky", Reply(503, "busy"), Reply(delay_s=1.0))

    async def get(url: str) -> str:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.text

    async def no_wait(_: float) -> None:
        return None

    tool = wrap(get, Retry(RetryPolicy(max_attempts=2, retry_on_timeout=False), sleep=no_wait), name=name)
    with pytest.raises(httpx.ReadTimeout):
        await tool(url)
    assert server.hits("/flaky") == 2
    assert (
        otel.value(names.RETRY_ATTEMPTS, **{names.GEN_AI_TOOL_NAME: name, names.RETRY_REASON: "status_503"})
        == 1
    )
    assert (
        otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: "timeout"})
        == 1
    )


# --- aiohttp, requests ---------------------------------------------------------------------------------------


async def test_aiohttp_errors(server: ScriptedServer) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2)) as session:
        async with session.get(server.script("/503", Reply(503, "busy", {"Retry-After": "3"}))) as response:
            assert classify(raised(response.raise_for_status)) == Failure(
                "status", status_code=503, retry_after=3.0
            )
        refused = await araised(session.get(refused_url()))
        assert isinstance(refused, aiohttp.ClientConnectorError)
        assert classify(refused) == NEVER_SENT

        slow = await araised(session.get(server.script("/slow", Reply(delay_s=1.0))))
        assert isinstance(slow, aiohttp.ServerTimeoutError)
        assert classify(slow) == Failure("timeout")

        lost = await araised(session.get(server.script("/hangup", Reply(hangup=True))))
        assert isinstance(lost, aiohttp.ServerDisconnectedError)
        assert classify(lost) == Failure("connection")


def test_requests_errors(server: ScriptedServer) -> None:
    with requests.Session() as session:
        response = session.get(server.script("/503", Reply(503, "busy", {"Retry-After": "2"})), timeout=5)
        assert classify(raised(response.raise_for_status)) == Failure(
            "status", status_code=503, retry_after=2.0
        )

        refused = raised(lambda: session.get(refused_url(), timeout=5))
        assert isinstance(refused, requests.ConnectionError)
        assert classify(refused) == NEVER_SENT

        slow = raised(lambda: session.get(server.script("/slow", Reply(delay_s=1.0)), timeout=(5, 0.2)))
        assert isinstance(slow, requests.ReadTimeout)
        assert classify(slow) == Failure("timeout")

        lost = raised(lambda: session.get(server.script("/hangup", Reply(hangup=True)), timeout=5))
        assert isinstance(lost, requests.ConnectionError)
        assert classify(lost) == Failure("connection")


# --- the OpenAI and Anthropic SDKs ---------------------------------------------------------------------------


async def test_openai_sdk_errors(server: ScriptedServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="sk-test", max_retries=0, timeout=0.3)
    server.script(
        "/v1/models",
        Reply(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "1500", "retry-after": "9"}),
    )
    limited = await araised(client.models.list())
    assert isinstance(limited, openai.RateLimitError)
    assert classify(limited) == Failure("status", status_code=429, retry_after=1.5)

    server.script("/v1/models", Reply(500, {"error": {"message": "boom"}}))
    assert classify(await araised(client.models.list())) == Failure("status", status_code=500)

    server.script("/v1/models", Reply(delay_s=1.0))
    slow = await araised(client.models.list())
    assert isinstance(slow, openai.APITimeoutError)
    assert classify(slow) == Failure("timeout")

    unreachable = openai.AsyncOpenAI(base_url=refused_url() + "v1", api_key="sk-test", max_retries=0)
    refused = await araised(unreachable.models.list())
    assert type(refused) is openai.APIConnectionError
    assert classify(refused) == NEVER_SENT
    await client.close()
    await unreachable.close()


async def test_anthropic_sdk_errors(server: ScriptedServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=server.url(""), api_key="sk-ant-test", max_retries=0)
    server.script(
        "/v1/messages",
        Reply(
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
            {"retry-after": "4"},
        ),
    )
    request = {"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    overloaded = await araised(client.messages.create(**request))
    assert isinstance(overloaded, anthropic.APIStatusError)
    assert classify(overloaded) == Failure("status", status_code=529, retry_after=4.0)

    unreachable = anthropic.AsyncAnthropic(base_url=refused_url(), api_key="sk-ant-test", max_retries=0)
    refused = await araised(unreachable.messages.create(**request))
    assert isinstance(refused, anthropic.APIConnectionError)
    assert classify(refused) == NEVER_SENT
    await client.close()
    await unreachable.close()


async def test_an_openai_rate_limit_is_retried_after_its_retry_after(server: ScriptedServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url("/v1"), api_key="sk-test", max_retries=0)
    server.script(
        "/v1/models",
        Reply(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "250"}),
        Reply(200, {"object": "list", "data": []}),
    )
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def list_models() -> int:
        page = await client.models.list()
        return len(page.data)

    tool = wrap(
        list_models, Retry(RetryPolicy(max_attempts=2, jitter=0), sleep=record), name=unique("models")
    )
    assert await tool() == 0
    assert waits == [0.25]
    await client.close()


# --- the hook ------------------------------------------------------------------------------------------------


def test_a_registered_classifier_replaces_a_default() -> None:
    exc = httpx.ConnectError("refused")
    try:
        failures.register_classifier("httpx", lambda _: Failure("error", retryable=False))
        assert classify(exc) == Failure("error", retryable=False)
    finally:
        from penguiflow.middleware import client_errors

        client_errors.install()
    assert classify(exc) == NEVER_SENT


def test_classifying_imports_none_of_the_libraries() -> None:
    code = (
        "import sys, penguiflow, penguiflow.middleware as m\n"
        "from penguiflow.middleware import failures\n"
        "assert {'httpx', 'httpx2', 'openai', 'anthropic', 'aiohttp', 'requests'} <= set(failures._classifiers)\n"
        "m.classify(ValueError('x'))\n"
        "print(sorted(n for n in ('httpx', 'httpx2', 'aiohttp', 'requests', 'openai', 'anthropic') if n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
