"""``CircuitBreaker``: stop calling a backend that keeps failing, then probe it before trusting it again.

Closed, it counts consecutive failures; at ``failure_threshold`` it opens and every call fails at once with
:class:`~penguiflow_middleware.errors.CircuitOpenError` (nothing is sent to the backend). After ``recovery_s`` it
is half-open: up to ``half_open_max_calls`` probes run at once, the others are refused; one failed probe opens
it again, ``half_open_max_calls`` successful probes close it.

Place it inside ``Retry`` (resilience4j's order): each attempt counts, and an open circuit stops the retries
at once because its error is not retryable::

    ToolNode(config, layers=[*ToolNode.default_layers(config)[:2], CircuitBreaker(name="github"), ...])
    wrap(fetch, log_flow_events(), Retry(policy), CircuitBreaker(name="web"), ConcurrencyLimit(5, name="web"))

Outcomes are judged against the state they were admitted in: a call started before the circuit opened and
ending after it does not move the new state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace

from penguiflow.errors import (
    LimiterRejectedError,
    ToolClientError,
    ToolNotFoundError,
    ToolValidationError,
)
from penguiflow.middleware import Call, CallNext
from penguiflow.middleware.validation import check_count, check_name, check_positive
from penguiflow_middleware import names
from penguiflow_middleware._telemetry import instruments
from penguiflow_middleware.errors import CircuitOpenError

logger = logging.getLogger("penguiflow_middleware.circuit_breaker")

FailureTest = Callable[[BaseException], bool]

# The caller's mistakes, or a refusal by another layer: the backend answered (or was never asked), it is not sick.
_NOT_FAILURES = (ToolClientError, ToolValidationError, ToolNotFoundError, LimiterRejectedError)


def counts_as_failure(exc: BaseException) -> bool:
    """The default ``failure_if``: every ``Exception`` except client errors (4xx other than 429), invalid
    arguments, unknown tools and rejections by other limiters. Cancellation is never a failure."""
    return isinstance(exc, Exception) and not isinstance(exc, _NOT_FAILURES)


class CircuitBreaker:
    """A circuit breaker layer; ``name`` labels its metrics, span events and logs.

    ``failure_if(exc)`` decides which exceptions count as failures (default :func:`counts_as_failure`);
    ``clock`` (seconds, monotonic) can be replaced in tests.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_s: float = 30.0,
        half_open_max_calls: int = 1,
        *,
        name: str,
        failure_if: FailureTest | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = check_count(failure_threshold, "failure_threshold", minimum=1)
        self.recovery_s = check_positive(recovery_s, "recovery_s")
        self.half_open_max_calls = check_count(half_open_max_calls, "half_open_max_calls", minimum=1)
        self._name = check_name(name, "name")
        self.failure_if: FailureTest = failure_if or counts_as_failure
        self._clock = clock
        self._state: names.CircuitStateName = "closed"
        self._generation = 0  # bumped on every transition; outcomes of older calls are ignored
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._probe_successes = 0
        self._attributes = {names.CIRCUIT_NAME: self._name}
        instruments().observe(names.CIRCUIT_STATE_GAUGE, self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> names.CircuitStateName:
        """The state a call arriving now would meet (an open circuit past ``recovery_s`` reads half-open)."""
        if self._state == "open" and self._clock() >= self._opened_at + self.recovery_s:
            return "half_open"
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self._name!r}, state={self.state!r}, failures={self._failures})"

    def observe(self, metric: str) -> Iterable[tuple[float, Mapping[str, Any]]]:
        return [(names.CIRCUIT_STATE_VALUES[self.state], self._attributes)]

    def reset(self) -> None:
        """Close the circuit now (an operator's override)."""
        self._transition("closed")

    # --- the layer ---------------------------------------------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        probe = self._admit()
        generation = self._generation
        try:
            result = await call_next(call)
        except BaseException as exc:
            self._settle(
                generation, probe, failed=self.failure_if(exc), cancelled=not isinstance(exc, Exception)
            )
            raise
        self._settle(generation, probe, failed=False, cancelled=False)
        return result

    def _admit(self) -> bool:
        """Let the call through (returning whether it is a half-open probe) or raise CircuitOpenError."""
        if self._state == "open":
            remaining = self._opened_at + self.recovery_s - self._clock()
            if remaining > 0:
                self._reject("open", remaining)
            self._transition("half_open")
        if self._state == "half_open":
            if self._probes >= self.half_open_max_calls:
                self._reject("half_open", 0.0)
            self._probes += 1
            return True
        return False

    def _settle(self, generation: int, probe: bool, *, failed: bool, cancelled: bool) -> None:
        if generation != self._generation:
            return  # admitted under a state that no longer holds
        if probe:
            self._probes -= 1
            if cancelled:
                return  # no verdict: the slot goes to the next probe
            if failed:
                self._transition("open")
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.half_open_max_calls:
                    self._transition("closed")
            return
        if cancelled:
            return
        if not failed:
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._transition("open")

    def _transition(self, to: names.CircuitStateName) -> None:
        previous = self._state
        self._state = to
        self._generation += 1
        self._failures = 0
        self._probes = 0
        self._probe_successes = 0
        if to == "open":
            self._opened_at = self._clock()
        if previous == to:
            return
        attributes = {
            names.CIRCUIT_NAME: self._name,
            names.CIRCUIT_FROM_STATE: previous,
            names.CIRCUIT_STATE: to,
        }
        instruments().add(names.CIRCUIT_TRANSITIONS, 1, attributes)
        trace.get_current_span().add_event(names.EVENT_CIRCUIT_TRANSITION, attributes)
        log = logger.warning if to == "open" else logger.info
        log("circuit %s: %s -> %s", self._name, previous, to, extra={"circuit": self._name, "state": to})

    def _reject(self, state: str, retry_after: float) -> None:
        attributes = {names.CIRCUIT_NAME: self._name, names.CIRCUIT_STATE: state}
        instruments().add(names.CIRCUIT_REJECTED, 1, attributes)
        trace.get_current_span().add_event(names.EVENT_CIRCUIT_REJECTED, attributes)
        raise CircuitOpenError(self._name, state, retry_after)
