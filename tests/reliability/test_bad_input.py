"""Bad input, everywhere it can come from: each gets a clear typed error, nothing hangs, no slot leaks.

Which error, by where the bad value comes from:

- ``ExternalToolConfig`` and ``RetryPolicy`` are pydantic models: :class:`pydantic.ValidationError` (a
  ``ValueError``), whose text names the field (cross-field checks name it in the message: ``connection: ...``,
  ``auth_config: ...``).
- ``ConcurrencyLimit``, ``Timeout``, ``ReactPlanner``: :class:`~penguiflow.errors.ConfigurationError` with
  ``.field`` naming the argument; ``planning_hints``: its subclass ``PlanningHintsError`` with
  ``.field == "planning_hints.<key>"``.
- A malformed OpenAPI document: ``OpenAPIError`` at connect; one that cannot be fetched (in time):
  ``ToolConnectionError``; an error status: the ``ToolStatusError`` of that status.
- A misbehaving MCP server: ``ToolExecutionError`` (the tool failed or returned garbage), ``ToolConnectionError``
  (the session broke or never opened), ``ToolTimeoutError`` (it hung).
- Tool arguments of the wrong type: ``ToolValidationError`` before any network traffic.
- An LLM whose replies cannot be used: reported back to it, ``max_invalid_replies`` times, then
  ``LLMOutputError``; a provider reply that is not Chat Completions at all: ``LLMResponseError`` at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import shlex
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from penguiflow.errors import (
    ConfigurationError,
    ToolConnectionError,
    ToolError,
    ToolExecutionError,
    ToolNotFoundError,
    ToolResponseTooLargeError,
    ToolServerError,
    ToolTimeoutError,
    ToolValidationError,
)
from penguiflow.middleware import ConcurrencyLimit, RetryPolicy, Timeout
from penguiflow.planner import (
    LLMOutputError,
    LLMReply,
    LLMResponseError,
    OpenAIChatClient,
    PlanningHintsError,
    ReactPlanner,
    ScriptedLLM,
    ToolCall,
    parse_hints,
)
from penguiflow.tools import ExternalToolConfig, ToolEntry, ToolNode, TransportType, tool
from penguiflow.tools.transports.http import OpenAPIError
from tests.reliability import garbage_mcp_server as garbage
from tests.reliability.servers import (
    GARBAGE_COMMAND,
    ChatCompletions,
    Route,
    ScriptedHttpServer,
    chat_reply,
    function_call,
)
from tests.support import otel

pytestmark = pytest.mark.timeout(60)

NO_RETRY = RetryPolicy(max_attempts=1)
BOUND_S = 10.0  # no single case may take longer: "nothing hangs"
# derandomize: the same examples on every run (a reproducible suite); database=None: no state between runs
FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def node_name(prefix: str) -> str:
    return otel.unique(prefix).replace(".", "_")


def assert_idle(*limiters: ConcurrencyLimit | None) -> None:
    for limiter in limiters:
        assert limiter is not None
        assert (limiter.in_flight, limiter.queued) == (0, 0), limiter


# =============================================================================================================
# 1. Configurations (hypothesis): invalid values raise naming the field; valid ones construct
# =============================================================================================================

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
)
POSITIVE_SECONDS = st.one_of(
    st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False), st.integers(1, 10**5)
)
BAD_SECONDS = st.one_of(
    st.floats(max_value=0.0),
    st.just(math.nan),
    st.just(math.inf),
    st.booleans(),
    st.none(),
    st.text(alphabet="xyz", min_size=1, max_size=3),
)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)
TEXT = st.text(min_size=1, max_size=12)

# field -> (valid values, invalid values); "auth" and "connection" are drawn together with the fields they
# must agree with (auth_type/auth_config, transport/connection).
CONFIG_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "name": (
        NAME,
        st.one_of(
            st.just(""),
            st.from_regex(r"[0-9_-][A-Za-z0-9]{0,5}", fullmatch=True),
            st.just("a" * 65),
            st.just("has space"),
            st.integers(),
            st.none(),
        ),
    ),
    "max_concurrency": (
        st.integers(1, 10_000),
        st.one_of(
            st.integers(max_value=0), st.integers(min_value=10_001), st.booleans(), st.just(2.0), st.just("5")
        ),
    ),
    "timeout_s": (POSITIVE_SECONDS, BAD_SECONDS),
    "max_queue": (
        st.one_of(st.none(), st.integers(0, 10**6)),
        st.one_of(st.integers(max_value=-1), st.booleans(), st.just(1.5), st.just("3")),
    ),
    "retry_policy": (
        st.one_of(st.builds(RetryPolicy), st.just({"max_attempts": 2, "retry_on_status": [503]})),
        st.sampled_from([{"max_attempts": 0}, {"wait_exponential_min_s": -1}, {"nope": 1}, "fast", 3]),
    ),
    "tool_filter": (
        st.one_of(st.none(), st.lists(TEXT, max_size=3)),
        st.one_of(st.just([""]), st.just("get_*"), st.lists(st.integers(), min_size=1, max_size=2)),
    ),
    "openapi_url": (
        st.one_of(
            st.none(), st.sampled_from(["http://127.0.0.1:1/openapi.json", "https://x.example/o.json"])
        ),
        st.sampled_from(["ftp://x/o.json", "", "openapi.json", 5]),
    ),
    "env": (
        st.dictionaries(st.from_regex(r"[A-Z_]{1,6}", fullmatch=True), st.text(max_size=8), max_size=3),
        st.sampled_from([{"A": 1}, {"A": None}, "A=1", ["A"]]),
    ),
    "auth": (
        st.one_of(
            st.just(("none", {})),
            st.builds(lambda t: ("bearer", {"token": t}), TEXT),
            st.builds(lambda h, v: ("api_key", {"header": h, "value": v}), TEXT, TEXT),
        ),
        st.sampled_from(
            [
                ("bearer", {}),
                ("bearer", {"token": "t", "extra": "x"}),
                ("api_key", {"header": "X-Key"}),
                ("none", {"token": "t"}),
                ("oauth", {}),
                ("bearer", {"token": 5}),
            ]
        ),
    ),
    "connection": (
        st.sampled_from(
            [
                ("http", "http://127.0.0.1:1"),
                ("http", "https://api.example/v1"),
                ("utcp", "https://api.example/utcp.json"),
                ("mcp", "python server.py --flag"),
                ("mcp", "http://127.0.0.1:1/mcp"),
            ]
        ),
        st.sampled_from(
            [
                ("http", "ftp://x"),
                ("http", 5),
                ("http", None),
                ("utcp", None),
                ("mcp", ""),
                ("mcp", "   "),
                ("ftp", "http://x"),
                (None, "http://x"),
            ]
        ),
    ),
}
# the word the error must name, per field
CONFIG_NAMES = {"auth": ("auth_config", "auth_type"), "connection": ("connection", "transport")}


def config_kwargs(choice: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in choice.items() if k not in ("auth", "connection")}
    kwargs["auth_type"], kwargs["auth_config"] = choice["auth"]
    kwargs["transport"], kwargs["connection"] = choice["connection"]
    return kwargs


@st.composite
def config_case(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    bad = draw(st.sampled_from([None, *CONFIG_FIELDS]))
    choice = {}
    for field_name, (valid, invalid) in CONFIG_FIELDS.items():
        if field_name == bad:
            choice[field_name] = draw(invalid)
        elif field_name in ("name", "auth", "connection") or draw(st.booleans()):
            choice[field_name] = draw(valid)
    return bad, config_kwargs(choice)


@FAST
@given(config_case())
def test_external_tool_config_refuses_bad_values_naming_the_field(
    case: tuple[str | None, dict[str, Any]],
) -> None:
    bad, kwargs = case
    if bad is None:
        config = ExternalToolConfig(**kwargs)
        assert config.name == kwargs["name"]
        return
    with pytest.raises(ValidationError) as info:
        ExternalToolConfig(**kwargs)
    assert any(word in str(info.value) for word in CONFIG_NAMES.get(bad, (bad,))), (bad, str(info.value))


RETRY_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "max_attempts": (
        st.integers(1, 100),
        st.one_of(st.integers(max_value=0), st.integers(101), st.just("x")),
    ),
    "jitter": (
        st.floats(0, 1),
        st.one_of(st.floats(max_value=-0.01), st.floats(min_value=1.01), st.just(math.nan)),
    ),
    "retry_on_status": (
        st.lists(st.integers(100, 599), max_size=4),
        st.one_of(
            st.lists(st.integers(max_value=99), min_size=1, max_size=2),
            st.lists(st.integers(min_value=600), min_size=1, max_size=2),
            st.just(["five hundred"]),
        ),
    ),
    "deadline_s": (
        st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e4)),
        st.one_of(st.floats(max_value=0), st.just(math.nan), st.just("soon")),
    ),
    "max_retry_after_s": (
        st.floats(min_value=1e-3, max_value=1e4),
        st.one_of(st.floats(max_value=0), st.just(math.nan)),
    ),
    "wait_exponential_max_s": (  # drawn with the minimum: max must be >= min
        st.tuples(st.floats(0, 10), st.floats(0, 10)).map(sorted),
        st.one_of(
            st.tuples(st.floats(5.01, 10), st.floats(0, 5)),
            st.tuples(st.just(-1.0), st.floats(0, 1)),
            st.tuples(st.floats(0, 1), st.just(math.nan)),
        ),
    ),
}


@st.composite
def retry_case(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    bad = draw(st.sampled_from([None, *RETRY_FIELDS]))
    kwargs: dict[str, Any] = {}
    for field_name, (valid, invalid) in RETRY_FIELDS.items():
        if field_name == bad or draw(st.booleans()):
            value = draw(invalid if field_name == bad else valid)
            if field_name == "wait_exponential_max_s":
                kwargs["wait_exponential_min_s"], kwargs["wait_exponential_max_s"] = value
            else:
                kwargs[field_name] = value
    return bad, kwargs


@FAST
@given(retry_case())
def test_retry_policy_refuses_bad_values_naming_the_field(case: tuple[str | None, dict[str, Any]]) -> None:
    bad, kwargs = case
    if bad is None:
        RetryPolicy(**kwargs)
        return
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**kwargs)
    assert bad.removesuffix("max_s") in str(info.value), (bad, str(info.value))


def test_retry_policy_refuses_infinite_waits_and_bool_attempts() -> None:
    for kwargs in (
        {"wait_exponential_min_s": math.inf, "wait_exponential_max_s": math.inf},  # back-off sleeps forever
        {"wait_exponential_max_s": math.inf},
        {"max_attempts": True},  # taken as 1
        {"max_retry_after_s": math.inf},
        {"deadline_s": math.nan},
    ):
        with pytest.raises(ValidationError):
            RetryPolicy(**kwargs)


def _count_ok(value: Any, minimum: int) -> bool:
    return type(value) is int and value >= minimum


def _seconds_ok(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value > 0


@FAST
@given(ANYTHING, st.one_of(TEXT, ANYTHING), st.one_of(st.none(), ANYTHING), ANYTHING)
def test_concurrency_limit_and_timeout_refuse_bad_arguments_naming_them(
    limit: Any, name: Any, max_queue: Any, seconds: Any
) -> None:
    expected = next(
        (
            field_name
            for field_name, ok in (
                ("max_concurrency", _count_ok(limit, 1)),
                ("name", isinstance(name, str) and bool(name)),
                ("max_queue", max_queue is None or _count_ok(max_queue, 0)),
            )
            if not ok
        ),
        None,
    )
    if expected is None:
        limiter = ConcurrencyLimit(limit, name=name, max_queue=max_queue)
        assert (limiter.limit, limiter.in_flight, limiter.queued) == (limit, 0, 0)
    else:
        with pytest.raises(ConfigurationError) as info:
            ConcurrencyLimit(limit, name=name, max_queue=max_queue)
        assert info.value.field == expected
    if _seconds_ok(seconds):
        assert Timeout(seconds).seconds == float(seconds)
    else:
        with pytest.raises(ConfigurationError) as timeout_info:
            Timeout(seconds)
        assert timeout_info.value.field == "seconds"


@tool(name="local.double")
def double(n: int) -> int:
    """Double n."""
    return 2 * n


PLANNER_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "catalog": (
        st.sampled_from([[], [double]]),
        st.sampled_from(["local.double", [object()], [double, double], 5, None]),
    ),
    "llm": (st.just(ScriptedLLM(["x"])), st.sampled_from(["", "   ", 5, object(), None])),
    "absolute_max_parallel": (
        st.integers(1, 1000),
        st.one_of(st.integers(max_value=0), st.integers(1001), st.booleans(), st.just(2.0)),
    ),
    "max_hops": (st.integers(1, 50), st.one_of(st.integers(max_value=0), st.just(True), st.just("3"))),
    "agent_name": (TEXT, st.sampled_from(["", None, 5])),
    "system_prompt": (st.one_of(st.none(), st.text(max_size=20)), st.sampled_from([5, b"bytes", ["a"]])),
    "max_invalid_replies": (
        st.integers(0, 10),
        st.one_of(st.integers(max_value=-1), st.just(False), st.just(1.0)),
    ),
    "max_observation_chars": (st.integers(100, 10**6), st.one_of(st.integers(max_value=99), st.just(None))),
}


@FAST
@given(st.data())
def test_react_planner_refuses_bad_arguments_naming_them(data: st.DataObject) -> None:
    bad = data.draw(st.sampled_from([None, *PLANNER_FIELDS]))
    kwargs = {
        field_name: data.draw(invalid if field_name == bad else valid)
        for field_name, (valid, invalid) in PLANNER_FIELDS.items()
        if field_name in ("catalog", "llm") or field_name == bad or data.draw(st.booleans())
    }
    if bad is None:
        planner = ReactPlanner(**kwargs)
        assert_idle(planner.limiter)
        return
    with pytest.raises(ConfigurationError) as info:
        ReactPlanner(**kwargs)
    assert info.value.field.startswith(bad), (bad, info.value.field)


HINT_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "max_parallel": (
        st.one_of(st.none(), st.integers(1, 100)),
        st.one_of(st.integers(max_value=0), st.booleans(), st.just(1.5), st.just("2")),
    ),
    "preferred_order": (st.lists(TEXT, max_size=3), st.sampled_from(["a", [1], [None], {"a": 1}])),
    "parallel_groups": (
        st.lists(st.lists(TEXT, max_size=2), max_size=2),
        st.sampled_from([["a"], [[1]], "ab"]),
    ),
    "disallow_nodes": (st.lists(TEXT, max_size=3), st.sampled_from(["github.*", [3]])),
    "preferred_nodes": (st.lists(TEXT, max_size=3), st.sampled_from([5, [b"x"]])),
    "budget": (
        st.one_of(st.just({}), st.builds(lambda n: {"max_hops": n}, st.integers(1, 20))),
        st.sampled_from([{"max_hops": 0}, {"max_hops": "3"}, {"max_hops": True}, {"hops": 3}, 5, [1]]),
    ),
    "deadline_s": (
        st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e4), st.integers(1, 100)),
        st.one_of(st.floats(max_value=0), st.just(math.nan), st.just(math.inf), st.just("1"), st.booleans()),
    ),
    "max_tool_calls": (
        st.one_of(st.none(), st.integers(0, 100)),
        st.one_of(st.integers(max_value=-1), st.booleans(), st.just(2.5)),
    ),
    "unknown_hint": (st.nothing(), st.sampled_from([1, "x", None])),
}


@FAST
@given(st.data())
def test_planning_hints_refuse_bad_values_naming_the_key(data: st.DataObject) -> None:
    bad = data.draw(st.sampled_from([None, *HINT_FIELDS]))
    hints = {}
    for key, (valid, invalid) in HINT_FIELDS.items():
        if key == bad:
            hints[key] = data.draw(invalid)
        elif key != "unknown_hint" and data.draw(st.booleans()):
            hints[key] = data.draw(valid)
    if bad is None:
        parsed = parse_hints(hints)
        assert parsed.max_parallel == hints.get("max_parallel")
        return
    with pytest.raises(PlanningHintsError) as info:
        parse_hints(hints)
    assert info.value.field.startswith(f"planning_hints.{bad}"), (bad, info.value.field)
    assert isinstance(info.value, ConfigurationError)


async def test_bad_planning_hints_fail_a_run_before_the_llm_is_asked() -> None:
    llm = ScriptedLLM(["never used"])
    planner = ReactPlanner(catalog=[double], llm=llm)
    for hints in ({"max_parallel": 0}, {"budget": {"max_hops": -1}}, {"max_paralel": 2}, ["max_parallel"]):
        with pytest.raises(PlanningHintsError):
            await planner.run("q", planning_hints=hints)  # type: ignore[arg-type]
    assert llm.calls == [] and llm.remaining == 1
    assert_idle(planner.limiter)


# =============================================================================================================
# 2. Malformed OpenAPI documents, served by a real HTTP server
# =============================================================================================================


def _doc(paths: Any, **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


MALFORMED: dict[str, tuple[Route, type[ToolError], str]] = {
    "not_json": (Route(b"<html>not json</html>", content_type="text/html"), OpenAPIError, "is not JSON"),
    "not_utf8": (Route(b"\xff\xfe\x00\x81garbage"), OpenAPIError, "is not JSON"),
    "truncated_json": (Route(b'{"openapi": "3.0.0", "paths": {'), OpenAPIError, "is not JSON"),
    "json_list": (Route([1, 2, 3]), OpenAPIError, "not a JSON object"),
    "json_string": (Route("openapi"), OpenAPIError, "not a JSON object"),
    "swagger2": (Route({"swagger": "2.0", "paths": {}}), OpenAPIError, "not an OpenAPI 3 document"),
    "missing_paths": (Route({"openapi": "3.1.0", "info": {}}), OpenAPIError, "no 'paths' object"),
    "paths_not_object": (Route(_doc([{"/a": {}}])), OpenAPIError, "no 'paths' object"),
    "operation_not_object": (Route(_doc({"/a": {"get": "yes"}})), OpenAPIError, "GET /a is not an object"),
    "bad_parameter_ref": (
        Route(
            _doc({"/a": {"get": {"operationId": "a", "parameters": [{"$ref": "#/components/parameters/P"}]}}})
        ),
        OpenAPIError,
        "points to nothing",
    ),
    "bad_schema_ref": (
        Route(
            _doc(
                {
                    "/a": {
                        "post": {
                            "operationId": "a",
                            "requestBody": {
                                "content": {
                                    "application/json": {"schema": {"$ref": "#/components/schemas/Gone"}}
                                }
                            },
                        }
                    }
                },
                components={"schemas": {"There": {"type": "object"}}},
            )
        ),
        OpenAPIError,
        "points to nothing",
    ),
    "external_ref": (
        Route(
            _doc(
                {
                    "/a": {
                        "get": {
                            "operationId": "a",
                            "parameters": [
                                {
                                    "name": "q",
                                    "in": "query",
                                    "schema": {"$ref": "https://evil.example/s.json"},
                                }
                            ],
                        }
                    }
                }
            )
        ),
        OpenAPIError,
        "unsupported \\$ref",
    ),
    "no_operation_ids": (
        Route(_doc({"/a": {"get": {"summary": "nameless"}}, "/b": {"post": {}}})),
        OpenAPIError,
        "no operation has an 'operationId'",
    ),
    "duplicate_operation_ids": (
        Route(_doc({"/a": {"get": {"operationId": "x"}}, "/b": {"get": {"operationId": "x"}}})),
        OpenAPIError,
        "operationId 'x' is used twice",
    ),
    "json_nested_too_deep": (Route(_nested(200_000)), OpenAPIError, "nested too deeply"),
    "schema_nested_too_deep": (
        Route(
            _doc(
                {
                    "/a": {
                        "get": {
                            "operationId": "a",
                            "parameters": [{"name": "q", "in": "query", "schema": _deep_schema(700)}],
                        }
                    }
                }
            )
        ),
        OpenAPIError,
        "nested too deeply",
    ),
    "server_error": (Route({"detail": "down"}, status=500), ToolServerError, "HTTP 500"),
    "trickled_forever": (
        Route(trickle_s=0.2),
        ToolConnectionError,
        r"timed out after 1s \(connect_timeout_s\)",
    ),
}


@pytest.fixture(scope="module")
def doc_server() -> Iterator[ScriptedHttpServer]:
    routes = {f"/{case}/openapi.json": route for case, (route, _, _) in MALFORMED.items()}
    with ScriptedHttpServer(routes) as server:
        yield server


def http_config(url: str, **overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": node_name("api"),
        "transport": TransportType.HTTP,
        "connection": url,
        "timeout_s": 1.0,
        "connect_timeout_s": 1.0,
        "retry_policy": NO_RETRY,
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_openapi_document_is_a_typed_error_at_connect(
    doc_server: ScriptedHttpServer, case: str
) -> None:
    _, error, message = MALFORMED[case]
    node = ToolNode(http_config(f"{doc_server.url}/{case}"))
    start = time.monotonic()
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(error, match=message):
            await node.connect()
    assert time.monotonic() - start < 5
    assert not node.connected and len(node.registry) == 0
    assert doc_server.hits[f"/{case}/openapi.json"] >= 1
    assert_idle(node.limiter)


async def test_unreachable_openapi_server_is_a_connection_error() -> None:
    with ScriptedHttpServer() as server:
        url = server.url
    node = ToolNode(http_config(url))  # the port is closed now
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(ToolConnectionError, match="cannot be fetched"):
            await node.connect()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "read-until-close"])
async def test_a_document_over_the_size_cap_is_refused_without_reading_it_all(declared: bool) -> None:
    filler = {f"/p{i}": {"get": {"operationId": f"op{i}", "summary": "x" * 100}} for i in range(4000)}
    route = Route(_doc(filler), length=declared)
    assert len(route.payload()) > 256 * 1024
    with ScriptedHttpServer({"/openapi.json": route}) as server:
        node = ToolNode(http_config(server.url, max_response_bytes=256 * 1024))
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(ToolResponseTooLargeError, match="larger than max_response_bytes=262144"):
                await node.connect()


async def test_the_document_fetch_is_bounded_by_connect_timeout_not_by_a_calls_timeout() -> None:
    """A source whose calls are bounded tightly (``timeout_s``) still gets a document that takes longer to come:
    discovery is bounded by ``connect_timeout_s``, and past it fails naming that bound."""
    document = _doc({"/a": {"get": {"operationId": "a"}}})
    with ScriptedHttpServer({"/openapi.json": Route(document, delay_s=0.3)}) as server:
        node = ToolNode(http_config(server.url, timeout_s=0.05, connect_timeout_s=30.0))
        async with asyncio.timeout(BOUND_S):
            assert [entry.name for entry in await node.connect()] == [f"{node.name}.a"]
        await node.close()
        late = ToolNode(http_config(server.url, timeout_s=30.0, connect_timeout_s=0.1))
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(ToolConnectionError, match=r"timed out after 0\.1s \(connect_timeout_s\)"):
                await late.connect()


async def test_a_huge_valid_document_connects_in_bounded_time() -> None:
    schemas = {f"S{i}": {"type": "object", "properties": {"v": {"type": "integer"}}} for i in range(800)}
    paths = {
        f"/items{i}/{{id}}": {
            "post": {
                "operationId": f"op{i}",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/S{i % 800}"}}}
                },
            }
        }
        for i in range(1500)
    }
    with ScriptedHttpServer({"/openapi.json": Route(_doc(paths, components={"schemas": schemas}))}) as server:
        node = ToolNode(http_config(server.url, connect_timeout_s=10.0))
        # The cost is the CPU the process spends (every thread's), which another process's load cannot
        # inflate the way it inflates wall-clock time.
        start = time.process_time()
        async with asyncio.timeout(BOUND_S * 2):
            tools = await node.connect()
        cost = time.process_time() - start
        await node.close()
    assert len(tools) == 1500
    assert cost < 10, f"connecting cost {cost:.1f}s of CPU"


# =============================================================================================================
# 3. Misbehaving MCP servers: in-process and a stdio subprocess
# =============================================================================================================


def garbage_config(**overrides: Any) -> ExternalToolConfig:
    fields: dict[str, Any] = {
        "name": node_name("garbage"),
        "transport": TransportType.MCP,
        "connection": GARBAGE_COMMAND,
        "timeout_s": 1.0,
        # Starting the garbage server is a Python process importing fastmcp: over 1 s on a loaded machine.
        "connect_timeout_s": 20.0,
        "retry_policy": NO_RETRY,
    }
    fields.update(overrides)
    return ExternalToolConfig(**fields)


# Only the "hang" case needs a short timeout; every other call gets one a loaded machine cannot outlast (with
# 0.5 s for all, "boom" timed out before its error came back under load).
HANG_TIMEOUT_S = 0.5


@pytest.fixture
async def in_process(request: pytest.FixtureRequest) -> AsyncIterator[ToolNode]:
    garbage.calls.clear()
    hang = getattr(request, "param", None) == "hang"
    node = ToolNode(garbage_config(connection=garbage.server, timeout_s=HANG_TIMEOUT_S if hang else 30.0))
    async with node:
        yield node


@pytest.fixture(scope="module")
def stdio_name() -> str:
    return node_name("gstdio")


# The stdio node's one attempt timeout bounds every call, "hang" included: long enough that a loaded machine
# never times out a call that answers, short enough for the "hang" case to end soon.
STDIO_TIMEOUT_S = 5.0


@pytest.fixture
async def stdio() -> AsyncIterator[ToolNode]:
    node = ToolNode(garbage_config(timeout_s=STDIO_TIMEOUT_S))
    async with asyncio.timeout(30):
        async with node:
            yield node


IN_PROCESS_CASES: list[tuple[str, dict[str, Any], type[ToolError], str]] = [
    ("wrong_type", {}, ToolExecutionError, "invalid result"),
    ("not_serializable", {}, ToolExecutionError, "serialize"),
    ("boom", {}, ToolExecutionError, "kaboom"),
    ("hang", {}, ToolTimeoutError, "timed out after 0.5s"),
    ("ok", {"x": "two"}, ToolValidationError, "argument 'x'"),
    ("ok", {"x": 1.5}, ToolValidationError, "argument 'x'"),
    ("ok", {}, ToolValidationError, "missing required argument 'x'"),
    ("ok", {"x": math.nan}, ToolValidationError, "argument 'x'"),
    ("anything", {"value": {1, 2}}, ToolValidationError, "'value' is not JSON data"),
    ("anything", {"value": math.inf}, ToolValidationError, "'value' is not JSON data"),
    ("anything", {"value": object()}, ToolValidationError, "'value' is not JSON data"),
    ("no_such_tool", {}, ToolNotFoundError, "no tool"),
]


# The garbage server's own pydantic warns when it serializes the wrong type it was built to return.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.parametrize(
    ("in_process", "tool_name", "arguments", "error", "message"),
    [(case[0], *case) for case in IN_PROCESS_CASES],
    indirect=["in_process"],
)
async def test_in_process_mcp_server_garbage_is_typed(
    in_process: ToolNode, tool_name: str, arguments: dict[str, Any], error: type[ToolError], message: str
) -> None:
    node = in_process
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(error, match=message):
            await node.call(tool_name, arguments)
        assert_idle(node.limiter)
        if error is ToolValidationError:
            assert garbage.calls[tool_name] == 0  # refused before it reached the server
        else:
            assert garbage.calls[tool_name] == (0 if error is ToolNotFoundError else 1)
        assert await node.call("ok", {"x": 21}) == 42  # the session still works
    assert_idle(node.limiter)


async def test_arguments_that_are_not_a_mapping_are_a_validation_error(in_process: ToolNode) -> None:
    for arguments in ("x=1", [("x", 1)], 5):
        with pytest.raises(ToolValidationError, match="must be a mapping"):
            await in_process.get_tool("ok").invoke(arguments)  # type: ignore[arg-type]
    assert garbage.calls["ok"] == 0
    assert_idle(in_process.limiter)


async def _server_calls(node: ToolNode) -> dict[str, int]:
    stats = await node.call("stats")
    assert isinstance(stats, dict)
    return dict(stats["calls"])


async def test_stdio_mcp_server_garbage_is_typed_and_the_session_recovers(stdio: ToolNode) -> None:
    node = stdio
    async with asyncio.timeout(90):
        assert await node.call("junk_stdout", {"x": 5}) == 5  # junk lines on the protocol channel are dropped
        assert await node.call("ok", {"x": 1}) == 2
        try:  # a forged reply of the wrong shape: the real answer or a typed error, never anything else
            forged = await node.call("forged_reply")
            assert forged == "the real answer"
        except ToolError:
            pass
        assert await node.call("ok", {"x": 2}) == 4
        for tool_name, error, message in (
            ("wrong_type", ToolExecutionError, "invalid result"),
            ("not_serializable", ToolExecutionError, "serialize"),
            ("boom", ToolExecutionError, "kaboom"),
            ("hang", ToolTimeoutError, f"timed out after {STDIO_TIMEOUT_S:g}s"),
        ):
            with pytest.raises(error, match=message):
                await node.call(tool_name)
            assert_idle(node.limiter)
        # Wrong argument types never reach the server.
        before = await _server_calls(node)
        for arguments in ({"x": "1"}, {"x": None}, {"x": [1]}, {"x": 1, "extra": True}, {"x": math.inf}):
            with pytest.raises(ToolValidationError):
                await node.call("ok", arguments)
        after = await _server_calls(node)
        assert after.get("ok", 0) == before.get("ok", 0)
        pid = (await node.call("stats"))["pid"]
        # The server dies in the middle of a call: a connection error, then a fresh server.
        with pytest.raises(ToolConnectionError, match="connection lost"):
            await node.call("die")
        assert_idle(node.limiter)
        # Starting a fresh server may take longer than this node's attempt timeout on a loaded machine: open it
        # first (a call would do the same, then time out while the connect goes on in the background).
        assert node.transport is not None
        await node.transport.connect()
        assert await node.call("ok", {"x": 3}) == 6
        assert (await node.call("stats"))["pid"] != pid
    assert_idle(node.limiter)


async def test_stdio_server_printing_junk_before_the_handshake_still_connects() -> None:
    node = ToolNode(garbage_config(env={"GARBAGE_JUNK_AT_START": "1"}))
    async with asyncio.timeout(30):
        try:
            await node.connect()
        except ToolConnectionError:
            pass  # refusing is acceptable too: what matters is a typed error, in bounded time
        else:
            assert await node.call("ok", {"x": 4}) == 8
        finally:
            await node.close()


@pytest.mark.parametrize(
    "program",
    [
        "import sys; print('I am not an MCP server'); sys.exit(0)",
        'import sys; sys.stdout.write(\'{"jsonrpc": "2.0", "id": 0, "result": 42}\\n\'); sys.exit(3)',
        "import time; print('hello?', flush=True); time.sleep(30)",
    ],
    ids=["exits", "bad-handshake-then-exits", "junk-and-silence"],
)
async def test_a_program_that_is_not_an_mcp_server_fails_to_connect_in_bounded_time(program: str) -> None:
    node = ToolNode(
        garbage_config(
            connection=f"{shlex.quote(sys.executable)} -c {shlex.quote(program)}",
            timeout_s=1.0,
            connect_timeout_s=1.0,
        )
    )
    start = time.monotonic()
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(ToolConnectionError, match="could not connect"):
            await node.connect()
        await node.close()
    assert time.monotonic() - start < 8
    assert not node.connected


# =============================================================================================================
# 4. LLM replies that cannot be used
# =============================================================================================================


def counting_tool() -> tuple[ToolEntry, list[int]]:
    ran: list[int] = []

    def count(n: int) -> int:
        """Count n."""
        ran.append(n)
        return n

    return tool(name=otel.unique("local.count"))(count), ran


UNUSABLE_CALLS: dict[str, tuple[Any, Any, str]] = {  # name, arguments, what the LLM is told
    "not_json": (None, '{"n": 1', "not valid JSON"),
    "json_not_object": (None, "[1, 2]", "must be a JSON object"),
    "unknown_tool": ("no.such_tool", {"n": 1}, "unknown tool 'no.such_tool'"),
    "wrong_type": (None, {"n": "one"}, "ToolValidationError"),
    "missing_argument": (None, {}, "argument 'n': Field required"),
    "unexpected_argument": (None, {"n": 1, "m": 2}, "ToolValidationError"),
}


@pytest.mark.parametrize("case", list(UNUSABLE_CALLS))
async def test_scripted_llm_unusable_calls_are_reported_back_then_a_typed_error(case: str) -> None:
    entry, ran = counting_tool()
    name, arguments, told = UNUSABLE_CALLS[case]
    call = ToolCall("c1", name or entry.name, arguments)
    stubborn = ScriptedLLM(lambda messages, tools: LLMReply(tool_calls=(call,)))
    planner = ReactPlanner(catalog=[entry], llm=stubborn, max_invalid_replies=2, max_hops=50)
    async with asyncio.timeout(BOUND_S):
        with pytest.raises(LLMOutputError) as info:
            await planner.run("count to one")
    assert info.value.attempts == 3 and len(stubborn.calls) == 3  # told twice, then the typed error
    for messages, _tools in stubborn.calls[1:]:
        assert messages[-1]["role"] == "tool" and told in messages[-1]["content"]
    assert ran == []
    assert_idle(planner.limiter)

    # An LLM that learns from the report recovers, within the same bound.
    learner = ScriptedLLM([LLMReply(tool_calls=(call,)), [(entry.name, {"n": 7})], "counted"])
    result = await ReactPlanner(catalog=[entry], llm=learner, max_invalid_replies=2).run("count")
    assert (result.answer, ran) == ("counted", [7])


@pytest.fixture
def counting_http() -> Iterator[ScriptedHttpServer]:
    document = _doc(
        {
            "/typed/{id}": {
                "post": {
                    "operationId": "typed",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                        {"name": "flag", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"text": {"type": "string", "maxLength": 5}},
                                    "required": ["text"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                }
            },
            "/anything": {
                "post": {
                    "operationId": "anything",
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                }
            },
        }
    )
    routes = {
        "/openapi.json": Route(document),
        "/typed/1": Route({"ok": True}),
        "/anything": Route({"ok": True}),
    }
    with ScriptedHttpServer(routes) as server:
        yield server


WRONG_HTTP_ARGUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("typed", {"id": "one", "text": "a"}, "argument 'id'"),
    ("typed", {"id": 1.5, "text": "a"}, "argument 'id'"),
    ("typed", {"id": 1, "text": 5}, "argument 'text'"),
    ("typed", {"id": 1, "text": "too long"}, "maxLength"),
    ("typed", {"id": 1, "text": "a", "flag": "yes"}, "argument 'flag'"),
    ("typed", {"id": 1}, "missing required argument 'text'"),
    ("typed", {"id": 1, "text": "a", "extra": 1}, "unexpected argument"),
    ("anything", {"body": {1, 2}}, "'body' is not JSON data"),
    ("anything", {"body": math.nan}, "'body' is not JSON data"),
    ("anything", {"body": object()}, "'body' is not JSON data"),
]


async def test_wrong_http_arguments_never_reach_the_server(counting_http: ScriptedHttpServer) -> None:
    node = ToolNode(http_config(counting_http.url))
    async with asyncio.timeout(BOUND_S):
        async with node:
            for tool_name, arguments, message in WRONG_HTTP_ARGUMENTS:
                with pytest.raises(ToolValidationError, match=message):
                    await node.call(tool_name, arguments)
                assert_idle(node.limiter)
            assert counting_http.hits["/typed/1"] == counting_http.hits["/anything"] == 0
            # the same tools do reach it with good arguments
            assert await node.call("typed", {"id": 1, "text": "a", "flag": True}) == {"ok": True}
            assert await node.call("anything", {"body": {"any": [1, "json"]}}) == {"ok": True}
    assert counting_http.hits["/typed/1"] == counting_http.hits["/anything"] == 1
    assert_idle(node.limiter)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from(["n", "m", "text"]), ANYTHING, max_size=3))
def test_native_tool_arguments_of_any_type_run_or_are_a_validation_error(arguments: dict[str, Any]) -> None:
    ran: list[Any] = []

    @tool(name="local.strict_count", timeout_s=1)
    def strict_count(n: int, text: str = "") -> int:
        ran.append(n)
        return n

    valid = set(arguments) <= {"n", "text"} and "n" in arguments
    valid = valid and (
        type(arguments["n"]) is int
        or (
            type(arguments["n"]) is float
            and math.isfinite(arguments["n"])
            and arguments["n"].is_integer()
            and abs(arguments["n"]) < 2**63  # pydantic refuses larger floats as an int
        )
        or (isinstance(arguments["n"], str) and arguments["n"].strip().lstrip("+-").isdigit())
        or type(arguments["n"]) is bool
    )
    valid = valid and isinstance(arguments.get("text", ""), str)
    try:
        result = asyncio.run(asyncio.wait_for(strict_count.invoke(arguments), BOUND_S))
    except ToolValidationError:
        assert ran == []
        assert not valid, arguments
    else:
        assert ran == [result]
        assert valid, arguments


# --- the OpenAI-compatible client against a real Chat Completions endpoint -----------------------------------


def _function(request: dict[str, Any], index: int = 0) -> str:
    return str(request["tools"][index]["function"]["name"])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((200, b"<html>definitely not json</html>"), "not a Chat Completions reply"),
        ((200, b'{"choices": []}'), "not a Chat Completions reply"),
        ((200, b"[1, 2, 3]"), "not a Chat Completions reply"),
        (chat_reply(content=42), "not a Chat Completions reply"),
        (chat_reply(tool_calls=[function_call(7, "{}")]), "not a Chat Completions reply"),
        (chat_reply(tool_calls=[{"id": "x", "type": "function"}]), "not a Chat Completions reply"),
        ((502, b"upstream exploded"), "HTTP 502"),
    ],
    ids=["html", "no-choices", "a-list", "content-int", "name-int", "no-function", "502"],
)
async def test_provider_replies_that_are_not_chat_completions_are_llm_response_errors(
    reply: Any, message: str
) -> None:
    entry, ran = counting_tool()
    with ChatCompletions([reply]) as chat:
        planner = ReactPlanner(catalog=[entry], llm=OpenAIChatClient("m", api_key="k", base_url=chat.url))
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(LLMResponseError, match=message):
                await planner.run("count")
        await planner.aclose()
    assert len(chat.bodies) == 1 and ran == []
    assert_idle(planner.limiter)


@pytest.mark.parametrize(
    ("make_call", "told"),
    [
        (lambda request: function_call(_function(request), '{"n": '), "not valid JSON"),
        (lambda request: function_call(_function(request), "5"), "must be a JSON object"),
        (lambda request: function_call(_function(request), 5), "must be a JSON object"),
        (lambda request: function_call("no_such_function", "{}"), "unknown tool 'no_such_function'"),
        (lambda request: function_call(_function(request), '{"n": "one"}'), "ToolValidationError"),
        (lambda request: function_call(_function(request), '{"n": 1, "evil": true}'), "ToolValidationError"),
    ],
    ids=[
        "truncated-json",
        "json-number",
        "arguments-not-text",
        "unknown-function",
        "wrong-type",
        "extra-arg",
    ],
)
async def test_openai_unusable_tool_calls_are_reported_back_then_a_typed_error(
    make_call: Any, told: str
) -> None:
    entry, ran = counting_tool()
    with ChatCompletions(lambda request: chat_reply(tool_calls=[make_call(request)])) as chat:
        client = OpenAIChatClient("m", api_key="k", base_url=chat.url)
        planner = ReactPlanner(catalog=[entry], llm=client, max_invalid_replies=2, max_hops=50)
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(LLMOutputError) as info:
                await planner.run("count")
        await planner.aclose()
    assert info.value.attempts == 3 and len(chat.bodies) == 3
    for request in chat.bodies[1:]:
        reported = request["messages"][-1]
        assert reported["role"] == "tool" and told in reported["content"]
    assert ran == []
    assert_idle(planner.limiter)


async def test_openai_content_parts_are_read_as_text() -> None:
    parts = [
        {"type": "text", "text": "forty"},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "-two"},
    ]
    with ChatCompletions([chat_reply(content=parts)]) as chat:
        planner = ReactPlanner(catalog=[double], llm=OpenAIChatClient("m", api_key="k", base_url=chat.url))
        async with asyncio.timeout(BOUND_S):
            result = await planner.run("answer")
        await planner.aclose()
    assert (result.answer, result.reason) == ("forty-two", "answered")


async def test_wrong_arguments_from_the_llm_never_reach_http_or_mcp_servers(
    counting_http: ScriptedHttpServer, in_process: ToolNode
) -> None:
    http = ToolNode(http_config(counting_http.url))
    async with http:
        typed = f"{http.name}.typed"
        ok = f"{in_process.name}.ok"
        llm = ScriptedLLM(
            lambda messages, tools: [
                (typed, {"id": "x", "text": "a"}),
                (ok, {"x": "not a number"}),
                ("local.double", {"n": [1]}),
            ]
        )
        planner = ReactPlanner(
            catalog=[*http.get_tools(), *in_process.get_tools(), double], llm=llm, max_invalid_replies=1
        )
        async with asyncio.timeout(BOUND_S):
            with pytest.raises(LLMOutputError):
                await planner.run("do it", planning_hints={"max_parallel": 2})
    assert len(llm.calls) == 2
    observations = [json.loads(m["content"]) for m in llm.calls[1][0] if m["role"] == "tool"]
    assert {o["error"]["type"] for o in observations} == {"ToolValidationError"}
    assert counting_http.hits["/typed/1"] == 0 and garbage.calls["ok"] == 0
    assert_idle(planner.limiter, http.limiter, in_process.limiter)
