"""A minimal OTLP/HTTP receiver on 127.0.0.1 that decodes the real protobuf export requests.

There is no OpenTelemetry Collector, Jaeger or Tempo with an OTLP receiver to install here, so tests that check
what goes *over the wire* send to this: ``POST /v1/traces`` (``ExportTraceServiceRequest``) and ``POST
/v1/metrics`` (``ExportMetricsServiceRequest``), gzip or not, as the OTLP/HTTP exporters send them.

    with OtlpReceiver() as receiver:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        ...
        spans = receiver.wait_for_spans(lambda spans: any(s.name == "invoke_agent demo" for s in spans))
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_dict(attributes: Any) -> dict[str, Any]:
    return {item.key: any_value(item.value) for item in attributes if isinstance(item, KeyValue)}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids in lowercase hex (``parent_span_id`` is ``""`` for a root span)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    status_code: int
    events: tuple[tuple[str, dict[str, Any]], ...] = field(default=())

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) else None

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class ReceivedMetric:
    """One metric of one export: its name, resource attributes and its data points' attributes."""

    name: str
    unit: str
    resource: dict[str, Any]
    points: tuple[dict[str, Any], ...]


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) endpoint on 127.0.0.1 on a free port, running in a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._metrics: list[ReceivedMetric] = []
        self.requests: list[tuple[str, str | None]] = []  # (path, content-encoding) of every POST
        self.bodies: list[bytes] = []  # every decoded request body, as received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (exporters append ``/v1/traces``, ``/v1/metrics``)."""
        return f"http://127.0.0.1:{self.port}"

    # --- what arrived ------------------------------------------------------------------------------------
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def metrics(self) -> list[ReceivedMetric]:
        with self._lock:
            return list(self._metrics)

    def metric_names(self) -> set[str]:
        return {metric.name for metric in self.metrics()}

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self._metrics.clear()

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0
    ) -> list[ReceivedSpan]:
        """Poll until ``predicate(spans)`` holds; returns the spans, or raises ``TimeoutError`` naming what came."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({span.name for span in spans})
                raise TimeoutError(f"spans did not arrive in {timeout}s; got {len(spans)}: {names[:30]}")
            time.sleep(0.05)

    # --- decoding ----------------------------------------------------------------------------------------
    def _add_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = attributes_dict(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=attributes_dict(span.attributes),
                            resource=resource,
                            scope=scope_spans.scope.name,
                            status_code=span.status.code,
                            events=tuple(
                                (event.name, attributes_dict(event.attributes)) for event in span.events
                            ),
                        )
                    )
        with self._lock:
            self._spans.extend(received)

    def _add_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        received: list[ReceivedMetric] = []
        for resource_metrics in request.resource_metrics:
            resource = attributes_dict(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind) if kind else None
                    points = tuple(
                        attributes_dict(point.attributes) for point in getattr(data, "data_points", ())
                    )
                    received.append(ReceivedMetric(metric.name, metric.unit, resource, points))
        with self._lock:
            self._metrics.extend(received)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = self.headers.get("Content-Encoding")
                with receiver._lock:
                    receiver.requests.append((self.path, encoding))
                try:
                    if encoding == "gzip":
                        body = gzip.decompress(body)
                    elif encoding == "deflate":
                        body = zlib.decompress(body)
                    with receiver._lock:
                        receiver.bodies.append(body)  # decompressed protobuf, for byte-level searches
                    if self.path == "/v1/traces":
                        receiver._add_traces(body)
                        reply = ExportTraceServiceResponse().SerializeToString()
                    elif self.path == "/v1/metrics":
                        receiver._add_metrics(body)
                        reply = ExportMetricsServiceResponse().SerializeToString()
                    else:
                        self.send_error(404)
                        return
                except Exception as exc:  # a body that does not decode is the exporter's bug: say so
                    self.send_error(400, f"undecodable OTLP body: {type(exc).__name__}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        return Handler


def span_tree(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    """Children of each span id (``""`` holds the roots)."""
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    return children


def iter_descendants(span: ReceivedSpan, children: dict[str, list[ReceivedSpan]]) -> Iterator[ReceivedSpan]:
    for child in children.get(span.span_id, []):
        yield child
        yield from iter_descendants(child, children)
