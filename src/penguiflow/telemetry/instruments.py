"""The instruments penguiflow records to, resolved lazily against whatever providers the application set.

Library code uses the OpenTelemetry *API* only. While no SDK provider is installed, :func:`current` returns
``None`` and every layer skips telemetry entirely, so "telemetry off" costs one global lookup per call.
Once an application installs providers (directly or through :func:`penguiflow.telemetry.configure`), the
instruments are created once for that provider and reused.
"""

from __future__ import annotations

import importlib
import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.trace import Tracer

from penguiflow import __version__
from penguiflow.telemetry import names

_NOOP_PROVIDERS = frozenset(
    {"_ProxyMeterProvider", "NoOpMeterProvider", "ProxyTracerProvider", "NoOpTracerProvider"}
)


class LimiterState(Protocol):
    """What the limiter gauges read: any limiter exposing these four attributes can register."""

    @property
    def name(self) -> str: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def limit(self) -> int: ...


_limiters: weakref.WeakSet[Any] = weakref.WeakSet()
# The admitted counter must never go down: the counts of a limiter that stops reporting (unregistered, or
# garbage-collected) are folded in here, by (limiter name, flow key), and keep being reported.
_retired: dict[tuple[str, str | bool | None], int] = {}
_retirements: weakref.WeakKeyDictionary[Any, weakref.finalize[Any, Any]] = weakref.WeakKeyDictionary()


def register_limiter(limiter: LimiterState) -> None:
    """Report ``limiter`` through the in-flight, queued and limit gauges for as long as it lives (and, if it
    has ``admissions_reported()``, through the admitted counter)."""
    _limiters.add(limiter)
    report = getattr(limiter, "admissions_reported", None)
    if report is not None and limiter not in _retirements:
        _retirements[limiter] = weakref.finalize(limiter, _retire, limiter.name, report())


def unregister_limiter(limiter: LimiterState) -> None:
    """Stop reporting ``limiter`` now, before it is garbage-collected: a Level 2 limiter of a finished run must
    not keep adding its ``limit`` to the gauge shared by every run. Its admissions stay counted."""
    _limiters.discard(limiter)
    retirement = _retirements.pop(limiter, None)
    if retirement is not None:
        retirement()  # once only: a finalizer that ran is dead, the limiter's collection runs nothing


def _retire(name: str, counts: dict[str | bool | None, int]) -> None:
    for key, count in counts.items():
        if count:
            _retired[name, key] = _retired.get((name, key), 0) + count
            counts[key] = 0  # re-registered later, it counts from 0 (its past is in _retired)


def _observe_admitted(_options: CallbackOptions) -> Iterable[Observation]:
    totals = dict(_retired)
    for limiter in list(_limiters):
        report = getattr(limiter, "admissions_reported", None)
        if report is None:
            continue
        for key, count in list(report().items()):
            totals[limiter.name, key] = totals.get((limiter.name, key), 0) + count
    return _by_flow(totals)


def _observe(attr: str) -> Any:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        # Several limiters may share a name (one Level 2 limiter per planner run): report their sum.
        totals: dict[str, int] = {}
        for limiter in list(_limiters):
            totals[limiter.name] = totals.get(limiter.name, 0) + getattr(limiter, attr)
        return [Observation(value, {names.LIMITER_NAME: name}) for name, value in totals.items()]

    return callback


def _observe_flows(_options: CallbackOptions) -> Iterable[Observation]:
    # Fair limiters only (others report nothing): their labelled flows, and the overflow of the later ones.
    totals: dict[tuple[str, str | bool | None], int] = {}
    for limiter in list(_limiters):
        report = getattr(limiter, "flows_reported", None)
        if report is None:
            continue
        for flow, count in report():
            key = (limiter.name, True if flow is None else flow)  # None there is the overflow
            totals[key] = totals.get(key, 0) + count
    return _by_flow(totals)


def flow_attributes(limiter: str, flow_key: str | bool | None) -> dict[str, Any]:
    """The attributes of a limiter's per-flow series: ``flow_key`` ``None`` (no flow), a labelled flow's name,
    or ``True`` (the overflow of the flows beyond the limiter's ``flow_labels``)."""
    attributes: dict[str, Any] = {names.LIMITER_NAME: limiter}
    if flow_key is True:
        attributes[names.OTEL_METRIC_OVERFLOW] = True
    elif flow_key is not None:
        attributes[names.LIMITER_FLOW] = flow_key
    return attributes


def _by_flow(totals: Mapping[tuple[str, str | bool | None], int]) -> list[Observation]:
    return [Observation(count, flow_attributes(name, key)) for (name, key), count in totals.items()]


_GAUGE_READS = {
    names.LIMITER_IN_FLIGHT: "in_flight",
    names.LIMITER_QUEUED: "queued",
    names.LIMITER_LIMIT: "limit",
}

_adaptive: weakref.WeakSet[Any] = weakref.WeakSet()


def register_adaptive(limiter: Any) -> None:
    """Report an adaptive limiter's ``rtt_s`` and ``baseline_s`` (when not ``None``) through their gauges."""
    _adaptive.add(limiter)


def _observe_estimate(attr: str) -> Any:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        # One value per name: a latency does not add up, so same-named limiters report their highest.
        values: dict[str, float] = {}
        for limiter in list(_adaptive):
            value = getattr(limiter, attr)
            if value is not None:
                values[limiter.name] = max(values.get(limiter.name, value), value)
        return [Observation(value, {names.LIMITER_NAME: name}) for name, value in values.items()]

    return callback


