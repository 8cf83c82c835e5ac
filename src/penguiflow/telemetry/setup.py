"""``configure()``: install the OpenTelemetry SDK for an application that wants penguiflow's telemetry exported.

Only applications call this — the library never installs providers by itself. It honours the standard
environment variables: ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``, ``console``, ``prometheus``, ``none``, comma
separated), ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``…_TRACES_ENDPOINT`` / ``…_METRICS_ENDPOINT``, ``…_HEADERS`` and
``OTEL_EXPORTER_OTLP_PROTOCOL`` (read by the exporters themselves), and ``OTEL_METRIC_EXPORT_INTERVAL``.
Arguments win over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from penguiflow.errors import ConfigurationError, MissingExtraError
from penguiflow.telemetry import export
from penguiflow.telemetry.bounds import MAX_ATTRIBUTE_LENGTH

T = TypeVar("T")


@dataclass
class TelemetryHandle:
    """What :func:`configure` installed; ``shutdown()`` flushes and stops every exporter."""

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    prometheus_port: int | None = None
    _servers: list[Any] = field(default_factory=list)

    def force_flush(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
        if self.meter_provider is not None:
            self.meter_provider.force_flush()

    def shutdown(self) -> None:
        export.drop_pending_if_unreachable()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _exporters(variable: str, default: str) -> set[str]:
    value = os.environ.get(variable, default)
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def _needs(extra: str, feature: str, build: Callable[[], T]) -> T:
    """``build()``, or :class:`MissingExtraError` naming ``extra`` when an exporter package is missing."""
    try:
        return build()
    except ModuleNotFoundError as exc:
        raise MissingExtraError(feature, extra, exc.name) from exc


def configure(
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    otlp: bool | None = None,
    console: bool = False,
    prometheus_port: int | None = None,
    prometheus_host: str = "127.0.0.1",
    metric_export_interval_s: float | None = None,
    span_processor: str = "batch",
    span_exporters: Sequence[SpanExporter] = (),
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    max_attribute_length: int | None = None,
) -> TelemetryHandle:
    """Install SDK tracer and meter providers as the global ones and return a handle to shut them down.

    ``otlp=True`` (or an ``otlp_endpoint``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` in the environment, or ``otlp`` in
    ``OTEL_TRACES_EXPORTER``) exports traces and metrics over OTLP; ``console=True`` prints spans;
    ``prometheus_port`` serves a Prometheus scrape endpoint on ``prometheus_host`` (0 picks a free port, read
    it back from the handle). ``span_exporters``, ``span_processors`` and ``metric_readers`` add your own.
    ``max_attribute_length`` caps every span and event attribute value (default
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, else 4096 characters; ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` and the
    SDK's other ``OTEL_*_LIMIT`` variables apply as the SDK reads them).
    """
    if span_processor not in {"batch", "simple"}:
        raise ConfigurationError("span_processor", f"must be 'batch' or 'simple', got {span_processor!r}")
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TelemetryHandle(None, None)

    env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if otlp_endpoint is not None:
        export.check_endpoint(otlp_endpoint, "otlp_endpoint")
    elif env_endpoint:
        export.check_endpoint(env_endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT")
    trace_kinds = _exporters(
        "OTEL_TRACES_EXPORTER", "otlp" if (otlp or otlp_endpoint or env_endpoint) else "none"
    )
    metric_kinds = _exporters(
        "OTEL_METRICS_EXPORTER", "otlp" if (otlp or otlp_endpoint or env_endpoint) else "none"
    )
    if otlp is False:
        trace_kinds.discard("otlp")
        metric_kinds.discard("otlp")
    if console:
        trace_kinds.add("console")
    if prometheus_port is not None:
        metric_kinds.add("prometheus")

    # The Prometheus endpoint first: a busy port must fail before any exporter thread has started.
    handle = TelemetryHandle(None, None)
    readers: list[MetricReader] = list(metric_readers)
    if "prometheus" in metric_kinds:
        reader, start_http_server = _needs("prometheus", "the Prometheus endpoint", _prometheus)
        try:
            server, _thread = start_http_server(prometheus_port or 0, addr=prometheus_host)
        except OSError as exc:
            raise ConfigurationError(
                "prometheus_port",
                f"cannot serve metrics on {prometheus_host}:{prometheus_port}: {exc.strerror or exc} "
                "(is another process using the port? 0 picks a free one)",
            ) from None
        readers.append(reader)
        handle.prometheus_port = server.server_port
        handle._servers.append(server)

    attributes = {SERVICE_NAME: service_name} if service_name else {}
    resource = Resource.create(attributes)  # merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME

    processor_type = BatchSpanProcessor if span_processor == "batch" else SimpleSpanProcessor
    tracer_provider = TracerProvider(resource=resource, span_limits=_span_limits(max_attribute_length))
    exporters: list[SpanExporter] = list(span_exporters)
    if "otlp" in trace_kinds:
        # Always batched, with a short timeout and failures reported once: an unreachable collector must
        # never slow the application down (span_processor applies to the exporters you pass).
        tracer_provider.add_span_processor(
            _needs("otel", "OTLP export", lambda: export.otlp_span_processor(otlp_endpoint))
        )
    if "console" in trace_kinds:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    for exporter in exporters:
        tracer_provider.add_span_processor(processor_type(exporter))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)

    interval_ms = (
        metric_export_interval_s * 1000
        if metric_export_interval_s is not None
        else float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000"))
    )
    if "otlp" in metric_kinds:
        export.report_failures_once(export.resolved_endpoint(otlp_endpoint, "METRICS"))
        exporter = _needs("otel", "OTLP export", lambda: export.otlp_metric_exporter(otlp_endpoint))
        readers.append(
            PeriodicExportingMetricReader(
                exporter,
                export_interval_millis=interval_ms,
                export_timeout_millis=export.EXPORT_TIMEOUT_S * 1000,
            )
        )
    if "console" in metric_kinds:
        readers.append(
            PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval_ms)
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    handle.tracer_provider, handle.meter_provider = tracer_provider, meter_provider

    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return handle


def _prometheus() -> tuple[MetricReader, Any]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    return PrometheusMetricReader(), start_http_server


def _span_limits(max_attribute_length: int | None) -> SpanLimits:
    """The SDK's span limits, with a cap on attribute values unless the environment (or the caller) sets one:
    the SDK's own default is none, and attribute values can come from outside (an LLM, a server)."""
    if max_attribute_length is None and "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" not in os.environ:
        max_attribute_length = MAX_ATTRIBUTE_LENGTH
    try:
        return SpanLimits(max_attribute_length=max_attribute_length)
    except ValueError as exc:  # the SDK's message names the variable: "OTEL_… must be a non-negative integer"
        field = str(exc).split(" ", 1)[0] if str(exc).startswith("OTEL_") else "max_attribute_length"
        raise ConfigurationError(field, str(exc)) from None
