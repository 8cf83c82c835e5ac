"""Trace context into outgoing request headers: ``propagate.inject``, without its cost when it cannot matter.

``propagate.inject`` runs every configured propagator through several layers of calls (~27,000 instructions
per request with a span current, callgrind). With the API's default propagators — W3C trace context and W3C
baggage, which are what ``OTEL_PROPAGATORS`` defaults to — :func:`inject` writes the same ``traceparent`` and
``tracestate`` headers itself, and hands baggage (rare) to the propagator; with no span and no baggage in the
context (telemetry off) it writes nothing, as they would. Any other propagator set by the application runs as
it is, through ``propagate.inject``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import INVALID_SPAN_CONTEXT
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["inject"]

_BAGGAGE = W3CBaggagePropagator()
_known: tuple[object, bool] = (None, False)  # the global propagator last seen, and whether it is the default


def _is_default(textmap: object) -> bool:
    global _known
    if textmap is not _known[0]:
        parts = getattr(textmap, "_propagators", None) if type(textmap) is CompositePropagator else None
        default = parts is not None and all(
            type(part) in (TraceContextTextMapPropagator, W3CBaggagePropagator) for part in parts
        )
        _known = (textmap, default)
    return _known[1]


def inject(headers: dict[str, str]) -> None:
    """Add the current context's propagation headers to ``headers``, as ``propagate.inject(headers)`` does."""
    textmap = propagate.get_global_textmap()
    if not _is_default(textmap):
        textmap.inject(headers)
        return
    context = otel_context.get_current()
    if not context:
        return  # no span, no baggage: the default propagators write nothing
    parts: Any = textmap._propagators  # type: ignore[attr-defined]
    for part in parts:
        if type(part) is TraceContextTextMapPropagator:
            span_context = trace.get_current_span(context).get_span_context()
            if span_context != INVALID_SPAN_CONTEXT:  # the propagator's own test
                headers["traceparent"] = (
                    f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
                )
                if span_context.trace_state:
                    headers["tracestate"] = span_context.trace_state.to_header()
        elif baggage.get_all(context):
            _BAGGAGE.inject(headers, context)
