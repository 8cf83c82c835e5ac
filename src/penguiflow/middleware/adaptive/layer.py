"""``AdaptiveConcurrencyLimit``: a :class:`~penguiflow.middleware.ConcurrencyLimit` whose limit moves by itself.

Admission is the base class's, untouched (FIFO, cancellation-safe, optional bounded queue, the same gauges and
spans): this layer only watches each call it admitted end, turns the outcome into a :class:`Sample` for its
algorithm, and calls ``set_limit`` when the algorithm says so. Lowering the limit never interrupts a running
call; raising it admits waiters at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import trace

from penguiflow.errors import ConfigurationError, LimiterRejectedError
from penguiflow.middleware.adaptive.policy import AdaptivePolicy
from penguiflow.middleware.adaptive.sample import LimitAlgorithm, Sample, Signal
from penguiflow.middleware.admission_point import admit
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.concurrency import ConcurrencyLimit
from penguiflow.middleware.failures import classify
from penguiflow.telemetry import instruments, names

_log = logging.getLogger("penguiflow.middleware.adaptive")


class AdaptiveConcurrencyLimit(ConcurrencyLimit):
    """A concurrency limit that finds the backend's capacity, between ``min_limit`` and ``max_limit``.

    ``algorithm`` is ``"gradient"`` (default: latency and losses), ``"aimd"`` (losses only), an
    :class:`AdaptivePolicy` (the algorithm and its parameters, as a tool source's config holds them) or any
    object following :class:`~penguiflow.middleware.adaptive.LimitAlgorithm` (then it carries its own bounds).

    >>> fetch = wrap(fetch_page, Retry(), AdaptiveConcurrencyLimit(name="web", max_limit=50), Timeout(10))

    Each change of the limit is a span event ``penguiflow.limiter.limit_changed`` on the call that caused it, a
    log record on ``penguiflow.middleware.adaptive`` and a count of ``penguiflow.limiter.adjustments`` by reason;
    the limit is the ``penguiflow.limiter.limit`` gauge, the algorithm's RTT and baseline are gauges too.
    ``clock`` stamps the samples (a test passes a fake one).
    """

    def __init__(
        self,
        *,
        name: str,
        max_limit: int | None = None,
        initial: int | None = None,
        min_limit: int | None = None,
        algorithm: str | AdaptivePolicy | LimitAlgorithm = "gradient",
        max_queue: int | None = None,
        latency_callback: LatencyCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy, self.algorithm = build_algorithm(algorithm, max_limit, initial, min_limit)
        statuses = (self.policy or AdaptivePolicy()).backoff_on_status
        self._overload: Collection[int] = frozenset(statuses)
        self._clock = clock
        super().__init__(
            self.algorithm.limit, name=name, max_queue=max_queue, latency_callback=latency_callback
        )
        self._change_attributes: dict[str, dict[str, Any]] = {}
        instruments.register_adaptive(self)

    @property
    def min_limit(self) -> int:
        return self.algorithm.min_limit

    @property
    def max_limit(self) -> int:
        return self.algorithm.max_limit

    @property
    def rtt_s(self) -> float | None:
        """The algorithm's current round-trip estimate (``None`` for loss-only algorithms)."""
        return self.algorithm.rtt_s

    @property
    def baseline_s(self) -> float | None:
        """The algorithm's no-queue round trip (``None`` for loss-only algorithms)."""
        return self.algorithm.baseline_s

    def __repr__(self) -> str:
        return (
            f"AdaptiveConcurrencyLimit(name={self.name!r}, limit={self.limit}, "
            f"bounds=[{self.min_limit}, {self.max_limit}], algorithm={self.algorithm!r}, "
            f"in_flight={self.in_flight}, queued={self.queued})"
        )

    # --- as a layer --------------------------------------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        # A call that finds every slot taken (or a queue) waits, and is handed a slot of a full limiter: it counts
        # as taking the last one. Read after the wait, in_flight could be lower (others ended meanwhile).
        full = self.in_flight >= self.limit or self.queued > 0
        # admit(): this limit and, where the stack made it the admission point, the caller's Levels 1 and 2,
        # in one decision (no slot held while waiting for another).
        held = await admit(call, self, at=self)
        started = self._clock()
        in_flight = self.limit if full else self.in_flight
        error: BaseException | None = None
        try:
            return await call_next(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                self.observe(Sample(started, self._clock(), in_flight, *self._signal(error)))
            finally:
                held.release()

    def observe(self, sample: Sample) -> None:
        """Feed one finished call to the algorithm and apply the limit it decides (public for custom layers)."""
        before = self.limit
        reason = self.algorithm.update(sample)
        after = self.algorithm.limit
        if reason is None or after == before:
            return
        self.set_limit(after)
        self._report(before, after, reason)

    def _signal(self, error: BaseException | None) -> tuple[Signal, str, float | None]:
        if error is None:
            return "ok", "", None
        if isinstance(error, asyncio.CancelledError | LimiterRejectedError):
            return "ignore", "", None
        failure = classify(error)
        if failure.kind == "status":
            if failure.status_code in self._overload:
                return "overload", f"status_{failure.status_code}", failure.retry_after
            return "ignore", "", None
        if failure.kind == "timeout":
            return "timeout", "timeout", failure.retry_after
        if failure.kind == "connection":
            return "connection", "connection", failure.retry_after
        return "ignore", "", None

    def _report(self, before: int, after: int, reason: str) -> None:
        rtt, baseline = self.algorithm.rtt_s, self.algorithm.baseline_s
        _log.info(
            "limiter %s: limit %d -> %d (%s; rtt %s, baseline %s)",
            self.name,
            before,
            after,
            reason,
            _ms(rtt),
            _ms(baseline),
            extra={"limiter": self.name, "limit_before": before, "limit": after, "reason": reason},
        )
        telemetry = instruments.current()
        if telemetry is None:
            return
        if telemetry.metrics is not None:
            attributes = self._change_attributes.get(reason)
            if attributes is None:
                attributes = {names.LIMITER_NAME: self.name, names.LIMIT_REASON: reason}
                self._change_attributes[reason] = attributes
            telemetry.metrics.add(names.LIMITER_ADJUSTMENTS, 1, attributes)
        event: dict[str, Any] = {
            names.LIMITER_NAME: self.name,
            names.LIMIT_PREVIOUS: before,
            names.LIMIT_NEW: after,
            names.LIMIT_REASON: reason,
        }
        if rtt is not None:
            event[names.LIMIT_RTT_S] = rtt
        if baseline is not None:
            event[names.LIMIT_BASELINE_S] = baseline
        trace.get_current_span().add_event(names.EVENT_LIMIT_CHANGED, event)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"


def build_algorithm(
    algorithm: object, max_limit: int | None, initial: int | None, min_limit: int | None
) -> tuple[AdaptivePolicy | None, LimitAlgorithm]:
    """The policy (``None`` for an algorithm object) and algorithm of an :class:`AdaptiveConcurrencyLimit`'s
    arguments; a bad one raises ``ConfigurationError`` naming the field."""
    if isinstance(algorithm, str):
        algorithm = AdaptivePolicy.checked(algorithm=algorithm, initial=initial, min_limit=min_limit)
    elif isinstance(algorithm, AdaptivePolicy):
        for field, value in (("initial", initial), ("min_limit", min_limit)):
            if value is not None:
                raise ConfigurationError(field, "set it on the AdaptivePolicy given as algorithm")
    if isinstance(algorithm, AdaptivePolicy):
        if max_limit is None:
            raise ConfigurationError("max_limit", "required: the ceiling the limit never passes")
        return algorithm, algorithm.build(max_limit)
    required = ("limit", "min_limit", "max_limit", "rtt_s", "baseline_s", "update")
    if not all(hasattr(algorithm, attribute) for attribute in required):
        raise ConfigurationError(
            "algorithm",
            f"must be 'gradient', 'aimd', an AdaptivePolicy or a LimitAlgorithm, got {type(algorithm).__name__}",
        )
    for field, value in (("max_limit", max_limit), ("initial", initial), ("min_limit", min_limit)):
        if value is not None:
            raise ConfigurationError(field, "an algorithm object carries its own bounds: set them there")
    built: LimitAlgorithm = algorithm  # type: ignore[assignment]
    return None, built
