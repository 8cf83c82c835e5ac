"""ToolNode over HTTP against a real server on 127.0.0.1 that serves an OpenAPI document and measures itself."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from penguiflow import ModelRegistry
from penguiflow.demo.backends import HttpApiServer
from penguiflow.errors import (
    ConfigurationError,
    LimiterRejectedError,
    ToolClientError,
    ToolConnectionError,
    ToolRateLimitedError,
    ToolServerError,
    ToolTimeoutError,
    ToolValidationError,
)
from penguiflow.middleware import ConcurrencyLimit, Timeout
from penguiflow.telemetry import names
from penguiflow.tools import (
    AuthType,
    ExternalToolConfig,
    NotConnectedError,
    PendingTools,
    RetryPolicy,
    ToolNode,
    TransportType,
)
from penguiflow.tools.transports.http import OpenAPIError, parse_openapi
from tests.support import otel

_ids = itertools.count()
FAST_RETRY = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.05, wait_exponential_max_s=0.2)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` (state of the server thread or a limiter) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.005)


def unique(prefix: str) -> str:
    """Metrics are cumulative across the session: each test gets its own node (= limiter) name."""
    return f"{prefix}{next(_ids)}"


@pytest.fixture(scope="module")
def server() -> Iterator[HttpApiServer]:
    with HttpApiServer(rate_limit_threshold=1, retry_after_s=1) as api:
        yield api


@pytest.fixture
def api(server: HttpApiServer) -> HttpApiServer:
    server.stats.reset()
    return server


def http_node(api: HttpApiServer, prefix: str = "api", **overrides: Any) -> ToolNode:
    fields: dict[str, Any] = {
        "name": unique(prefix),
        "transport": TransportType.HTTP,
        "connection": api.url,
        "retry_policy": FAST_RETRY,
        "timeout_s": 5.0,
    }
    registry = overrides.pop("registry", None)
    fields.update(overrides)
    return ToolNode(ExternalToolConfig(**fields), registry=registry)


# --- discovery -------------------------------------------------------------------------------------------------


async def test_discovers_one_tool_per_operation_with_argument_schemas(api: HttpApiServer) -> None:
    registry = ModelRegistry()
    node = http_node(api, registry=registry)
    # Before connecting, one placeholder stands for the whole source (a planner resolves it at its first run).
    (pending,) = node.get_tools()
    assert isinstance(pending, PendingTools) and pending.name == f"{node.name}.*"
    with pytest.raises(NotConnectedError, match=r"await node\.connect\(\)"):
        await pending.invoke({})
    async with node:
        tools = {entry.name: entry for entry in node.get_tools()}
    n = node.name
    assert set(tools) == {
        f"{n}.{op}"
        for op in (
            "echo",
            "get_item",
            "slow",
            "flaky",
            "rate_limited",
            "capacity",
            "hang",
            "not_found",
            "unauthorized",
        )
    }
    echo = tools[f"{n}.echo"]
    assert echo.source == n and echo.description == "Return the JSON body as received."
    # The body's $ref'd object is merged into the arguments; its constraints are kept.
    assert echo.input_schema["required"] == ["message"]
    assert echo.input_schema["properties"]["repeat"]["maximum"] == 10
    assert echo.input_schema["additionalProperties"] is False
    item = tools[f"{n}.get_item"].input_schema
    assert item["required"] == ["item_id"] and item["properties"]["item_id"]["type"] == "string"
    assert set(registry.names()) == set(tools)
    assert registry.get(f"{n}.slow")["properties"]["ms"]["maximum"] == 60000


async def test_connect_is_idempotent_and_concurrency_safe(api: HttpApiServer) -> None:
    node = http_node(api)
    results = await asyncio.gather(*(node.connect() for _ in range(5)))
    transport = node.transport
    assert all([e.name for e in r] == [e.name for e in results[0]] for r in results)
    await node.connect()
    assert node.transport is transport
    await node.close()
    assert not node.connected
    # Entries stay listed after close; a call reconnects lazily.
    assert node.get_tools()
    assert await node.call(f"{node.name}.get_item", {"item_id": "x"}) == {"id": "x", "raw_path": "/items/x"}
    assert node.connected and node.transport is not transport
    await node.close()


async def test_tool_filter_keeps_matching_operations(api: HttpApiServer) -> None:
    async with http_node(api, tool_filter=["get_*", "echo"]) as node:
        assert sorted(e.name.split(".", 1)[1] for e in node.get_tools()) == ["echo", "get_item"]


async def test_call_before_connect_connects_lazily_and_escapes_path_and_query(api: HttpApiServer) -> None:
    node = http_node(api)
    assert await node.call("get_item", {"item_id": "a/b c?d"}) == {
        "id": "a/b c?d",
        "raw_path": "/items/a%2Fb%20c%3Fd",
    }
    assert await node.call(f"{node.name}.echo", {"message": "hi", "repeat": 2}) == {
        "echo": {"message": "hi", "repeat": 2}
    }
    await node.close()


# --- the retry layer reads the statuses -----------------------------------------------------------------------


async def test_503_twice_then_200_succeeds_on_attempt_3(api: HttpApiServer, spans: Any) -> None:
    async with http_node(api, "flaky") as node:
        tool = f"{node.name}.flaky"
        result = await node.call(tool, {"key": "k1", "failures": 2})
    assert result == {"key": "k1", "attempt": 3}
    assert api.stats.count("flaky") == 3
    assert otel.value("penguiflow.retry.attempts", **{"gen_ai.tool.name": tool}) == 2
    assert (
        otel.value(
            "penguiflow.retry.attempts", **{"gen_ai.tool.name": tool, "penguiflow.retry.reason": "status_503"}
        )
        == 2
    )
    attempts = otel.spans(f"attempt {tool}")
    assert [s.attributes["penguiflow.attempt"] for s in attempts] == [1, 2, 3]
    # Attempt 1 ran before anyone knew it would be retried, inside the execute_tool span itself (the engine
    # records its attempt span afterwards): its status landed there.
    assert [s.attributes.get("http.response.status_code") for s in attempts[1:]] == [503, 200]
    (span,) = otel.spans(f"execute_tool {tool}")
    assert span.status.is_ok and span.attributes["http.response.status_code"] == 503


async def test_503_beyond_max_attempts_raises_server_error(api: HttpApiServer) -> None:
    async with http_node(api, "flaky") as node:
        with pytest.raises(ToolServerError) as info:
            await node.call("flaky", {"key": "k2", "failures": 5})
    assert info.value.status_code == 503 and info.value.tool == f"{node.name}.flaky"
    assert api.stats.count("flaky") == 3  # max_attempts


async def test_429_with_retry_after_1_waits_about_a_second(api: HttpApiServer, spans: Any) -> None:
    async with http_node(api, "ratelimited", max_concurrency=2) as node:
        tool = f"{node.name}.rate_limited"
        first = asyncio.create_task(node.call(tool, {"ms": 400}))
        # The first request holds the server's only slot.
        await eventually(lambda: api.stats.in_flight("rate_limited") >= 1)
        start = time.perf_counter()
        second = await node.call(tool, {"ms": 0})
        elapsed = time.perf_counter() - start
        assert await first == {"ok": True}
    assert second == {"ok": True}
    assert 0.95 <= elapsed < 3.0, elapsed
    assert api.stats.count("rate_limited") == 3  # first, second's 429, second's retry
    assert (
        otel.value(
            "penguiflow.retry.attempts", **{"gen_ai.tool.name": tool, "penguiflow.retry.reason": "status_429"}
        )
        == 1
    )
    backoffs = [
        event
        for span in otel.spans(f"execute_tool {tool}")
        for event in span.events
        if event.name == "penguiflow.retry.backoff"
    ]
    waits = [event.attributes["penguiflow.retry.wait_s"] for event in backoffs]
    # Retry-After: 1, jittered by at most jitter (0.5) × min(1 s, the policy's longest back-off).
    assert len(waits) == 1 and 1.0 <= waits[0] <= 1.5, waits


async def test_429_error_carries_retry_after(api: HttpApiServer) -> None:
    no_retry = RetryPolicy(max_attempts=1, retry_on_status=[])
    async with http_node(api, "ratelimited", max_concurrency=2, retry_policy=no_retry) as node:
        first = asyncio.create_task(node.call("rate_limited", {"ms": 300}))
        await eventually(lambda: api.stats.in_flight("rate_limited") >= 1)
        with pytest.raises(ToolRateLimitedError) as info:
            await node.call("rate_limited", {})
        await first
    assert info.value.status_code == 429 and info.value.retry_after == 1.0


async def test_404_is_not_retried(api: HttpApiServer) -> None:
    async with http_node(api, "notfound") as node:
        tool = f"{node.name}.not_found"
        with pytest.raises(ToolClientError) as info:
            await node.call(tool, {})
    assert info.value.status_code == 404
    assert "HTTP 404" in str(info.value) and tool in str(info.value)
    assert api.stats.count("not_found") == 1
    assert otel.value("penguiflow.retry.attempts", **{"gen_ai.tool.name": tool}) == 0
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": tool, "penguiflow.outcome": "error"}
        )
        == 1
    )


async def test_hanging_endpoint_times_out_after_timeout_s(api: HttpApiServer, spans: Any) -> None:
    no_retry = RetryPolicy(max_attempts=1)
    async with http_node(api, "hang", timeout_s=0.5, retry_policy=no_retry) as node:
        tool = f"{node.name}.hang"
        start = time.perf_counter()
        with pytest.raises(ToolTimeoutError) as info:
            await node.call(tool, {})
        elapsed = time.perf_counter() - start
    assert 0.45 <= elapsed < 2.0, elapsed
    assert info.value.seconds == 0.5
    assert otel.value("penguiflow.timeouts", **{"gen_ai.tool.name": tool}) == 1
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": tool, "penguiflow.outcome": "timeout"}
        )
        == 1
    )
    (span,) = otel.spans(f"execute_tool {tool}")
    assert span.attributes["penguiflow.outcome"] == "timeout"
    assert span.attributes["error.type"] == "ToolTimeoutError"
    # The abandoned request is released on the server too (the client hung up).
    await eventually(lambda: api.stats.in_flight("hang") == 0, 3.0)
    assert api.stats.in_flight("hang") == 0


async def test_timeouts_are_retried_per_policy(api: HttpApiServer) -> None:
    policy = RetryPolicy(max_attempts=2, wait_exponential_min_s=0.01, wait_exponential_max_s=0.01)
    async with http_node(api, "hang", timeout_s=0.3, retry_policy=policy) as node:
        tool = f"{node.name}.hang"
        with pytest.raises(ToolTimeoutError):
            await node.call(tool, {})
    assert api.stats.count("hang") == 2
    assert otel.value("penguiflow.timeouts", **{"gen_ai.tool.name": tool}) == 2


# --- Level 3: the node's limit protects the server --------------------------------------------------------------


async def test_max_concurrency_3_with_12_calls_never_exceeds_3_on_the_server(api: HttpApiServer) -> None:
    node = http_node(api, "limited", max_concurrency=3)
    assert node.limiter is not None and node.limiter.limit == 3
    await node.connect()
    tool = f"{node.name}.slow"
    limiter_name = {"penguiflow.limiter.name": node.name}
    tasks = [asyncio.create_task(node.call(tool, {"ms": 300})) for _ in range(12)]
    limiter = node.limiter
    await eventually(lambda: limiter.queued >= 9)
    # Read the queue depth the way a dashboard does: from the exported gauge.
    queued_metric = otel.value("penguiflow.limiter.queued", **limiter_name)
    in_flight_metric = otel.value("penguiflow.limiter.in_flight", **limiter_name)
    results = await asyncio.gather(*tasks)
    await node.close()
    assert results == [{"slept_ms": 300}] * 12
    assert queued_metric == 9
    assert in_flight_metric == 3
    assert api.stats.peak("slow") == 3  # measured by the server
    assert api.stats.count("slow") == 12
    assert otel.value("penguiflow.limiter.admitted", **limiter_name) == 12
    waited = otel.histogram_count("penguiflow.limiter.wait.duration", **limiter_name)
    assert waited == 9  # all but the first 3
    assert otel.value("penguiflow.limiter.queued", **limiter_name) == 0


async def test_max_queue_rejects_at_once_when_the_queue_is_full(api: HttpApiServer) -> None:
    async with http_node(api, "queue", max_concurrency=1, max_queue=1) as node:
        tool = f"{node.name}.slow"
        results = await asyncio.gather(
            *(node.call(tool, {"ms": 200}) for _ in range(3)), return_exceptions=True
        )
    rejected = [r for r in results if isinstance(r, LimiterRejectedError)]
    assert len(rejected) == 1 and rejected[0].limiter == node.name
    assert results.count({"slept_ms": 200}) == 2
    assert api.stats.count("slow") == 2
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": tool, "penguiflow.outcome": "rejected"}
        )
        == 1
    )


async def test_layers_replace_the_default_stack(api: HttpApiServer) -> None:
    config = ExternalToolConfig(name=unique("custom"), transport=TransportType.HTTP, connection=api.url)
    limit = ConcurrencyLimit(1, name=config.name)
    node = ToolNode(config, layers=[limit, Timeout(0.2)])
    assert node.layers == (limit, node.layers[1]) and node.limiter is limit
    with pytest.raises(ToolTimeoutError):
        await node.call("hang", {})  # no Retry layer: one attempt
    assert api.stats.count("hang") == 1
    assert ToolNode(config, layers=[]).limiter is None
    await node.close()


# --- trace context, validation, secrets ------------------------------------------------------------------------


async def test_traceparent_sent_is_the_execute_tool_span(api: HttpApiServer, spans: Any) -> None:
    async with http_node(api, "trace") as node:
        tool = f"{node.name}.echo"
        await node.call(tool, {"message": "traced"})
    (span,) = otel.spans(f"execute_tool {tool}")
    (headers,) = api.stats.headers("echo")
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 0x01  # sampled (0x02 = random trace id, W3C level 2)
    assert trace_id == format(span.context.trace_id, "032x")
    assert parent_id == format(span.context.span_id, "016x")
    assert span.attributes["gen_ai.tool.type"] == "extension"
    assert span.attributes["penguiflow.tool.source"] == node.name


async def test_bad_arguments_fail_before_any_request(api: HttpApiServer, spans: Any) -> None:
    async with http_node(api, "valid") as node:
        tool = f"{node.name}.slow"
        before = api.stats.count()
        with pytest.raises(ToolValidationError, match=r"argument 'ms'"):
            await node.call(tool, {"ms": "soon"})
        with pytest.raises(ToolValidationError, match=r"missing required argument 'ms'"):
            await node.call(tool, {})
        with pytest.raises(ToolValidationError, match=r"unexpected argument\(s\): 'speed'"):
            await node.call(tool, {"ms": 1, "speed": 2})
        with pytest.raises(ToolValidationError, match=r"argument 'ms' fails 'maximum'"):
            await node.call(tool, {"ms": 10**9})
        assert api.stats.count() == before  # nothing reached the server
        assert node.limiter is not None and node.limiter.in_flight == 0
    outcomes = [s.attributes["error.type"] for s in otel.spans(f"execute_tool {tool}")]
    assert outcomes == ["ToolValidationError"] * 4
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration", **{"gen_ai.tool.name": tool, "error.type": "ToolValidationError"}
        )
        == 4
    )
    assert otel.value("penguiflow.retry.attempts", **{"gen_ai.tool.name": tool}) == 0


async def test_secrets_never_reach_errors_spans_or_logs(
    api: HttpApiServer, spans: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "ghp_S3cr3tT0kenValue42"
    monkeypatch.setenv("PF_TEST_HTTP_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    node = http_node(
        api,
        "secret",
        auth_type=AuthType.BEARER,
        auth_config={"token": "${PF_TEST_HTTP_TOKEN}"},
        retry_policy=RetryPolicy(max_attempts=2, wait_exponential_min_s=0.01, wait_exponential_max_s=0.01),
    )
    errors: list[BaseException] = []
    async with node:
        assert await node.call("echo", {"message": "hello"}) == {"echo": {"message": "hello"}}
        for tool, arguments in (("unauthorized", {}), ("not_found", {}), ("slow", {"ms": "x"})):
            with pytest.raises(Exception) as info:
                await node.call(tool, arguments)
            errors.append(info.value)
    # The credential was sent...
    assert api.stats.headers("echo")[-1]["authorization"] == f"Bearer {secret}"
    # ...and the server quoted it back in its 401, but our error redacts it.
    assert isinstance(errors[0], ToolClientError) and errors[0].status_code == 401
    assert "***" in str(errors[0])
    for error in errors:
        assert secret not in str(error) and secret not in repr(error)
    for span in spans.get_finished_spans():
        blob = repr(span.name) + repr(dict(span.attributes or {}))
        blob += "".join(repr(dict(event.attributes or {})) for event in span.events)
        assert secret not in blob
    assert caplog.records, "the flow events were logged"
    for record in caplog.records:
        assert secret not in record.getMessage() and secret not in repr(record.__dict__)
    for text in (repr(node), repr(node.config), str(node.config), node.config.model_dump_json()):
        assert secret not in text


async def test_missing_secret_variable_fails_at_connect_naming_it(
    api: HttpApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PF_TEST_UNSET_KEY", raising=False)
    node = http_node(
        api, auth_type=AuthType.API_KEY, auth_config={"header": "X-API-Key", "value": "${PF_TEST_UNSET_KEY}"}
    )
    with pytest.raises(ConfigurationError) as info:
        await node.connect()
    assert info.value.field == "auth_config.value" and "PF_TEST_UNSET_KEY" in str(info.value)
    assert not node.connected


async def test_api_key_header_is_sent(api: HttpApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TEST_API_KEY", "key-123456")
    node = http_node(
        api, auth_type=AuthType.API_KEY, auth_config={"header": "X-API-Key", "value": "${PF_TEST_API_KEY}"}
    )
    async with node:
        await node.call("get_item", {"item_id": "1"})
    assert api.stats.headers("get_item")[-1]["x-api-key"] == "key-123456"


async def test_server_reports_its_measurements_over_http(api: HttpApiServer) -> None:
    import httpx

    async with http_node(api, "stats") as node:
        await asyncio.gather(*(node.call("slow", {"ms": 100}) for _ in range(4)))
    async with httpx.AsyncClient(base_url=api.url) as client:
        stats = (await client.get("/stats")).json()
        assert stats["operations"]["slow"] == {"in_flight": 0, "peak": 4, "count": 4}
        assert stats["overall"]["count"] == 4
        assert (await client.post("/stats/reset")).status_code == 204
        assert (await client.get("/stats")).json()["overall"] == {"in_flight": 0, "peak": 0, "count": 0}
    assert api.stats.count("slow") == 0 and api.stats.headers("slow") == []


# --- broken sources -------------------------------------------------------------------------------------------


async def test_unreachable_source_raises_connection_error() -> None:
    with HttpApiServer() as gone:
        url = gone.url
    node = ToolNode(ExternalToolConfig(name=unique("gone"), transport=TransportType.HTTP, connection=url))
    with pytest.raises(ToolConnectionError, match="OpenAPI document"):
        await node.connect()
    assert not node.connected


async def test_server_going_away_mid_run_gives_connection_errors() -> None:
    api = HttpApiServer()
    api.start()
    node = http_node(api, "vanish", retry_policy=RetryPolicy(max_attempts=2, wait_exponential_min_s=0.01))
    await node.connect()
    await node.call("get_item", {"item_id": "1"})
    await asyncio.to_thread(api.stop)
    with pytest.raises(ToolConnectionError) as info:
        await node.call("get_item", {"item_id": "2"})
    assert info.value.retryable
    await node.close()


async def test_openapi_url_that_is_not_openapi_raises_typed_error(api: HttpApiServer) -> None:
    node = http_node(api, openapi_url=f"{api.url}/stats")
    with pytest.raises(OpenAPIError, match="not an OpenAPI 3 document"):
        await node.connect()
    missing = http_node(api, openapi_url=f"{api.url}/nothing-here.json")
    with pytest.raises(ToolClientError) as info:
        await missing.connect()
    assert info.value.status_code == 404


def _doc(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a JSON object"),
        ({"swagger": "2.0", "paths": {}}, "not an OpenAPI 3 document"),
        ({"openapi": "3.0.0"}, "no 'paths' object"),
        (_doc({"/a/{id}": {"get": {"operationId": "a"}}}), r"no path parameter for \['id'\]"),
        (
            _doc({"/a": {"get": {"operationId": "x"}}, "/b": {"get": {"operationId": "x"}}}),
            "operationId 'x' is used twice",
        ),
        (
            _doc(
                {"/a": {"get": {"operationId": "a", "parameters": [{"$ref": "#/components/parameters/P"}]}}}
            ),
            "points to nothing",
        ),
        (
            _doc(
                {
                    "/a": {
                        "post": {
                            "operationId": "a",
                            "requestBody": {
                                "content": {"application/json": {"schema": {"$ref": "http://x/s.json"}}}
                            },
                        }
                    }
                }
            ),
            "unsupported",
        ),
    ],
)
def test_malformed_openapi_documents_raise_openapi_error(document: Any, message: str) -> None:
    with pytest.raises(OpenAPIError, match=message):
        parse_openapi(document, source="src")


def test_body_that_is_not_an_object_is_one_body_argument() -> None:
    document = _doc(
        {
            "/tags/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "put": {
                    "operationId": "set_tags",
                    "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": {"type": "string"}}}
                        },
                    },
                },
            },
            "/skip": {"get": {"summary": "no operationId: not a tool"}},
        }
    )
    (operation,) = parse_openapi(document, source="src")
    assert operation.body is not None and operation.body.shape == "wrapped" and operation.method == "PUT"
    schema = operation.spec.input_schema
    assert set(schema["properties"]) == {"id", "dry_run", "body"}
    assert schema["required"] == ["id", "body"]


async def test_header_parameters_are_arguments_sent_as_headers(api: HttpApiServer) -> None:
    """An OpenAPI ``in: header`` parameter (Stripe's ``Idempotency-Key``) is an argument like any other, sent as
    a request header; credentials and framing headers a document lists are never offered to the caller."""
    async with http_node(api) as node:
        tool = f"{node.name}.echo"
        schema = node.get_tool(tool).input_schema
        assert schema["properties"]["Idempotency-Key"]["type"] == "string"
        # the header is not in the JSON body
        assert await node.call(tool, {"message": "hi", "Idempotency-Key": "idem-1"}) == {
            "echo": {"message": "hi"}
        }
        sent = api.stats.headers("echo")[-1]
        assert sent["idempotency-key"] == "idem-1"
        with pytest.raises(ToolValidationError, match="Idempotency-Key"):
            await node.call(tool, {"message": "hi", "Idempotency-Key": 42})
        # and without it, no such header goes out
        await node.call(tool, {"message": "again"})
        assert "idempotency-key" not in api.stats.headers("echo")[-1]

    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/x": {
                "get": {
                    "operationId": "x",
                    "parameters": [
                        {
                            "name": "Authorization",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    # Credential and framing headers are never offered; a cookie parameter is (the transport sends it).
    (operation,) = parse_openapi(document, source="src")
    assert set(operation.spec.input_schema["properties"]) == {"X-Trace", "session"}
    assert operation.header_params == ("X-Trace",)
    # the source's own API-key header (auth_config) is reserved too, whatever its case in the document
    (operation,) = parse_openapi(
        document, source="src", reserved_headers=["x-trace"], reserved_cookies=["session"]
    )
    assert operation.spec.input_schema["properties"] == {} and operation.header_params == ()


async def test_connecting_is_traced_with_the_discovered_tools_or_the_error_type(
    api: HttpApiServer, spans: object
) -> None:
    node = http_node(api)
    async with node:
        pass
    (span,) = otel.spans(names.SPAN_CONNECT.format(source=node.name))
    assert span.attributes is not None
    assert span.attributes[names.TOOL_TRANSPORT] == "http"
    assert span.attributes[names.TOOLS_DISCOVERED] == len(node.get_tools()) > 0
    assert span.status.status_code is StatusCode.UNSET

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = ToolNode(
        ExternalToolConfig(
            name=unique("down"), transport=TransportType.HTTP, connection=f"http://127.0.0.1:{closed}"
        )
    )
    with pytest.raises(ToolConnectionError):
        await down.connect()
    (failed,) = otel.spans(names.SPAN_CONNECT.format(source=down.name))
    assert failed.attributes is not None and failed.attributes[names.ERROR_TYPE] == "ToolConnectionError"
    assert failed.status.status_code is StatusCode.ERROR and not failed.events
