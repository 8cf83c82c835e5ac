"""A structlog processor that puts the current span's trace and span ids on every log line.

Logs and traces then join on ``trace_id`` in any backend. Add it to structlog's processors::

    structlog.configure(processors=[add_trace_ids, ..., structlog.processors.JSONRenderer()])

Ids are the W3C hex forms (32 and 16 digits) that trace backends show. Outside any span, nothing is added.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace


def add_trace_ids(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``trace_id`` and ``span_id`` of the current span (keeps ids already set)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
