"""``Retry`` and ``RetryPolicy``: what is retried, how long it waits, the deadline, and what it reports.

Waits go through a recording fake ``sleep`` (time is the one thing faked), except where the test is about
real interleaving with a limiter.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import tenacity
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from penguiflow.errors import (
    DeadlineExceededError,
    LimiterRejectedError,
    ToolClientError,
    ToolConnectionError,
    ToolRateLimitedError,
    ToolServerError,
    ToolTimeoutError,
)
from penguiflow.middleware import (
    Call,
    ConcurrencyLimit,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    parse_retry_after,
)
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.otel import unique


class FakeSleep:
    """Records every wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


class Flaky:
    """A handler that raises the given errors in turn, then returns ``"ok"``; counts attempts."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.attempts: list[int] = []

    async def __call__(self, call: Call) -> str:
        self.attempts.append(call.attempt)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retried(handler: Any, policy: RetryPolicy, sleep: FakeSleep, tool: str | None = None) -> Stack:
    return Stack(handler, [Retry(policy, sleep=sleep)])


class Marked(Exception):
    retryable = True


# --- what is retried ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retried_"),
    [
        (ToolServerError("boom", status_code=503), True),
        (ToolRateLimitedError("slow down", status_code=429), True),
        (ToolClientError("not found", status_code=404), False),
        (ToolClientError("bad request", status_code=400), False),
        (ToolTimeoutError("t", 1.0), True),
        (TimeoutError("plain timeout"), True),
        (ToolConnectionError("refused"), True),
        (ConnectionResetError("reset"), True),
        (Marked("marked retryable"), True),
        (ValueError("a bug"), False),
        (LimiterRejectedError("l", 0), False),
    ],
)
async def test_only_retryable_failures_are_retried(error: Exception, retried_: bool) -> None:
    handler = Flaky(error, error, error)
    sleep = FakeSleep()
    stack = retried(handler, RetryPolicy(max_attempts=3), sleep)
    with pytest.raises(type(error)):
        await stack(Call(unique("retryable"), {}))
    assert handler.attempts == ([1, 2, 3] if retried_ else [1])
    assert len(sleep.waits) == (2 if retried_ else 0)


async def test_a_status_outside_retry_on_status_is_not_retried() -> None:
    handler = Flaky(ToolServerError("boom", status_code=500))
    with pytest.raises(ToolServerError):
        await retried(handler, RetryPolicy(retry_on_status=[503]), FakeSleep())(Call("s", {}))
    assert handler.attempts == [1]


async def test_retry_if_overrides_the_test_and_success_after_failures_returns_the_result() -> None:
    handler = Flaky(ValueError("odd"), ValueError("odd"))
    stack = Stack(handler, [Retry(RetryPolicy(max_attempts=3), retry_if=lambda e: True, sleep=FakeSleep())])
    assert await stack(Call("r", {})) == "ok"
    assert handler.attempts == [1, 2, 3]


# --- how long it waits ----------------------------------------------------------------------------------------


async def test_retry_after_seconds_replaces_the_back_off() -> None:
    sleep = FakeSleep()
    handler = Flaky(ToolRateLimitedError("429", status_code=429, retry_after=7))
    policy = RetryPolicy(wait_exponential_max_s=1, jitter=0)
    assert await retried(handler, policy, sleep)(Call("ra", {})) == "ok"
    assert sleep.waits == [7.0]


async def test_retry_after_is_jittered_by_at_most_jitter_times_the_longest_back_off() -> None:
    policy = RetryPolicy(max_attempts=2, wait_exponential_max_s=2, jitter=0.5)
    waits = []
    for _ in range(40):
        sleep = FakeSleep()
        handler = Flaky(ToolRateLimitedError("429", status_code=429, retry_after=30))
        await retried(handler, policy, sleep)(Call("ra", {}))
        waits.extend(sleep.waits)
    assert all(30.0 <= wait <= 30.0 + 0.5 * 2 for wait in waits), (min(waits), max(waits))
    assert len({round(wait, 6) for wait in waits}) > 1  # clients told the same moment spread out


@pytest.mark.parametrize("retry_after", [0, 0.0, 0.001])
async def test_retry_after_never_waits_less_than_the_policy_minimum(retry_after: float) -> None:
    """``Retry-After: 0`` (or a date in the past, parsed as 0) used to make every attempt immediate: 100
    attempts in 0.3 s. Each wait is now at least ``wait_exponential_min_s``."""
    sleep = FakeSleep()
    errors = [ToolRateLimitedError("429", status_code=429, retry_after=retry_after) for _ in range(99)]
    policy = RetryPolicy(max_attempts=100, wait_exponential_min_s=0.2, jitter=0.5)
    assert await retried(Flaky(*errors), policy, sleep)(Call("ra0", {})) == "ok"
    assert len(sleep.waits) == 99
    assert min(sleep.waits) >= 0.2
    assert sum(sleep.waits) >= 99 * 0.2


async def test_retry_after_http_date_is_honoured() -> None:
    header = "Wed, 21 Oct 2037 07:28:00 GMT"
    now = datetime(2037, 10, 21, 7, 27, 15, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == 45.0
    in_20s = (datetime.now(UTC).replace(microsecond=0) + _seconds(20)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    sleep = FakeSleep()
    error = ToolRateLimitedError("429", status_code=429, retry_after=parse_retry_after(in_20s))
    assert await retried(Flaky(error), RetryPolicy(), sleep)(Call("ra", {})) == "ok"
    assert len(sleep.waits) == 1 and 17.0 <= sleep.waits[0] <= 20.0 + 0.5 * 10  # + jitter share of max 10 s


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("  3 ", 3.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),  # a digit to str.isdigit(), not to float(): regression
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


async def test_retry_after_is_capped_by_max_retry_after_s() -> None:
    sleep = FakeSleep()
    error = ToolRateLimitedError("429", status_code=429, retry_after=3600)
    await retried(Flaky(error), RetryPolicy(max_retry_after_s=90), sleep)(Call("cap", {}))
    assert sleep.waits == [90.0]


async def test_exponential_back_off_without_jitter_doubles_up_to_the_max() -> None:
    sleep = FakeSleep()
    errors = [ToolServerError("boom", status_code=503) for _ in range(6)]
    policy = RetryPolicy(max_attempts=7, wait_exponential_min_s=0.5, wait_exponential_max_s=3, jitter=0)
    assert await retried(Flaky(*errors), policy, sleep)(Call("exp", {})) == "ok"
    assert sleep.waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


async def test_jittered_back_off_stays_within_min_and_max() -> None:
    policy = RetryPolicy(max_attempts=8, wait_exponential_min_s=0.5, wait_exponential_max_s=4, jitter=1)
    waits: list[float] = []
    for _ in range(30):
        sleep = FakeSleep()
        errors = [ToolServerError("boom", status_code=503) for _ in range(7)]
        await retried(Flaky(*errors), policy, sleep)(Call("jit", {}))
        base = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
        for wait, b in zip(sleep.waits, base, strict=True):
            assert b <= wait <= min(2 * b, 4.0)
        waits.extend(sleep.waits)
    assert min(waits) >= 0.5 and max(waits) <= 4.0
    assert len({round(w, 6) for w in waits[:1]} | {round(w, 6) for w in waits[::7]}) > 1  # it does vary


# --- the deadline ---------------------------------------------------------------------------------------------


async def test_a_retry_after_beyond_the_deadline_fails_fast_without_sleeping() -> None:
    sleep = FakeSleep()
    handler = Flaky(ToolRateLimitedError("429", status_code=429, retry_after=30))
    stack = retried(handler, RetryPolicy(deadline_s=5), sleep)
    started = time.perf_counter()
    with pytest.raises(ToolRateLimitedError) as info:
        await stack(Call("deadline", {}))
    assert time.perf_counter() - started < 0.5
    assert info.value.retry_after == 30
    assert sleep.waits == []
    assert handler.attempts == [1]


async def test_the_deadline_bounds_attempts_and_waits_together() -> None:
    tool = unique("deadline.tool")
    attempts: list[int] = []

    async def slow_failure(call: Call) -> None:
        attempts.append(call.attempt)
        await asyncio.sleep(0.03)
        raise ToolServerError("boom", status_code=503)

    policy = RetryPolicy(
        max_attempts=50, wait_exponential_min_s=0.001, wait_exponential_max_s=0.001, deadline_s=0.1
    )
    started = time.perf_counter()
    # Either way the deadline ends the call: it falls during an attempt (DeadlineExceededError, a timeout), or a
    # back-off would end past it, which is not slept (the last error, at once). Which one depends on how fast
    # this machine runs the attempts; on a loaded one the second is common.
    with pytest.raises((DeadlineExceededError, ToolServerError)) as info:
        await Stack(slow_failure, [Retry(policy)])(Call(tool, {}))
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # ends at the deadline, not after 50 attempts
    assert 1 <= len(attempts) <= 5
    outcome = "timeout" if isinstance(info.value, DeadlineExceededError) else "error"
    if outcome == "timeout":
        assert isinstance(info.value, TimeoutError) and elapsed >= 0.09
    duration = {names.GEN_AI_TOOL_NAME: tool}
    assert otel.histogram_count(names.TOOL_DURATION, **duration, **{names.OUTCOME: outcome}) == 1
    assert otel.histogram_count(names.TOOL_DURATION, **duration) == 1


# --- cancellation ---------------------------------------------------------------------------------------------


async def test_cancellation_during_an_attempt_is_never_retried() -> None:
    attempts: list[int] = []
    started = asyncio.Event()

    async def hangs(call: Call) -> None:
        attempts.append(call.attempt)
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(
        Stack(hangs, [Retry(RetryPolicy(max_attempts=5), sleep=FakeSleep())])(Call("c", {}))
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1]


async def test_cancellation_during_back_off_stops_the_retries() -> None:
    attempts: list[int] = []

    async def fails(call: Call) -> None:
        attempts.append(call.attempt)
        raise ToolServerError("boom", status_code=503)

    policy = RetryPolicy(max_attempts=5, wait_exponential_min_s=10, wait_exponential_max_s=10)
    task = asyncio.create_task(Stack(fails, [Retry(policy)])(Call("c", {})))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1]


async def test_a_handler_raising_cancelled_error_is_not_retried() -> None:
    handler = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await retried(handler, RetryPolicy(max_attempts=3), FakeSleep())(Call("c", {}))
    assert handler.attempts == [1]


# --- back-off holds no slot ------------------------------------------------------------------------------------


async def test_back_off_does_not_hold_a_slot() -> None:
    """Retry outside ConcurrencyLimit(1): while A sleeps in back-off, B runs through the same limit."""
    limiter = ConcurrencyLimit(1, name=unique("backoff.limit"))
    timeline: list[str] = []
    a_failed = False

    async def recording_sleep(seconds: float) -> None:
        timeline.append(f"A sleeps (in_flight={limiter.in_flight})")
        await asyncio.sleep(seconds)
        timeline.append("A wakes")

    async def handler(call: Call) -> str:
        nonlocal a_failed
        who = call.arguments["who"]
        timeline.append(f"{who}{call.attempt} runs")
        if who == "A" and not a_failed:
            a_failed = True
            raise ToolServerError("busy", status_code=503)
        await asyncio.sleep(0.005)
        timeline.append(f"{who}{call.attempt} done")
        return who

    policy = RetryPolicy(max_attempts=2, wait_exponential_min_s=0.05, wait_exponential_max_s=0.05, jitter=0)
    stack = Stack(handler, [Retry(policy, sleep=recording_sleep), limiter, Timeout(1)])
    a = asyncio.create_task(stack(Call("backoff", {"who": "A"})))
    b = asyncio.create_task(stack(Call("backoff", {"who": "B"})))
    assert await asyncio.gather(a, b) == ["A", "B"]
    assert timeline == [
        "A1 runs",
        "A sleeps (in_flight=0)",  # A gave its slot back before sleeping …
        "B1 runs",  # … and B used it meanwhile
        "B1 done",
        "A wakes",
        "A2 runs",
        "A2 done",
    ]


# --- telemetry ------------------------------------------------------------------------------------------------


async def test_retries_are_counted_by_reason_with_attempt_spans_and_back_off_events(
    spans: InMemorySpanExporter,
) -> None:
    tool = unique("retry.tel")
    handler = Flaky(ToolServerError("boom", status_code=503), ToolTimeoutError(tool, 1.0))
    sleep = FakeSleep()
    assert await Stack(handler, [Retry(RetryPolicy(max_attempts=3), sleep=sleep)])(Call(tool, {})) == "ok"

    by_reason = {
        attributes[names.RETRY_REASON]: point.value
        for attributes, point in otel.points(names.RETRY_ATTEMPTS, **{names.GEN_AI_TOOL_NAME: tool})
    }
    assert by_reason == {"status_503": 1, "timeout": 1}

    (call_span,) = otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))
    attempts = sorted(
        otel.spans(names.SPAN_ATTEMPT.format(tool=tool)), key=lambda s: s.attributes[names.ATTEMPT]
    )
    assert [s.attributes[names.ATTEMPT] for s in attempts] == [1, 2, 3]
    assert [s.attributes[names.HTTP_RESEND_COUNT] for s in attempts] == [0, 1, 2]
    assert [s.attributes.get(names.ERROR_TYPE) for s in attempts] == [
        "ToolServerError",
        "ToolTimeoutError",
        None,
    ]
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == call_span.context.span_id
        assert span.start_time >= call_span.start_time and span.end_time <= call_span.end_time
    assert attempts[0].end_time <= attempts[1].start_time <= attempts[1].end_time <= attempts[2].start_time

    backoffs = [event for event in call_span.events if event.name == names.EVENT_BACKOFF]
    assert [event.attributes[names.ATTEMPT] for event in backoffs] == [1, 2]
    assert [event.attributes[names.RETRY_REASON] for event in backoffs] == ["status_503", "timeout"]
    assert [event.attributes[names.RETRY_WAIT_S] for event in backoffs] == sleep.waits


async def test_a_call_that_succeeds_at_once_has_no_attempt_span(spans: InMemorySpanExporter) -> None:
    tool = unique("retry.once")
    assert await Stack(Flaky(), [Retry()])(Call(tool, {})) == "ok"
    assert otel.spans(names.SPAN_ATTEMPT.format(tool=tool)) == []
    assert len(otel.spans(names.SPAN_EXECUTE_TOOL.format(tool=tool))) == 1
    assert otel.points(names.RETRY_ATTEMPTS, **{names.GEN_AI_TOOL_NAME: tool}) == []


async def test_the_first_attempt_does_not_pay_tenacity_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []

    class Counting(tenacity.AsyncRetrying):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tenacity, "AsyncRetrying", Counting)  # Retry imports it at its first retry
    retry = Retry(RetryPolicy(), sleep=FakeSleep())
    stack = Stack(Flaky(), [retry])
    for _ in range(5):
        assert await stack(Call("first", {})) == "ok"
    assert built == []  # five first-attempt successes, tenacity never constructed
    with pytest.raises(ValueError):  # non-retryable failure: no tenacity either
        await Stack(Flaky(ValueError("x")), [retry])(Call("first", {}))
    assert built == []
    assert await Stack(Flaky(ToolConnectionError("down")), [retry])(Call("first", {})) == "ok"
    assert built == [1]  # only a retryable failure brings tenacity in


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"wait_exponential_min_s": -1}, "wait_exponential_min_s"),
        ({"wait_exponential_max_s": -1}, "wait_exponential_max_s"),
        ({"wait_exponential_min_s": 5, "wait_exponential_max_s": 1}, "wait_exponential_max_s"),
        ({"retry_on_status": [700]}, "retry_on_status"),
        ({"retry_on_status": [42]}, "retry_on_status"),
        ({"jitter": 2}, "jitter"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"max_attemps": 3}, "max_attemps"),  # a typo is refused, not ignored
    ],
)
def test_bad_policies_fail_at_construction_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetryPolicy(**kwargs)
    assert field in str(info.value)


def test_the_guides_policies_construct() -> None:
    RetryPolicy(
        max_attempts=3,
        wait_exponential_min_s=0.1,
        wait_exponential_max_s=2.0,
        retry_on_status=[500, 502, 503, 504],
    )
    RetryPolicy(
        max_attempts=5,
        wait_exponential_min_s=1.0,
        wait_exponential_max_s=60.0,
        retry_on_status=[429, 500, 502, 503, 504],
    )
    assert RetryPolicy(max_attempts=1, retry_on_status=[]).max_attempts == 1
