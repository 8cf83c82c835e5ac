"""OTLP exporters that never hold an application up: short timeouts, bounded batches, one warning line.

An unreachable collector must cost the application nothing but the telemetry: the SDK's exporters wait up to
10 s per request and log every failed attempt (two lines per batch, hundreds a minute). Here each request gives
up after :data:`EXPORT_TIMEOUT_S` (unless ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]TIMEOUT`` says otherwise),
spans go through a :class:`~opentelemetry.sdk.trace.export.BatchSpanProcessor` (a bounded queue, exported off
the application's threads; ``OTEL_BSP_*`` tune it), and the exporters' failure reports become one line on the
``penguiflow.telemetry`` logger naming the endpoint — then silence until the process ends.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from penguiflow.errors import ConfigurationError

if TYPE_CHECKING:  # the SDK is an optional dependency; check_endpoint works without it
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

EXPORT_TIMEOUT_S = 2.0
"""Seconds one OTLP export request (with the exporter's own retries) may take."""

_log = logging.getLogger("penguiflow.telemetry")

# The loggers of the SDK that report failed exports (and spans dropped because the queue is full).
_EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
)
_FAILURES = (
    "Transient error",
    "Failed to export",
    "Queue full",
    "Shutdown in progress",
    "Exporter already",
    "OTLP client already",
)


def check_endpoint(endpoint: str, field: str) -> str:
    """``endpoint`` if it is an ``http(s)://host[:port][/path]`` URL, else :class:`ConfigurationError`."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise ConfigurationError(
            field, f"must be an http(s) URL such as http://localhost:4318: {exc}"
        ) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(
            field, f"must be an http(s) URL such as http://localhost:4318, got {endpoint!r}"
        )
    del port
    return endpoint


class _OneWarning(logging.Filter):
    """Turns the first export failure into one line naming the endpoint and drops every later one."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoints: list[str] = []
        self.warned = False
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if not message.startswith(_FAILURES):
            return True
        with self._lock:
            if self.warned:
                return False
            self.warned = True
        where = ", ".join(self.endpoints) or "the collector"
        reason = _reason(record)
        _log.warning(
            "telemetry export to %s failed%s; spans and metrics are dropped while it is unreachable "
            "(the application is not slowed down; further export errors are not logged)",
            where,
            f" ({reason})" if reason else "",
        )
        return False


def _reason(record: logging.LogRecord) -> str:
    text = " ".join(str(arg) for arg in record.args) if isinstance(record.args, tuple) else ""
    for short in ("Connection refused", "timed out", "Name or service not known", "No route to host"):
        if short.lower() in text.lower():
            return short.lower()
    return ""


_FILTER = _OneWarning()
_EXPORTERS: list[Any] = []  # the OTLP exporters made here, for drop_pending_if_unreachable()


def drop_pending_if_unreachable() -> None:
    """Once an export has failed, make the final flush at exit drop what is left at once instead of trying
    every remaining batch against a collector that is not there (seconds at shutdown for nothing)."""
    if _FILTER.warned:
        for exporter in _EXPORTERS:
            exporter.shutdown()
        _EXPORTERS.clear()


def report_failures_once(endpoint: str | None) -> None:
    """Route the SDK's export failure logs through the one-line warning (idempotent)."""
    if endpoint and endpoint not in _FILTER.endpoints:
        _FILTER.endpoints.append(endpoint)
    for name in _EXPORT_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _timeout(signal: str) -> float | None:
    """Our short timeout, unless the environment sets one (the exporter then reads it itself)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT") or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT"):
        return None
    return EXPORT_TIMEOUT_S


def protocol(signal: str) -> str:
    return os.environ.get(
        f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )


def otlp_span_exporter(endpoint: str | None) -> SpanExporter:
    """The OTLP span exporter for ``endpoint`` (a base URL; ``None``: the environment's or the default)."""
    if protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        exporter: SpanExporter = GrpcSpanExporter(endpoint=endpoint, timeout=_timeout("TRACES"))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
        exporter = OTLPSpanExporter(endpoint=url, timeout=_timeout("TRACES"))
    _EXPORTERS.append(exporter)
    return exporter


def otlp_metric_exporter(endpoint: str | None) -> Any:
    if protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        exporter: Any = GrpcMetricExporter(endpoint=endpoint, timeout=_timeout("METRICS"))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        url = f"{endpoint.rstrip('/')}/v1/metrics" if endpoint else None
        exporter = OTLPMetricExporter(endpoint=url, timeout=_timeout("METRICS"))
    _EXPORTERS.append(exporter)
    return exporter


def otlp_span_processor(endpoint: str | None, *, schedule_delay_s: float | None = None) -> BatchSpanProcessor:
    """A batch processor exporting to ``endpoint`` over OTLP, failures reported once.

    ``schedule_delay_s`` (default ``OTEL_BSP_SCHEDULE_DELAY`` or 5 s): how long spans may wait for their batch —
    short in a process that may be stopped at any moment (the demo's MCP server)."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    report_failures_once(resolved_endpoint(endpoint, "TRACES"))
    delay = None if schedule_delay_s is None else schedule_delay_s * 1000
    return BatchSpanProcessor(otlp_span_exporter(endpoint), schedule_delay_millis=delay)


def resolved_endpoint(endpoint: str | None, signal: str) -> str:
    """The base URL an exporter given ``endpoint`` sends to, for messages."""
    return (
        endpoint
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "http://localhost:4318"
    )
