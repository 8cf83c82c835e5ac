"""``Retry`` and ``RetryPolicy``: retries of retryable failures with exponential back-off, on tenacity.

The first attempt runs without tenacity (no set-up cost for the common case). Only when it fails retryably is a
``tenacity.AsyncRetrying`` built; it is handed that first outcome, so its attempt numbers, waits and stop
conditions are the call's own. What a failure is comes from :func:`~penguiflow.middleware.failures.classify`,
never from a transport: a status in ``retry_on_status``, a timeout, a connection failure, or an error marked
``retryable = True``.

**Re-sending is safe only for idempotent calls.** A call with ``Call.idempotent is False`` (a POST, an MCP tool
not annotated read-only or idempotent) is re-sent only after a failure proving the source did not process it:
a connection that never carried the request (``request_sent=False``) or a status in
:data:`~penguiflow.middleware.failures.NOT_PROCESSED_STATUSES` (408, 425, 429, 503). After a timeout, a lost
connection or a 500/502/504 it may already have run, so it is not re-sent unless the policy says
``retry_non_idempotent=True``. ``idempotent=None`` (unknown: a function you wrapped) follows the policy alone.

A server's ``retry_after`` replaces the exponential back-off, but never waits less than
``wait_exponential_min_s`` (``Retry-After: 0`` must not turn retries into a busy loop) and is jittered like any
back-off, within ``max_retry_after_s``. ``deadline_s`` bounds all attempts and waits together: a wait that would
end past it is not slept — the call fails at once with the last error. Cancellation is never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from penguiflow.errors import DeadlineExceededError
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.events import NODE_RETRY, emit
from penguiflow.middleware.failures import Failure, classify
from penguiflow.telemetry import instruments, names
from penguiflow.telemetry.bounds import bounded

if TYPE_CHECKING:  # tenacity loads at the first retry: a program whose calls succeed never imports it
    from tenacity import RetryCallState
    from tenacity.wait import wait_base

_log = logging.getLogger(__name__)


class RetryPolicy(BaseModel):
    """How a tool source's calls are retried. Field names are the user guide's."""

    # No inf/NaN: an infinite back-off would sleep for ever. ``strict`` attempts: ``True`` is not 1.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_attempts: int = Field(
        3, ge=1, le=100, strict=True, description="Attempts in all, the first included; 1 = no retry."
    )
    wait_exponential_min_s: float = Field(0.1, ge=0, description="Back-off before the second attempt.")
    wait_exponential_max_s: float = Field(10.0, ge=0, description="Back-off never grows past this.")
    retry_on_status: tuple[int, ...] = Field(
        (429, 500, 502, 503, 504), description="Statuses (HTTP or equivalent) that are worth another attempt."
    )
    jitter: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Each back-off is lengthened by up to this fraction, at random, but never past "
        "wait_exponential_max_s: waits stay within [min, max].",
    )
    retry_on_timeout: bool = Field(True, description="Retry attempts that timed out.")
    retry_on_connection_error: bool = Field(True, description="Retry failures to reach the source.")
    retry_non_idempotent: bool = Field(
        False,
        description="Also re-send calls that may not be idempotent (Call.idempotent False) after a timeout, a "
        "lost connection or a status that does not prove the request was not processed: they may run twice.",
    )
    deadline_s: float | None = Field(None, gt=0, description="Bound on all attempts and waits together.")
    max_retry_after_s: float = Field(
        120.0,
        gt=0,
        description="Cap on a server's Retry-After that is honoured. A Retry-After never waits less than "
        "wait_exponential_min_s, and is jittered like any back-off.",
    )

    @field_validator("retry_on_status")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not a status code (100..599)")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.wait_exponential_max_s < self.wait_exponential_min_s:
            raise ValueError("wait_exponential_max_s must be >= wait_exponential_min_s")
        return self


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date; ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not str.isdigit() alone: "²" is a digit to it
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_reason(exc: BaseException) -> str:
    """The low-cardinality reason label of a retry, from what the failure is (any client library's)."""
    failure = classify(exc)
    if failure.kind == "status":
        return f"status_{failure.status_code}"
    if failure.kind in ("timeout", "connection"):
        return failure.kind
    return "error"


class Retry:
    """Retries a call per ``policy``. Place it *outside* the concurrency limit: a call sleeping in back-off
    then holds no slot, and other calls use the backend meanwhile.

    ``retry_if`` overrides the retryable test; ``sleep`` replaces ``asyncio.sleep`` (tests use a fake clock).
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        retry_if: Callable[[BaseException], bool] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        latency_callback: LatencyCallback | None = None,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self.retry_if = retry_if
        self.latency_callback = latency_callback
        self._sleep = sleep
        self._statuses = frozenset(self.policy.retry_on_status)
        self._backoff: wait_base | None = None  # built with the first retry

    def is_retryable(self, exc: BaseException, call: Call | None = None) -> bool:
        """Whether ``exc`` deserves another attempt of ``call`` (see the module docstring for the rule).

        A ``retry_if`` given to the layer decides alone; if it raises, that is logged and means "do not
        retry", and the original error is what the caller sees.
        """
        if not isinstance(exc, Exception):  # CancelledError, KeyboardInterrupt …
            return False
        if self.retry_if is not None:
            try:
                return bool(self.retry_if(exc))
            except Exception as error:
                _log.warning(
                    "retry_if raised %s on %s; not retrying",
                    type(error).__qualname__,
                    type(exc).__qualname__,
                    extra={"tool": call.tool if call is not None else None},
                )
                return False
        failure = classify(exc)
        if not self._retryable_kind(failure):
            return False
        if call is None or call.idempotent is not False or self.policy.retry_non_idempotent:
            return True
        return failure.not_processed

    def _retryable_kind(self, failure: Failure) -> bool:
        if failure.kind == "status":
            return failure.status_code in self._statuses
        if failure.kind == "timeout":
            return self.policy.retry_on_timeout
        if failure.kind == "connection":
            return self.policy.retry_on_connection_error
        return failure.retryable is True

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        deadline_s = self.policy.deadline_s
        if deadline_s is None:
            # _run inlined: the common case, a first attempt that succeeds, then costs one frame, not two.
            start = time.perf_counter()
            call.attempt = 1
            try:
                return await call_next(call)
            except Exception as exc:
                if self.policy.max_attempts == 1 or not self.is_retryable(exc, call):
                    raise
                first = exc
            return await self._retry(call, call_next, first, start, None)
        deadline = time.monotonic() + deadline_s
        timeout = asyncio.timeout(deadline_s)
        try:
            async with timeout:
                return await self._run(call, call_next, deadline)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineExceededError(call.tool, deadline_s, call.attempt) from None

    async def _run(self, call: Call, call_next: CallNext, deadline: float | None) -> Any:
        start = time.perf_counter()
        call.attempt = 1
        try:
            return await call_next(call)
        except Exception as exc:
            if self.policy.max_attempts == 1 or not self.is_retryable(exc, call):
                raise
            first = exc
        return await self._retry(call, call_next, first, start, deadline)

    async def _retry(
        self, call: Call, call_next: CallNext, first: Exception, start: float, deadline: float | None
    ) -> Any:
        telemetry = instruments.current()
        tracer = telemetry.tracer if telemetry is not None else None
        if tracer is not None:  # the first attempt ran without a span of its own: record it now
            self._record_attempt_span(tracer, call, start, first)
        pending: Exception | None = first
        attempt_start = start

        async def attempt() -> Any:
            nonlocal pending, attempt_start
            if pending is not None:  # replay the first outcome to tenacity
                exc, pending = pending, None
                raise exc
            call.attempt += 1
            attempt_start = time.perf_counter()
            if tracer is None:
                return await call_next(call)
            return await self._attempt_in_span(tracer, call, call_next)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.policy.max_attempts:
                return True
            return deadline is not None and time.monotonic() + state.upcoming_sleep >= deadline

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.upcoming_sleep
            reason = retry_reason(exc) if exc is not None else "error"
            if telemetry is not None:
                if telemetry.metrics is not None:
                    telemetry.metrics.add(
                        names.RETRY_ATTEMPTS,
                        1,
                        {
                            names.GEN_AI_TOOL_NAME: bounded(call.tool),
                            names.TOOL_SOURCE: call.source or "",
                            names.RETRY_REASON: reason,
                        },
                    )
                trace.get_current_span().add_event(
                    names.EVENT_BACKOFF,
                    {names.ATTEMPT: call.attempt, names.RETRY_REASON: reason, names.RETRY_WAIT_S: wait},
                )
            emit(
                call,
                self.latency_callback,
                NODE_RETRY,
                (time.perf_counter() - attempt_start) * 1000,
                error=exc,
                reason=reason,
                wait_s=round(wait, 3),
            )

        from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

        if self._backoff is None:
            self._backoff = wait_exponential(
                multiplier=self.policy.wait_exponential_min_s,
                min=self.policy.wait_exponential_min_s,
                max=self.policy.wait_exponential_max_s,
            )
        retrying = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(lambda exc: self.is_retryable(exc, call)),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        return await retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        policy = self.policy
        retry_after = classify(exc).retry_after if exc is not None else None
        if retry_after is not None:
            # The server's word, but never below the policy's minimum (``Retry-After: 0`` or a date in the
            # past would make every attempt immediate), plus jitter so that clients told the same moment do
            # not all come back at once: up to ``jitter`` × the wait, that share never more than the policy's
            # longest back-off (a 60 s Retry-After is spread over seconds, not made 90 s).
            cap = max(policy.max_retry_after_s, policy.wait_exponential_min_s)
            base = min(max(retry_after, policy.wait_exponential_min_s), cap)
            spread = policy.jitter * random.random() * min(base, policy.wait_exponential_max_s)
            return min(base + spread, cap)
        assert self._backoff is not None  # set by _retry, the only caller's owner
        backoff: float = self._backoff(state)
        # Jitter spreads upwards and is capped, so every wait stays within [min, max] as the policy says
        # (cutting downwards would make the first wait shorter than wait_exponential_min_s).
        jittered = backoff * (1.0 + policy.jitter * random.random())
        return min(jittered, policy.wait_exponential_max_s)

    async def _attempt_in_span(self, tracer: trace.Tracer, call: Call, call_next: CallNext) -> Any:
        span = tracer.start_span(
            names.SPAN_ATTEMPT.format(tool=bounded(call.tool)), attributes=self._attempt_attributes(call)
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await call_next(call)
        except asyncio.CancelledError:
            span.set_attribute(names.OUTCOME, "cancelled")  # the caller's decision, not the attempt's failure
            raise
        except BaseException as exc:
            span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(StatusCode.ERROR, type(exc).__qualname__)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def _record_attempt_span(
        self, tracer: trace.Tracer, call: Call, start: float, exc: BaseException
    ) -> None:
        now_ns = time.time_ns()
        started_ns = now_ns - int((time.perf_counter() - start) * 1e9)
        span = tracer.start_span(
            names.SPAN_ATTEMPT.format(tool=bounded(call.tool)),
            start_time=started_ns,
            attributes=self._attempt_attributes(call),
        )
        span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
        span.set_status(StatusCode.ERROR, type(exc).__qualname__)
        span.end(end_time=now_ns)

    @staticmethod
    def _attempt_attributes(call: Call) -> dict[str, Any]:
        return {
            names.GEN_AI_TOOL_NAME: bounded(call.tool),
            names.ATTEMPT: call.attempt,
            names.HTTP_RESEND_COUNT: call.attempt - 1,
        }
