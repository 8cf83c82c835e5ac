"""The HTTP transport at its edges, against real servers on 127.0.0.1 started here: bounded reads (RSS),
a pathological document (the loop keeps running), credentials bound to their origin, idempotency-aware retries
(counted at the server), paths that cannot leave their template, header injection, URL userinfo and the
redaction forms."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import (
    ToolClientError,
    ToolConnectionError,
    ToolResponseTooLargeError,
    ToolServerError,
    ToolTimeoutError,
    ToolValidationError,
)
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType
from penguiflow.tools.transports.http import OpenAPIError
from penguiflow.tools.transports.http.schemas import MAX_DEFS
from tests.reliability.servers import Route, ScriptedHttpServer, script_server
from tests.support.memory import PeakRss

MB = 1024 * 1024
_ids = iter(range(10**6))
RETRY3 = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.01, wait_exponential_max_s=0.02)


def config(url: str, **overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": f"edge{next(_ids)}",
        "transport": TransportType.HTTP,
        "connection": url,
        "timeout_s": 10.0,
        "retry_policy": RetryPolicy(max_attempts=1),
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


def _doc(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


# --- bounded reads ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flood() -> Iterator[str]:
    with script_server(Path(__file__).with_name("flood_server.py")) as url:
        yield url


@pytest.mark.parametrize(
    ("tool", "error"),
    [
        ("big", ToolResponseTooLargeError),  # 300 MB, no Content-Length
        ("declared", ToolResponseTooLargeError),  # 300 MB announced: refused before reading
        ("bomb", ToolResponseTooLargeError),  # 300 kB of gzip inflating to 300 MB
        ("endless", ToolResponseTooLargeError),  # never ends
        ("error", ToolServerError),  # a 500 with a 300 MB body: read only as far as the message needs
    ],
)
async def test_reads_are_bounded_whatever_the_server_sends(
    flood: str, tool: str, error: type[Exception]
) -> None:
    async with ToolNode(config(flood, retry_policy=RETRY3)) as node:
        with PeakRss() as rss:
            start = time.monotonic()
            with pytest.raises(error) as info:
                await node.call(tool, {})
        elapsed = time.monotonic() - start
    assert rss.growth < 100 * MB, f"RSS grew {rss.growth / MB:.0f} MB"
    assert elapsed < 8, elapsed
    if error is ToolResponseTooLargeError:
        assert info.value.limit == 16 * MB and "max_response_bytes=16777216" in str(info.value)  # type: ignore[attr-defined]


async def test_the_document_fetch_is_bounded_whatever_its_status(flood: str) -> None:
    with PeakRss() as rss:
        with pytest.raises(ToolClientError, match="HTTP 404"):
            await ToolNode(config(flood, openapi_url=f"{flood}/doc-error/openapi.json")).connect()
        with pytest.raises(ToolResponseTooLargeError):
            await ToolNode(config(flood, openapi_url=f"{flood}/big")).connect()
    assert rss.growth < 100 * MB, f"RSS grew {rss.growth / MB:.0f} MB"


async def test_too_large_is_not_retried() -> None:
    with ScriptedHttpServer() as server:
        server.routes.update(
            {"/openapi.json": Route(_doc({"/x": {"get": {"operationId": "x"}}})), "/x": Route(b"x" * 5000)}
        )
        async with ToolNode(config(server.url, max_response_bytes=4096, retry_policy=RETRY3)) as node:
            with pytest.raises(ToolResponseTooLargeError):
                await node.call("x", {})
        assert server.hits["/x"] == 1


# --- a pathological document never holds the loop ---------------------------------------------------------


class LoopWork:
    """The longest CPU time the event loop's thread spent in one callback (``asyncio.Handle._run``) inside the
    block: how long our code held the loop, independent of how loaded the machine is. The objects alive before
    are frozen out of the garbage collector meanwhile: collecting what earlier tests left is not this code's
    work. The step that leaves the block counts only up to there."""

    def __enter__(self) -> LoopWork:
        gc.collect()
        gc.freeze()
        self.longest = 0.0
        self.culprit = ""
        self._start: float | None = None
        original = asyncio.events.Handle._run
        self._original = original
        probe = self

        def timed(handle: asyncio.events.Handle) -> None:
            probe._start = time.thread_time()
            try:
                original(handle)
            finally:
                probe._record(repr(handle))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def _record(self, what: str) -> None:
        if self._start is not None:
            spent = time.thread_time() - self._start
            self._start = None
            if spent > self.longest:
                self.longest, self.culprit = spent, what[:300]

    def __exit__(self, *exc: object) -> None:
        self._record("the step leaving the block")
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        gc.unfreeze()


def _ref_chains(schemas: int, operations: int) -> dict[str, Any]:
    """Every operation's body reaches a chain of ``schemas`` components: each op's closure is the whole chain
    (the old transport ran a meta-schema check over all of it per operation)."""
    components = {
        f"S{i}": {
            "type": "object",
            "properties": {"next": {"$ref": f"#/components/schemas/S{i + 1}"}, "v": {"type": "integer"}},
            "allOf": [{"$ref": f"#/components/schemas/S{i + 1}"}] if i % 3 == 0 else [{}],
        }
        for i in range(schemas)
    }
    components[f"S{schemas}"] = {"type": "string"}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
    paths = {f"/op{i}": {"post": {"operationId": f"op{i}", "requestBody": body}} for i in range(operations)}
    return _doc(paths, components={"schemas": components})


async def test_a_pathological_ref_graph_never_holds_the_loop() -> None:
    document = _ref_chains(300, 400)
    assert 20_000 < len(json.dumps(document)) < 200_000
    with ScriptedHttpServer({"/openapi.json": Route(document)}) as server:
        node = ToolNode(config(server.url))
        with LoopWork() as work:
            async with asyncio.timeout(60):
                tools = await node.connect()
        assert len(tools) == 400
        # the first call checks the tool's big schema off the loop too
        with LoopWork() as first_call, pytest.raises(ToolValidationError):
            await node.call("op0", {"next": 5})
        await node.close()
    assert work.longest <= 0.050, (
        f"the loop was held {work.longest * 1000:.0f} ms in one step: {work.culprit}"
    )
    assert first_call.longest <= 0.050, f"the first call held the loop {first_call.longest * 1000:.0f} ms"


async def test_the_ref_expansion_limits_are_clear_errors() -> None:
    wide = r"reach more than 2000 schemas through \$ref \(the expansion limit\)"
    with (
        ScriptedHttpServer({"/openapi.json": Route(_ref_chains(MAX_DEFS + 10, 1))}) as server,
        pytest.raises(OpenAPIError, match=wide),
    ):
        await ToolNode(config(server.url)).connect()
    many = "expands to more than 400000 schema definitions"
    with (
        ScriptedHttpServer({"/openapi.json": Route(_ref_chains(1500, 300))}) as server,
        pytest.raises(OpenAPIError, match=many),
    ):
        await ToolNode(config(server.url)).connect()


# --- credentials bound to their origin ----------------------------------------------------------------------

TOKEN = "tok-0r1g1n-S3cret"


async def test_credentials_never_go_to_another_origin() -> None:
    document = _doc(
        {
            "/me": {"get": {"operationId": "me"}},
            "/away": {"get": {"operationId": "away"}},
        }
    )
    with ScriptedHttpServer() as docs, ScriptedHttpServer() as api:
        docs.routes.update({"/openapi.json": Route(document), "/landing": Route({"ok": True})})
        api.routes.update(
            {
                "/me": Route({"ok": True}),
                "/away": Route(b"", status=307, headers={"Location": f"{docs.url}/landing"}),
            }
        )
        bearer = {"auth_type": AuthType.BEARER, "auth_config": {"token": TOKEN}}
        async with ToolNode(config(api.url, openapi_url=f"{docs.url}/openapi.json", **bearer)) as node:
            await node.call("me", {})
            await node.call("away", {})
    (doc_fetch, landing) = [headers for _, headers, _ in docs.requests]
    assert "authorization" not in doc_fetch and "authorization" not in landing
    assert api.requests[0][1]["authorization"] == f"Bearer {TOKEN}"


# --- idempotency: requests counted at the server ----------------------------------------------------------


@pytest.fixture
def slow_api() -> Iterator[ScriptedHttpServer]:
    document = _doc({"/charge": {"post": {"operationId": "charge"}, "get": {"operationId": "read"}}})
    with ScriptedHttpServer(
        {"/openapi.json": Route(document), "/charge": Route({"ok": True}, delay_s=0.6)}
    ) as s:
        yield s


async def test_a_post_that_timed_out_is_not_sent_again(slow_api: ScriptedHttpServer) -> None:
    async with ToolNode(config(slow_api.url, timeout_s=0.3, retry_policy=RETRY3)) as node:
        with pytest.raises(ToolTimeoutError):
            await node.call("charge", {})
        with pytest.raises(ToolTimeoutError):
            await node.call("read", {})  # a GET is idempotent: re-sent
    await asyncio.sleep(0.7)
    methods = [method for method, target in slow_api.targets if target.startswith("/charge")]
    assert methods == ["POST", "GET", "GET", "GET"]


async def test_an_idempotency_key_makes_posts_safely_retryable(slow_api: ScriptedHttpServer) -> None:
    overrides = {"timeout_s": 0.3, "retry_policy": RETRY3, "idempotency_key": "Idempotency-Key"}
    async with ToolNode(config(slow_api.url, **overrides)) as node:
        assert node.get_tool("charge").idempotent is True
        with pytest.raises(ToolTimeoutError):
            await node.call("charge", {})
        with pytest.raises(ToolTimeoutError):
            await node.call("charge", {})
    await asyncio.sleep(0.7)
    keys = [headers.get("idempotency-key") for path, headers, _ in slow_api.requests if path == "/charge"]
    assert len(keys) == 6 and None not in keys
    assert len(set(keys[:3])) == 1 and len(set(keys[3:])) == 1 and keys[0] != keys[3]  # one key per call


async def test_a_refused_connection_is_known_not_sent() -> None:
    document = _doc({"/charge": {"post": {"operationId": "charge"}}})
    # the document's connection is closed after it (no pooled connection survives the server)
    with ScriptedHttpServer({"/openapi.json": Route(document, headers={"Connection": "close"})}) as server:
        node = ToolNode(config(server.url, retry_policy=RETRY3))
        await node.connect()
    with pytest.raises(ToolConnectionError) as info:
        await node.call("charge", {})
    assert info.value.request_sent is False
    await node.close()


# --- paths and headers -------------------------------------------------------------------------------------


async def test_dot_segments_and_header_injection_never_reach_the_server() -> None:
    document = _doc(
        {
            "/users/{id}/profile": {
                "get": {
                    "operationId": "profile",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "X-Note", "in": "header", "schema": {"type": "string"}},
                    ],
                }
            }
        }
    )
    with ScriptedHttpServer({"/openapi.json": Route(document)}, default=Route({"ok": True})) as server:
        async with ToolNode(config(server.url, retry_policy=RETRY3)) as node:
            for arguments in (
                {"id": ".."},
                {"id": "."},
                {"id": "%2E%2E"},
                {"id": "ok", "X-Note": "a\r\nX-Admin: 1"},
                {"id": "ok", "X-Note": "nul\x00"},
                {"id": "ok", "X-Note": "caf\u00e9 \u2603"},
            ):
                with pytest.raises(ToolValidationError):
                    await node.call("profile", arguments)
            assert await node.call("profile", {"id": "ok", "X-Note": "café"}) == {
                "ok": True
            }  # Latin-1 is fine
    assert [target for _, target in server.targets if target != "/openapi.json"] == ["/users/ok/profile"]


# --- URL userinfo and redaction --------------------------------------------------------------------------

PASSWORD = "pw-Us3rinf0-S3cret"


async def test_url_userinfo_is_a_secret_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    document = _doc({"/me": {"get": {"operationId": "me"}}, "/gone": {"get": {"operationId": "gone"}}})
    with ScriptedHttpServer({"/openapi.json": Route(document), "/me": Route({"ok": True})}) as server:
        url = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        cfg = config(url, openapi_url=f"{url}/openapi.json")
        async with ToolNode(cfg) as node:
            await node.call("me", {})
            with pytest.raises(ToolClientError) as info:
                await node.call("gone", {})
    assert server.requests[-2][1]["authorization"].startswith("Basic ")  # sent, as basic auth
    texts = [
        str(info.value),
        repr(info.value),
        repr(cfg),
        str(cfg),
        cfg.model_dump_json(),
        json.dumps(cfg.model_dump(mode="json")),
    ]
    texts += [record.getMessage() for record in caplog.records]
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)  # httpx's own lines
    for text in texts:
        assert PASSWORD not in text
    assert "alice:***@" in repr(cfg)
    assert cfg.redact(f"echo {PASSWORD}") == "echo ***"


SECRET = "Ab/cD+eF_gh-1234xyz"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        SECRET.replace("/", "\\/"),  # JSON with escaped slashes
        "Ab%2FcD%2BeF_gh-1234xyz",
        "Ab%2fcD%2beF_gh-1234xyz",  # lower-case percent-encoding
        "Ab%2FcD+eF_gh-1234xyz".replace("+", "%2B"),
        "Ab%2FcD%2BeF_gh-1234xyz".replace("%2B", "+"),
        SECRET.upper(),
        SECRET.lower(),
    ],
)
def test_redaction_covers_the_echo_forms(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_EDGE_TOKEN", SECRET)
    cfg = config("http://127.0.0.1:1", auth_type=AuthType.BEARER, auth_config={"token": "${PF_EDGE_TOKEN}"})
    assert cfg.redact(f'{{"echo": "{form}"}}') == '{"echo": "***"}'


async def test_a_server_echoing_the_token_changed_is_redacted_in_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PF_EDGE_TOKEN", SECRET)
    echo: Callable[[dict[str, str], bytes], tuple[int, Any]] = lambda headers, _: (  # noqa: E731
        401,
        {
            "error": headers["authorization"].upper(),
            "json": json.dumps(headers["authorization"]).replace("/", "\\/"),
        },
    )
    document = _doc({"/me": {"get": {"operationId": "me"}}})
    with ScriptedHttpServer({"/openapi.json": Route(document), "/me": Route(respond=echo)}) as server:
        cfg = config(server.url, auth_type=AuthType.BEARER, auth_config={"token": "${PF_EDGE_TOKEN}"})
        async with ToolNode(cfg) as node:
            with pytest.raises(ToolClientError) as info:
                await node.call("me", {})
    assert "***" in str(info.value)
    assert SECRET.upper() not in str(info.value).upper().replace("***", "")
