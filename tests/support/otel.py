"""One in-memory OpenTelemetry SDK for the whole test session, and helpers to read what it captured.

Global providers can be set once per process, so tests share these; each test isolates itself by using its own
tool and limiter names (metrics are cumulative) and by clearing the span exporter.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.telemetry import names

SPANS = InMemorySpanExporter()
# The engine's metrics that any workload with waits, rejections, retries and timeouts records: what the export
# tests (OTLP, Prometheus exporter) expect to see arrive.
ENGINE_METRICS = (
    names.TOOL_DURATION,
    names.LIMITER_IN_FLIGHT,
    names.LIMITER_QUEUED,
    names.LIMITER_LIMIT,
    names.LIMITER_WAIT,
    names.LIMITER_ADMITTED,
    names.LIMITER_REJECTED,
    names.RETRY_ATTEMPTS,
    names.TIMEOUTS,
)
READER = InMemoryMetricReader()
SESSION_CARDINALITY_LIMIT = 1_000_000
_installed = False
_ids = itertools.count()


def unique(prefix: str) -> str:
    """A fresh tool or limiter name: metrics are cumulative and shared by the session, so each test (and
    each hypothesis example) records under names of its own."""
    return f"{prefix}.{next(_ids)}"


def install() -> None:
    global _installed
    if _installed:
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    # Every test records under names of its own, so a metric gathers thousands of attribute sets over the
    # session: past the SDK's default cardinality limit (2000) new ones would all land in one
    # otel.metric.overflow point and read as 0 (CI failed 25 tests that way).
    every_metric = View(instrument_name="*", aggregation_cardinality_limit=SESSION_CARDINALITY_LIMIT)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER], views=[every_metric]))
    _installed = True


def points(name: str, data: Any = None, **match: Any) -> list[tuple[Mapping[str, Any], Any]]:
    """Data points of metric ``name`` whose attributes include ``match``, in ``data`` (one collection read
    for several metrics) or in a collection made now."""
    found: list[tuple[Mapping[str, Any], Any]] = []
    data = READER.get_metrics_data() if data is None else data
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if all(attributes.get(k) == v for k, v in match.items()):
                        found.append((attributes, point))
    return found


def value(name: str, **match: Any) -> float:
    """Sum of counter/gauge values of ``name`` over points matching ``match`` (0 if none)."""
    total = 0.0
    for _attributes, point in points(name, **match):
        assert isinstance(point, NumberDataPoint), f"{name} is not a counter or gauge"
        total += point.value
    return total


def histogram_count(name: str, **match: Any) -> int:
    total = 0
    for _attributes, point in points(name, **match):
        assert isinstance(point, HistogramDataPoint), f"{name} is not a histogram"
        total += point.count
    return total


def spans(prefix: str = "") -> list[ReadableSpan]:
    return [span for span in SPANS.get_finished_spans() if span.name.startswith(prefix)]


def span_events(name: str, **match: Any) -> list[tuple[ReadableSpan, dict[str, Any]]]:
    """``(span, event attributes)`` for each event ``name`` of a finished span whose attributes include ``match``."""
    return [
        (span, dict(event.attributes or {}))
        for span in SPANS.get_finished_spans()
        for event in span.events
        if event.name == name and all((event.attributes or {}).get(k) == v for k, v in match.items())
    ]
