"""What the demo's terminal view shows, read from the same OpenTelemetry metrics that Prometheus scrapes.

The view never asks a limiter or a tool node for numbers: it collects an in-process metric reader, so what the
terminal shows and what the dashboards show are the same signals, by the same names (``names.METRICS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
)

from penguiflow.telemetry import names

LEVEL1 = "planner"  # the names the planner gives its Level 1 and Level 2 limiters
LEVEL2 = "run"


def level_of(limiter: str) -> int:
    return 1 if limiter == LEVEL1 else 2 if limiter == LEVEL2 else 3


@dataclass
class Histogram:
    """Cumulative bucket counts of one histogram series (explicit bounds, last bucket is +Inf)."""

    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    maximum: float = 0.0

    def add(self, point: HistogramDataPoint) -> None:
        if not self.counts:
            self.bounds = tuple(point.explicit_bounds)
            self.counts = [0] * len(point.bucket_counts)
        for i, count in enumerate(point.bucket_counts):
            self.counts[i] += count
        self.total += point.sum
        self.maximum = max(self.maximum, point.max if point.max is not None else 0.0)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Like PromQL's ``histogram_quantile``: linear interpolation inside the bucket holding rank ``q``."""
        total = self.count
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.counts):
            if seen + count >= rank and count:
                lower = self.bounds[i - 1] if i > 0 else 0.0
                upper = self.bounds[i] if i < len(self.bounds) else self.maximum
                upper = min(upper, self.maximum) if self.maximum else upper
                lower = min(lower, upper)
                return lower + (upper - lower) * ((rank - seen) / count)
            seen += count
        return self.maximum


@dataclass
class LimiterRow:
    name: str
    in_flight: int = 0
    queued: int = 0
    limit: int = 0
    peak_in_flight: int = 0
    peak_queued: int = 0
    wait: Histogram = field(default_factory=Histogram)  # the calls that waited
    admitted: int = 0  # every call admitted, waited or not
    rejected: int = 0
    # adaptive limiters only: the estimate's inputs, the changes by reason, the lowest and highest limit seen
    rtt: float | None = None
    baseline: float | None = None
    changes: dict[str, int] = field(default_factory=dict)
    low_limit: int = 0
    high_limit: int = 0

    @property
    def adaptive(self) -> bool:
        return self.baseline is not None or bool(self.changes)

    @property
    def level(self) -> int:
        return level_of(self.name)


@dataclass
class Snapshot:
    """Everything the view prints, as of one collection."""

    limiters: dict[str, LimiterRow] = field(default_factory=dict)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, outcome) -> count
    retries: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, reason) -> count
    timeouts: dict[str, int] = field(default_factory=dict)  # source -> count
    runs: int = 0
    hops: int = 0

    def retries_of(self, source: str | None = None) -> int:
        return sum(n for (src, _reason), n in self.retries.items() if source is None or src == source)

    def timeouts_of(self, source: str | None = None) -> int:
        return sum(n for src, n in self.timeouts.items() if source is None or src == source)

    def calls_of(self, source: str | None = None, outcome: str | None = None) -> int:
        return sum(
            n
            for (src, out), n in self.calls.items()
            if (source is None or src == source) and (outcome is None or out == outcome)
        )

    def retry_reasons(self, source: str | None = None) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for (src, reason), n in self.retries.items():
            if source is None or src == source:
                reasons[reason] = reasons.get(reason, 0) + n
        return reasons


def _points(data: MetricsData | None) -> Iterable[tuple[str, Mapping[str, Any], Any]]:
    if data is None:
        return
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != names.SCOPE:
                continue
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    yield metric.name, point.attributes or {}, point


class Collector:
    """Collects ``reader`` into :class:`Snapshot` s, keeping each limiter's peaks across collections."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader
        self._peaks: dict[str, tuple[int, int]] = {}
        self._known: dict[str, int] = {}  # last limit seen, so a finished Level 2 limiter stays listed
        self._range: dict[str, tuple[int, int]] = {}  # lowest and highest limit seen

    def collect(self) -> Snapshot:
        snap = Snapshot()

        def row(name: str) -> LimiterRow:
            if name not in snap.limiters:
                snap.limiters[name] = LimiterRow(name)
            return snap.limiters[name]

        for name, attributes, point in _points(self.reader.get_metrics_data()):
            limiter = str(attributes.get(names.LIMITER_NAME, ""))
            source = str(attributes.get(names.TOOL_SOURCE, "") or "native")
            if isinstance(point, NumberDataPoint) and name in (names.LIMITER_RTT, names.LIMITER_BASELINE_RTT):
                if name == names.LIMITER_RTT:
                    row(limiter).rtt = float(point.value)
                else:
                    row(limiter).baseline = float(point.value)
            elif isinstance(point, NumberDataPoint):
                value = int(point.value)
                if name == names.LIMITER_IN_FLIGHT:
                    row(limiter).in_flight = value
                elif name == names.LIMITER_QUEUED:
                    row(limiter).queued = value
                elif name == names.LIMITER_LIMIT:
                    row(limiter).limit = value
                elif name == names.LIMITER_ADMITTED:
                    # Also what keeps a limiter that no longer reports its gauges (a finished run's Level 2)
                    # in the summary when none of its calls waited.
                    row(limiter).admitted += value
                elif name == names.LIMITER_REJECTED:
                    row(limiter).rejected += value
                elif name == names.LIMITER_ADJUSTMENTS:
                    reason = str(attributes.get(names.LIMIT_REASON, ""))
                    changes = row(limiter).changes
                    changes[reason] = changes.get(reason, 0) + value
                elif name == names.RETRY_ATTEMPTS:
                    key = (source, str(attributes.get(names.RETRY_REASON, "")))
                    snap.retries[key] = snap.retries.get(key, 0) + value
                elif name == names.TIMEOUTS:
                    snap.timeouts[source] = snap.timeouts.get(source, 0) + value
                elif name == names.PLANNER_RUNS:
                    snap.runs += value
                elif name == names.PLANNER_HOPS:
                    snap.hops += value
            elif isinstance(point, HistogramDataPoint) and name == names.LIMITER_WAIT:
                row(limiter).wait.add(point)
            elif isinstance(point, HistogramDataPoint) and name == names.TOOL_DURATION:
                key = (source, str(attributes.get(names.OUTCOME, "")))
                snap.calls[key] = snap.calls.get(key, 0) + point.count
        for name, limiter_row in snap.limiters.items():
            if limiter_row.limit:
                self._known[name] = limiter_row.limit
            elif name in self._known:
                limiter_row.limit = self._known[name]
            if limiter_row.limit:
                low, high = self._range.get(name, (limiter_row.limit, limiter_row.limit))
                self._range[name] = (min(low, limiter_row.limit), max(high, limiter_row.limit))
            limiter_row.low_limit, limiter_row.high_limit = self._range.get(name, (0, 0))
            peak_in_flight, peak_queued = self._peaks.get(name, (0, 0))
            peak_in_flight = max(peak_in_flight, limiter_row.in_flight)
            peak_queued = max(peak_queued, limiter_row.queued)
            self._peaks[name] = (peak_in_flight, peak_queued)
            limiter_row.peak_in_flight, limiter_row.peak_queued = peak_in_flight, peak_queued
            if limiter_row.adaptive:
                # The limit is sampled (every 0.2 s) and an adaptive one moves between samples; a call is only
                # admitted under the limit, so the limit reached at least the peak in flight, sampled or not.
                limiter_row.high_limit = max(limiter_row.high_limit, peak_in_flight)
        return snap
