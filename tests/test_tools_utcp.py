"""The UTCP transport against a manual served on 127.0.0.1: the demo HTTP API's OpenAPI document, which the
UTCP HTTP plugin converts to a UTCP manual. Works offline (plain HTTP is allowed on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from penguiflow.demo.backends.http_api import HttpApiServer
from penguiflow.errors import (
    ConfigurationError,
    ToolClientError,
    ToolConnectionError,
    ToolNotFoundError,
    ToolRateLimitedError,
    ToolServerError,
)
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.utcp import UtcpTransport
from tests.support import otel

pytest.importorskip("utcp_http", reason="the UTCP extra is not installed: pip install 'penguiflow[utcp]'")
pytestmark = pytest.mark.timeout(60)

FAST_RETRY = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.01, wait_exponential_max_s=0.05)


@pytest.fixture
async def api() -> AsyncIterator[HttpApiServer]:
    async with HttpApiServer() as server:
        yield server


def config(api: HttpApiServer, **kw: object) -> ExternalToolConfig:
    name = otel.unique("internal").replace(".", "_")
    return ExternalToolConfig(
        name=name,
        transport=TransportType.UTCP,
        connection=f"{api.url}/openapi.json",
        **kw,  # type: ignore[arg-type]
    )


async def test_discovery_and_calls(api: HttpApiServer) -> None:
    node = ToolNode(config(api, retry_policy=FAST_RETRY))
    async with node:
        names = {entry.name for entry in node.get_tools()}
        assert {f"{node.name}.{tool}" for tool in ("echo", "get_item", "slow", "flaky", "not_found")} <= names
        slow = node.get_tool("slow")
        assert slow.input_schema["type"] == "object" and slow.input_schema["required"] == ["ms"]

        assert await node.call(f"{node.name}.get_item", {"item_id": "x1"}) == {
            "id": "x1",
            "raw_path": "/items/x1",
        }
        assert await node.call(f"{node.name}.echo", {"body": {"message": "hi"}}) == {
            "echo": {"message": "hi"}
        }
        assert await node.call(f"{node.name}.slow", {"ms": 5}) == {"slept_ms": 5}
        # 503 once, then 200: the retry layer reads the typed server error
        assert await node.call(f"{node.name}.flaky", {"key": "k", "failures": 1}) == {
            "key": "k",
            "attempt": 2,
        }
    assert api.stats.count("flaky") == 2
    assert api.stats.count("get_item") == 1


async def test_status_codes_become_typed_errors(api: HttpApiServer) -> None:
    transport = UtcpTransport(config(api))
    await transport.connect()
    try:
        with pytest.raises(ToolClientError, match=r"\.not_found: HTTP 404") as not_found:
            await transport.call("not_found", {})
        assert not_found.value.status_code == 404 and not not_found.value.retryable
        with pytest.raises(ToolServerError) as server_error:
            await transport.call("flaky", {"key": "once", "failures": 1})
        assert server_error.value.status_code == 503
        # two at once against a threshold of one: one is answered 429 with Retry-After: 1
        results = await asyncio.gather(
            transport.call("rate_limited", {"ms": 300}),
            transport.call("rate_limited", {"ms": 300}),
            return_exceptions=True,
        )
        (limited,) = [r for r in results if isinstance(r, Exception)]
        assert isinstance(limited, ToolRateLimitedError) and limited.retry_after == 1.0
        with pytest.raises(ToolNotFoundError):
            await transport.call("no_such_tool", {})
    finally:
        await transport.close()


async def test_a_404_is_not_retried_and_a_429_waits_retry_after(api: HttpApiServer) -> None:
    node = ToolNode(config(api, retry_policy=FAST_RETRY.model_copy(update={"retry_on_status": (429, 503)})))
    async with node:
        with pytest.raises(ToolClientError):
            await node.call(f"{node.name}.not_found")
        assert api.stats.count("not_found") == 1
        started = time.monotonic()
        await asyncio.gather(*(node.call(f"{node.name}.rate_limited", {"ms": 200}) for _ in range(2)))
        assert time.monotonic() - started >= 0.9  # the 429'd call waited Retry-After: 1 s


async def test_unreachable_or_missing_manual(api: HttpApiServer) -> None:
    missing = ExternalToolConfig(
        name="missing", transport=TransportType.UTCP, connection=f"{api.url}/nope.json"
    )
    with pytest.raises(ToolConnectionError, match=r"could not load the UTCP manual: .*404"):
        await ToolNode(missing).connect()


def test_connection_must_be_a_url() -> None:
    # the config already refuses a non-string; model_copy skips validation, as a hand-built config might
    odd = ExternalToolConfig(name="x", transport=TransportType.MCP, connection="python server.py")
    with pytest.raises(ConfigurationError, match="connection: the utcp transport needs the http"):
        UtcpTransport(odd.model_copy(update={"transport": TransportType.UTCP}))


async def test_bearer_token_is_sent_and_never_quoted(
    api: HttpApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_TEST_UTCP_TOKEN", "utcp-secret-token")
    node = ToolNode(
        config(
            api,
            auth_type=AuthType.BEARER,
            auth_config={"token": "${PF_TEST_UTCP_TOKEN}"},
            retry_policy=FAST_RETRY,
        )
    )
    async with node:
        assert await node.call(f"{node.name}.get_item", {"item_id": "a"}) == {
            "id": "a",
            "raw_path": "/items/a",
        }
        assert api.stats.headers("get_item")[-1]["authorization"] == "Bearer utcp-secret-token"
        # the server quotes the credentials it got in its 401 body: the error must not
        with pytest.raises(ToolClientError, match="HTTP 401") as refused:
            await node.call(f"{node.name}.unauthorized")
    assert "utcp-secret-token" not in str(refused.value)
    assert "***" in str(refused.value)
