"""Retry safety: a call that may not be idempotent is re-sent only after a failure proving it did not run.

Also what a failure *is* (``failures.classify``, classifiers of other libraries) and ``retry_if`` that raises.
Unit tests use a fake sleep; the end-to-end ones count executions on a real MCP server subprocess.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from penguiflow import tool, wrap
from penguiflow.demo.backends.mcp_server import command
from penguiflow.errors import (
    ToolConnectionError,
    ToolRateLimitedError,
    ToolServerError,
    ToolTimeoutError,
)
from penguiflow.middleware import Call, Retry, RetryPolicy, Stack, failures
from penguiflow.middleware.failures import NOT_PROCESSED_STATUSES, Failure, classify
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from tests.support import otel
from tests.support.otel import unique
from tests.test_retry import FakeSleep, Flaky

NOT_SAFE = [
    ToolTimeoutError("t", 1.0),
    TimeoutError("plain"),
    ToolConnectionError("reset after sending"),
    ConnectionResetError("reset"),
    ToolServerError("boom", status_code=500),
    ToolServerError("bad gateway", status_code=502),
    ToolServerError("gateway timeout", status_code=504),
]
SAFE = [
    ToolConnectionError("refused", request_sent=False),
    ToolRateLimitedError("slow down", status_code=429),
    ToolServerError("unavailable", status_code=503),
]


def stack_for(handler: Any, policy: RetryPolicy, sleep: FakeSleep) -> Stack:
    return Stack(handler, [Retry(policy, sleep=sleep)])


@pytest.mark.parametrize(
    "error", NOT_SAFE, ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", ""))
)
async def test_a_non_idempotent_call_is_not_re_sent_when_it_may_have_run(error: Exception) -> None:
    handler = Flaky(error, error)
    with pytest.raises(type(error)):
        await stack_for(handler, RetryPolicy(max_attempts=3), FakeSleep())(
            Call(unique("unsafe"), {}, idempotent=False)
        )
    assert handler.attempts == [1]


@pytest.mark.parametrize("error", SAFE, ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")))
async def test_a_non_idempotent_call_is_re_sent_when_the_source_did_not_process_it(error: Exception) -> None:
    handler = Flaky(error)
    assert (
        await stack_for(handler, RetryPolicy(max_attempts=3), FakeSleep())(
            Call(unique("safe"), {}, idempotent=False)
        )
        == "ok"
    )
    assert handler.attempts == [1, 2]


@pytest.mark.parametrize("idempotent", [True, None])
@pytest.mark.parametrize(
    "error", NOT_SAFE, ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", ""))
)
async def test_idempotent_and_unknown_calls_follow_the_policy(
    error: Exception, idempotent: bool | None
) -> None:
    handler = Flaky(error)
    call = Call(unique("idem"), {}, idempotent=idempotent)
    assert await stack_for(handler, RetryPolicy(max_attempts=3), FakeSleep())(call) == "ok"
    assert handler.attempts == [1, 2]


@pytest.mark.parametrize(
    "error", NOT_SAFE, ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", ""))
)
async def test_retry_non_idempotent_opts_in(error: Exception) -> None:
    handler = Flaky(error)
    policy = RetryPolicy(max_attempts=3, retry_non_idempotent=True)
    assert await stack_for(handler, policy, FakeSleep())(Call(unique("optin"), {}, idempotent=False)) == "ok"
    assert handler.attempts == [1, 2]


async def test_a_not_processed_status_outside_retry_on_status_is_still_not_retried() -> None:
    handler = Flaky(ToolServerError("unavailable", status_code=503))
    with pytest.raises(ToolServerError):
        await stack_for(handler, RetryPolicy(retry_on_status=[429]), FakeSleep())(
            Call("s", {}, idempotent=False)
        )
    assert handler.attempts == [1]


def test_not_processed_statuses_are_those_that_say_so() -> None:
    assert frozenset({408, 425, 429, 503}) == NOT_PROCESSED_STATUSES
    assert Failure("status", status_code=503).not_processed
    assert not Failure("status", status_code=500).not_processed
    assert Failure("connection", request_sent=False).not_processed
    assert not Failure("connection").not_processed
    assert not Failure("timeout").not_processed


async def test_wrap_and_tool_carry_idempotent_to_the_call() -> None:
    seen: list[bool | None] = []

    async def spy(call: Call, call_next: Any) -> Any:
        seen.append(call.idempotent)
        return await call_next(call)

    async def create() -> str:
        return "created"

    assert await wrap(create, spy, name=unique("w"), idempotent=False)() == "created"
    assert await wrap(create, spy, name=unique("w"))() == "created"

    @tool(name=unique("native"), layers=[spy], idempotent=True)
    async def read() -> str:
        return "read"

    assert await read.invoke({}) == "read"
    assert seen == [False, None, True]
    with pytest.raises(ValueError, match="idempotent"):
        tool(name=unique("bad"), idempotent="yes")(create)  # type: ignore[call-overload]


# --- retry_if that raises ---------------------------------------------------------------------------------------
async def test_a_raising_retry_if_is_logged_and_means_do_not_retry(caplog: pytest.LogCaptureFixture) -> None:
    original = ToolServerError("boom", status_code=503)
    handler = Flaky(original, original)

    def broken(exc: BaseException) -> bool:
        raise KeyError("oops")

    stack = Stack(handler, [Retry(RetryPolicy(max_attempts=3), retry_if=broken, sleep=FakeSleep())])
    with (
        caplog.at_level(logging.WARNING, logger="penguiflow.middleware.retry"),
        pytest.raises(ToolServerError) as info,
    ):
        await stack(Call(unique("raising"), {}))
    assert info.value is original  # the tool's error, not the predicate's
    assert handler.attempts == [1]
    assert any("retry_if raised KeyError" in record.getMessage() for record in caplog.records)


# --- classification -----------------------------------------------------------------------------------------------
class _ForeignTimeout(Exception):
    """Stands for a client library's own exception type (not a TimeoutError subclass)."""


