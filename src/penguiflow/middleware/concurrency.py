"""``ConcurrencyLimit``: a cancellation-safe, resizable limit with an optional bounded queue; the admission point.

Every limiter of a call's path — the caller's Levels 1 and 2 (``call.limits``) and the source's own limit — is
taken in one decision by :mod:`penguiflow.middleware.admission` (the algorithm and its cost are described there):
a call waits holding no slot, and counts against a level only while it runs. Where in a stack that admission
happens is the engine's decision (:mod:`penguiflow.middleware.admission_point`), so no stack, whatever layers it
has, escapes the caller's limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

from opentelemetry import trace

from penguiflow.errors import ConfigurationError, LimiterRejectedError
from penguiflow.middleware import admission
from penguiflow.middleware.admission import Path, Waiter, bind, try_admit
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.events import QUEUE_WAIT, emit
from penguiflow.middleware.fairness import FAIRNESS, Fairness, Parking
from penguiflow.middleware.validation import check_count, check_name
from penguiflow.telemetry import instruments, names

_observers = 0  # limiters ever built whose class overrides on_complete


class ConcurrencyLimit:
    """At most ``max_concurrency`` calls run at once through this limiter; the rest wait.

    ``fairness`` orders the waiters: ``"fifo"`` (arrival order), or ``"fair"`` — deficit round-robin between the
    flows of the calls (``call.flow``, e.g. a tenant, or a planner run), FIFO within a flow, each flow served
    ``call.weight`` calls per turn — so a flow that fans out cannot starve the others. ``max_queue`` bounds the
    calls waiting for admission through this limiter: one arriving beyond it fails at once with
    :class:`~penguiflow.errors.LimiterRejectedError`. ``name`` labels the limiter's metrics and spans. The limit
    can be changed while calls run (:meth:`set_limit`).

    Subclasses (an adaptive limit) may override :meth:`on_complete` to observe every call admitted through the
    limiter as a layer, and change the limit with :meth:`set_limit`.
    """

    admission_point: ClassVar[bool] = True
    flow_labels: int = 10
    """How many named flows a ``fair`` limiter labels in its metrics: the first this many seen; the calls of
    later flows are counted together, marked ``otel.metric.overflow``. Set it on the class, or on a limiter
    before its flows arrive; labels already given are kept (a series never changes its flow)."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        name: str,
        max_queue: int | None = None,
        latency_callback: LatencyCallback | None = None,
        fairness: Fairness = "fifo",
    ) -> None:
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        self._name = check_name(name, "name")
        self.max_queue = None if max_queue is None else check_count(max_queue, "max_queue", minimum=0)
        if fairness not in FAIRNESS:
            raise ConfigurationError("fairness", f"must be one of {', '.join(FAIRNESS)}, got {fairness!r}")
        self._fairness: Fairness = fairness
        self.latency_callback = latency_callback
        self._in_flight = 0  # slots held by running calls
        self._queued = 0  # waiting calls held up by this limiter (each waiting call counts at one limiter)
        self._waiting = 0  # waiting calls whose path includes this limiter (what max_queue bounds)
        self._parking = Parking(fairness)
        self._groups: dict[tuple[Path, Hashable], admission.Group] = {}  # groups whose path starts here
        self._flow_queued: dict[str, int] = {}  # fair: waiting calls held up here, by named flow (no zeros)
        self._labelled: set[str] = set()  # fair: the named flows with their own series (flow_labels at most)
        self._overflowed = False  # fair: a named flow beyond flow_labels was seen (its series is reported)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alone: Path = (self,)
        self._observed = type(self).on_complete is not ConcurrencyLimit.on_complete
        if self._observed:
            global _observers
            _observers += 1  # while none exists, calls skip looking for one
        self._wait_attributes: dict[str | bool | None, dict[str, Any]] = {}
        # Admissions while metrics are on, by flow key (None: no flow label; a str: a labelled flow; True: the
        # overflow), read by the admitted counter on collection: one dict increment a call, not an SDK record.
        self._admitted: dict[str | bool | None, int] = {None: 0}
        instruments.register_limiter(self)

    # --- what the gauges and users read ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now: running (or admitted and about to run), never merely waiting."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Waiting calls held up by this limiter now (a waiting call counts at the one limiter it waits for)."""
        return self._queued

    @property
    def waiting(self) -> int:
        """Waiting calls whose path includes this limiter, whichever limiter holds them up (``max_queue``)."""
        return self._waiting

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def fairness(self) -> Fairness:
        return self._fairness

    def flows_queued(self) -> dict[str, int]:
        """``fair`` limiters: waiting calls held up here per named flow (``call.flow`` a ``str``)."""
        return dict(self._flow_queued)

    def flows_reported(self) -> list[tuple[str | None, int]]:
        """What the per-flow queue gauge reads here: ``(flow, queued)`` for each labelled flow (0 once its queue
        is empty: the series returns to 0 rather than vanishing), then ``(None, queued)`` summing the flows
        beyond :attr:`flow_labels`, once there was one. Empty for a ``fifo`` limiter."""
        overflow = 0
        for flow, count in self._flow_queued.items():
            if self._flow_label(flow) is None:
                overflow += count
        queued = self._flow_queued
        report: list[tuple[str | None, int]] = [(flow, queued.get(flow, 0)) for flow in self._labelled]
        if self._overflowed:
            report.append((None, overflow))
        return report

    def admissions_reported(self) -> dict[str | bool | None, int]:
        """What the admitted counter reads here (metrics on): admissions by flow key — ``None`` for calls
        without a flow label, a labelled flow's name, ``True`` for the overflow of flows beyond
        :attr:`flow_labels`. The dict itself, live: :func:`~penguiflow.telemetry.unregister_limiter` folds it
        into the retired totals and zeroes it."""
        return self._admitted

    def set_limit(self, max_concurrency: int) -> None:
        """Change the limit now. Raising it admits waiters at once; lowering it lets running calls finish."""
        self._limit = check_count(max_concurrency, "max_concurrency", minimum=1)
        if self._parking:
            admission._check_release_loop(self)
            admission.grant(self)

    def on_complete(self, call: Call, running_s: float, error: BaseException | None) -> None:
        """Hook: a call admitted through this limiter (used as a layer, alone or as one level of a joint
        admission) finished after holding its slot ``running_s`` seconds; ``error`` is what it raised, or
        ``None``. Called before the slot is released. Does nothing; an adaptive limit overrides it."""

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimit({self._limit}, name={self._name!r}, in_flight={self._in_flight}, "
            f"queued={self._queued})"
        )

    # --- acquire / release (this limiter alone) -------------------------------------------------------------
    async def acquire(self, call: Call | None = None) -> float:
        """Take a slot, waiting in the limiter's order; returns the seconds waited. Pair with :meth:`release`."""
        return await acquire_path(self._alone, call)

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`; waiters are admitted at once."""
        admission.release(self._alone)

    # --- telemetry ---------------------------------------------------------------------------------------
    def _flow_label(self, flow: str) -> str | None:
        """The label of named flow ``flow`` here: itself while fewer than ``flow_labels`` flows have one (the
        first seen keep theirs), else ``None`` — counted as overflow, so a tenant key per request cannot grow
        the metric streams (or this limiter's memory) without bound."""
        labelled = self._labelled
        if flow in labelled:
            return flow
        if len(labelled) < self.flow_labels:
            labelled.add(flow)
            return flow
        self._overflowed = True
        return None

    def _flow_key(self, flow: Hashable) -> str | bool | None:
        """How a call of ``flow`` is labelled here: ``None`` (no flow attribute: a FIFO limiter, or a flow that is
        not a string), its flow's name, or ``True`` (the overflow of named flows beyond ``flow_labels``)."""
        if flow is None or not isinstance(flow, str) or not self._parking.fair:
            return None
        label = self._flow_label(flow)
        return True if label is None else label

    def _attributes(self, flow: Hashable) -> dict[str, Any]:
        """The wait histogram's attributes for a call of ``flow``, built once per flow key."""
        key = self._flow_key(flow)
        attributes = self._wait_attributes.get(key)
        if attributes is None:
            attributes = self._wait_attributes[key] = instruments.flow_attributes(self._name, key)
        return attributes

    def _count_admitted(self, flow: Hashable) -> None:
        admitted = self._admitted
        if flow is None or not self._parking.fair:
            admitted[None] += 1
        else:
            key = self._flow_key(flow)
            admitted[key] = admitted.get(key, 0) + 1

    def _reject(self) -> None:
        telemetry = instruments.current()
        if telemetry is not None:
            if telemetry.metrics is not None:
                telemetry.metrics.add(
                    names.LIMITER_REJECTED,
                    1,
                    {names.LIMITER_NAME: self._name, names.REJECT_REASON: "queue_full"},
                )
            trace.get_current_span().add_event(names.EVENT_REJECTED, {names.LIMITER_NAME: self._name})
        raise LimiterRejectedError(self._name, self.max_queue or 0)

    # --- as a layer: the admission point of its stack -------------------------------------------------------
    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        limits = call.limits
        if limits and call._point is self and not call._admitted:
            joint = True
            path = limits if self in limits else limits + self._alone
        else:
            joint = False
            path = self._alone
        loop = asyncio.get_running_loop()
        for limiter in path:
            if limiter._loop is not loop:
                bind(limiter, loop)
        if try_admit(path):
            telemetry = instruments.current()
            if telemetry is not None and telemetry.metrics is not None:
                _count_admitted(path, call.flow)
        else:
            await _wait(path, call, loop)
        if joint:
            call._admitted = True
        observed = _observers > 0 and any(limiter._observed for limiter in path)
        start = loop.time() if observed else 0.0
        error: BaseException | None = None
        try:
            return await call_next(call)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if joint:
                call._admitted = False
            if observed:
                _observe(path, call, loop.time() - start, error)
            admission.release(path)


def join(limits: Path, own: Path) -> Path:
    """The path of one admission: the caller's limits, then the layer's own, each limiter once."""
    if not limits:
        return own
    extra = tuple(limiter for limiter in own if limiter not in limits)
    return limits + extra if extra else limits


def _observe(path: Path, call: Call, running_s: float, error: BaseException | None) -> None:
    for limiter in path:
        if limiter._observed:
            limiter.on_complete(call, running_s, error)


async def acquire_path(path: Path, call: Call | None) -> float:
    """Admit one call at every limiter of ``path`` in one decision; returns the seconds it waited."""
    loop = asyncio.get_running_loop()
    for limiter in path:
        if limiter._loop is not loop:
            bind(limiter, loop)
    if try_admit(path):
        telemetry = instruments.current()
        if telemetry is not None and telemetry.metrics is not None:
            _count_admitted(path, call.flow if call is not None else None)
        return 0.0
    return await _wait(path, call, loop)


def _queue_wait_event(
    span: trace.Span, held_up: ConcurrencyLimit, queued_at_arrival: int, limit_at_arrival: int, waited: float
) -> None:
    span.add_event(
        names.EVENT_QUEUE_WAIT,
        {
            names.LIMITER_NAME: held_up._name,
            names.LIMITER_WAIT_S: waited,
            names.LIMITER_QUEUED_AT_ARRIVAL: queued_at_arrival,
            names.LIMITER_LIMIT_AT_ARRIVAL: limit_at_arrival,
        },
    )


def _count_admitted(path: Path, flow: Hashable) -> None:
    """Count one admission at every limiter of ``path`` (the admitted counter reads the counts on collection)."""
    for limiter in path:
        limiter._count_admitted(flow)


async def _wait(path: Path, call: Call | None, loop: asyncio.AbstractEventLoop) -> float:
    flow, weight = (call.flow, call.weight) if call is not None else (None, 1)
    telemetry = instruments.current()
    waiter: Waiter = admission.enqueue(path, flow, weight, loop)
    start = loop.time()
    span: trace.Span = trace.INVALID_SPAN
    first: ConcurrencyLimit | None = None  # set when the wait is traced
    queued_at_arrival = limit_at_arrival = 0
    if telemetry is not None and telemetry.tracer is not None:
        # The wait is an event on the waiting call's span (execute_tool, or an attempt's), not a span of its
        # own: a span costs the SDK ~3.5x an event (measured: 164,000 against 46,000 instructions), and a fan-out
        # that queues would otherwise double its trace's span count. The event's time is the admission; its
        # wait_s reaches back to when the call joined the queue.
        span = trace.get_current_span()
        if span.is_recording():
            assert waiter.group is not None and waiter.group.at is not None
            first = waiter.group.at  # the limiter it waits for first
            queued_at_arrival, limit_at_arrival = first.queued, first.limit
    try:
        await waiter
    except BaseException:
        if waiter.done() and not waiter.cancelled():
            admission.release(path)  # admitted, then cancelled before using it: pass the slots on
        else:
            admission.withdraw(waiter)
        if first is not None:
            _queue_wait_event(span, first, queued_at_arrival, limit_at_arrival, loop.time() - start)
        raise
    waited = loop.time() - start
    waits: Sequence[float] = waiter.waits if waiter.waits is not None else (waited,)
    # The limiter that held the call up longest names its wait.
    held_up = 0 if len(path) == 1 else max(range(len(path)), key=waits.__getitem__)
    try:
        if first is not None:
            _queue_wait_event(span, path[held_up], queued_at_arrival, limit_at_arrival, waited)
        if telemetry is not None and telemetry.metrics is not None:
            _count_admitted(path, flow)
            # A wait sample only where the call waited: at the limiters that held it up (0 s elsewhere).
            record = telemetry.metrics.limiter_wait.record
            for index, (limiter, seconds) in enumerate(zip(path, waits, strict=True)):
                if seconds > 0.0 or index == held_up:
                    record(seconds, limiter._attributes(flow))
        if call is not None:
            if len(path) == 1:
                callback = path[0].latency_callback
            else:
                callback = next(
                    (lim.latency_callback for lim in reversed(path) if lim.latency_callback), None
                )
            if callback is not None or call.listeners:  # else nobody hears it: build no event
                emit(call, callback, QUEUE_WAIT, waited * 1000, limiter=path[held_up].name)
    except BaseException:
        admission.release(path)  # the caller never learns it holds the slots: give them back
        raise
    return waited