_ESTIMATE_READS = {names.LIMITER_RTT: "rtt_s", names.LIMITER_BASELINE_RTT: "baseline_s"}


def _gauge_callback(metric: str) -> GaugeCallback:
    if metric == names.LIMITER_ADMITTED:
        return _observe_admitted
    if metric == names.LIMITER_FLOW_QUEUED:
        return _observe_flows
    if metric in _ESTIMATE_READS:
        return _observe_estimate(_ESTIMATE_READS[metric])  # type: ignore[no-any-return]
    return _observe(_GAUGE_READS[metric])  # type: ignore[no-any-return]


GaugeCallback = Callable[[CallbackOptions], Iterable[Observation]]


def create_instruments(
    meter: Meter, specs: Iterable[names.MetricSpec], gauge_callback: Callable[[str], GaugeCallback]
) -> tuple[dict[str, Histogram], dict[str, Counter]]:
    """The histograms and counters of a metric table, by name, created on ``meter``; each gauge and observed
    counter is observed through ``gauge_callback(name)``. Public: a plug-in creates its own table's instruments
    with it."""
    histograms: dict[str, Histogram] = {}
    counters: dict[str, Counter] = {}
    for spec in specs:
        if spec.kind == "histogram":
            histograms[spec.name] = meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=list(spec.buckets or names.DURATION_BUCKETS),
            )
        elif spec.kind == "counter":
            counters[spec.name] = meter.create_counter(
                spec.name, unit=spec.unit, description=spec.description
            )
        elif spec.kind == "observed_counter":
            meter.create_observable_counter(
                spec.name,
                callbacks=[gauge_callback(spec.name)],
                unit=spec.unit,
                description=spec.description,
            )
        else:
            meter.create_observable_gauge(
                spec.name,
                callbacks=[gauge_callback(spec.name)],
                unit=spec.unit,
                description=spec.description,
            )
    return histograms, counters


class Metrics:
    """Histograms and counters of ``names.METRICS`` created on one meter; gauges are observed on collection."""

    def __init__(self, meter: Meter) -> None:
        self.histograms, self.counters = create_instruments(meter, names.METRICS, _gauge_callback)
        # The two histograms every call records to, held directly: no lookup by name on the hot path.
        self.tool_duration = self.histograms[names.TOOL_DURATION]
        self.limiter_wait = self.histograms[names.LIMITER_WAIT]

    def record(self, name: str, value: float, attributes: Mapping[str, Any]) -> None:
        self.histograms[name].record(value, attributes)

    def add(self, name: str, value: int, attributes: Mapping[str, Any]) -> None:
        self.counters[name].add(value, attributes)


class Telemetry:
    """The tracer and metrics for the providers in force; either may be ``None`` (that signal is off)."""

    __slots__ = ("metrics", "tracer")

    def __init__(self, tracer: Tracer | None, metrics_: Metrics | None) -> None:
        self.tracer = tracer
        self.metrics = metrics_


_cache: tuple[object, object, Telemetry | None] = (None, None, None)

# Fast "no provider set" test. With none set, trace.get_tracer_provider() and metrics.get_meter_provider() each
# look an OTEL_PYTHON_*_PROVIDER variable up in os.environ (~0.5 µs apiece, on every call of every layer):
# reading the API's own globals instead costs ~50 ns. Only when those globals exist (they are private) and no
# provider is configured through the environment, where the getters would install one lazily.
_trace_api: Any = trace
_metrics_api: Any = importlib.import_module("opentelemetry.metrics._internal")
_FAST_NONE = (
    hasattr(_trace_api, "_TRACER_PROVIDER")
    and hasattr(_metrics_api, "_METER_PROVIDER")
    and not {"OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER"} & os.environ.keys()
)


def current() -> Telemetry | None:
    """The telemetry to record to now, or ``None`` when the application installed no SDK provider."""
    global _cache
    if _FAST_NONE:
        # Called several times per call: the providers in force are read from the API's globals, and while
        # they are the ones the cache was built for (the application set them once), that is all it costs.
        tracer_set, meter_set = _trace_api._TRACER_PROVIDER, _metrics_api._METER_PROVIDER
        if tracer_set is None and meter_set is None:
            return None
        if tracer_set is _cache[0] and meter_set is _cache[1]:
            return _cache[2]
    tracer_provider = trace.get_tracer_provider()
    meter_provider = metrics.get_meter_provider()
    cached_tp, cached_mp, cached = _cache
    if tracer_provider is cached_tp and meter_provider is cached_mp:
        return cached
    tracer = None
    if type(tracer_provider).__name__ not in _NOOP_PROVIDERS:
        tracer = tracer_provider.get_tracer(names.SCOPE, __version__)
    metrics_ = None
    if type(meter_provider).__name__ not in _NOOP_PROVIDERS:
        metrics_ = Metrics(meter_provider.get_meter(names.SCOPE, __version__))
    resolved = Telemetry(tracer, metrics_) if (tracer or metrics_) else None
    _cache = (tracer_provider, meter_provider, resolved)
    return resolved


def get_tracer() -> Tracer:
    """A tracer of penguiflow's scope through the global (possibly proxy) provider, for plug-in layers."""
    return trace.get_tracer(names.SCOPE, __version__)


def get_meter() -> Meter:
    """A meter of penguiflow's scope through the global (possibly proxy) provider, for plug-in layers."""
    return metrics.get_meter(names.SCOPE, __version__)