class _ForeignStatus(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"status {status}")
        self.response_status = status
        self.after = retry_after


_ForeignTimeout.__module__ = "fakelib.errors"
_ForeignStatus.__module__ = "fakelib"


def _fakelib(exc: BaseException) -> Failure | None:
    if isinstance(exc, _ForeignTimeout):
        return Failure("timeout")
    if isinstance(exc, _ForeignStatus):
        return Failure("status", status_code=exc.response_status, retry_after=exc.after)
    return None


@pytest.fixture
def fakelib_classifier() -> Any:
    failures.register_classifier("fakelib", _fakelib)
    yield
    failures.unregister_classifier("fakelib")


def test_foreign_exceptions_are_unclassified_without_a_classifier() -> None:
    assert classify(_ForeignTimeout()) == Failure("error")


async def test_a_registered_classifier_makes_foreign_errors_retryable(fakelib_classifier: Any) -> None:
    assert classify(_ForeignTimeout()).kind == "timeout"
    sleep = FakeSleep()
    handler = Flaky(_ForeignStatus(503, retry_after=2.0), _ForeignTimeout())
    assert (
        await stack_for(handler, RetryPolicy(max_attempts=3, jitter=0), sleep)(Call(unique("f"), {})) == "ok"
    )
    assert handler.attempts == [1, 2, 3]
    assert sleep.waits[0] == 2.0  # the foreign Retry-After was honoured


async def test_a_foreign_timeout_is_counted_as_a_timeout_outcome(fakelib_classifier: Any) -> None:
    name = unique("foreign.timeout")

    async def times_out() -> None:
        raise _ForeignTimeout()

    with pytest.raises(_ForeignTimeout):
        await wrap(times_out, name=name)()
    assert (
        otel.histogram_count(names.TOOL_DURATION, **{names.GEN_AI_TOOL_NAME: name, names.OUTCOME: "timeout"})
        == 1
    )


def test_a_raising_classifier_falls_back_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(exc: BaseException) -> Failure | None:
        raise RuntimeError("classifier bug")

    failures.register_classifier("fakelib", broken)
    try:
        with caplog.at_level(logging.WARNING, logger="penguiflow.middleware.failures"):
            assert classify(_ForeignTimeout()) == Failure("error")
    finally:
        failures.unregister_classifier("fakelib")
    assert any("raised RuntimeError" in record.getMessage() for record in caplog.records)


def test_register_classifier_wants_a_top_level_module() -> None:
    with pytest.raises(ValueError, match="top-level"):
        failures.register_classifier("fakelib.errors", _fakelib)


def test_duck_typed_attributes_are_read() -> None:
    class Custom(Exception):
        status_code = 429
        retry_after = 3

    assert classify(Custom()) == Failure("status", status_code=429, retry_after=3.0)
    assert classify(ToolConnectionError("x", request_sent=False)).request_sent is False
    assert classify(asyncio.CancelledError()).retryable is False


# --- end to end: executions counted on a real MCP server ----------------------------------------------------------
def _node(policy: RetryPolicy, timeout_s: float) -> ToolNode:
    return ToolNode(
        ExternalToolConfig(
            name=unique("safety").replace(".", "_"),
            transport=TransportType.MCP,
            connection=command(),
            env={"PENGUIFLOW_MCP_DELAY_S": "0.5"},
            timeout_s=timeout_s,
            retry_policy=policy,
        )
    )


async def test_an_mcp_tool_without_hints_that_times_out_runs_once_and_a_read_only_one_is_retried() -> None:
    """create_issue declares no hints: after a timeout it is not re-sent. get_user is ``readOnlyHint``: it is."""
    policy = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.05, wait_exponential_max_s=0.1)
    async with _node(policy, timeout_s=0.2) as node:
        assert node.get_tool("create_issue").idempotent is False
        assert node.get_tool("get_user").idempotent is True
        with pytest.raises(ToolTimeoutError):
            await node.call("create_issue", {"repo": "o/r", "title": "t"})
        with pytest.raises(ToolTimeoutError):
            await node.call("get_user", {"username": "u"})
        await asyncio.sleep(0.6)  # let the server finish (or cancel) what it was sent
        calls = (await node.call("stats"))["calls"]
    assert calls.get("create_issue") == 1, calls
    assert calls.get("get_user") == 3, calls


async def test_timeout_layer_and_policy_opt_in_re_send_the_non_idempotent_tool() -> None:
    policy = RetryPolicy(
        max_attempts=2, wait_exponential_min_s=0.05, wait_exponential_max_s=0.1, retry_non_idempotent=True
    )
    async with _node(policy, timeout_s=0.2) as node:
        with pytest.raises(ToolTimeoutError):
            await node.call("create_issue", {"repo": "o/r", "title": "t"})
        await asyncio.sleep(0.6)
        calls = (await node.call("stats"))["calls"]
    assert calls.get("create_issue") == 2, calls
