"""One span per MCP call, ours: the client libraries' own spans are kept out, their useful attributes kept in.

Two libraries under us open client spans of their own: fastmcp (``tools/call {name}``, switched off per block by
``suppress_fastmcp_telemetry()``) and the ``mcp`` SDK (scope ``mcp-python-sdk``: ``MCP send tools/call {name}``
for every request, ``MCP send server/discover`` — an ERROR span — on every connect). Neither can be switched off
by an API, and the SDK copies a server's raw JSON-RPC error text — stack traces, echoed credentials — into its
span status. Both would duplicate ``execute_tool``, which the OpenTelemetry MCP conventions say to enrich
instead ("where an outer GenAI span already covers the tool call, add the MCP attributes to it").

So, inside :func:`own_spans` (every request of a penguiflow MCP session runs inside it, the session's
background tasks included: they inherit the context they were started in):

- fastmcp's spans are suppressed by its own switch;
- the SDK's tracer is replaced, once, by :class:`_SdkTracer`, which opens no span there: it copies the SDK's
  request attributes (``mcp.method.name``, ``jsonrpc.request.id``) onto the current span — our ``execute_tool``
  (or ``attempt``, or ``connect``) span — and hands the SDK a non-recording span carrying our span's context, on
  which ``set_status(ERROR, <server text>)`` is a no-op. The W3C trace context the SDK injects into
  ``params._meta`` is then our span's, so the server's spans still join the caller's trace.

Outside :func:`own_spans` (another application's own use of the ``mcp`` SDK), the SDK's spans are untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

from fastmcp.telemetry import suppress_fastmcp_telemetry
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, Tracer

from penguiflow.telemetry import names

__all__ = ["own_spans", "set_attributes", "set_checked_attributes"]

# Inside own_spans: which of the SDK's request attributes to copy (0 outside: the SDK's spans are untouched).
_ALL: Final = 1  # method and request id (connect, resources, prompts)
_REQUEST_ID: Final = 2  # the id only: a tools/call span has its method already (set once per session)
_OURS: ContextVar[int] = ContextVar("penguiflow_mcp_own_spans", default=0)
# The SDK's request attributes worth keeping, on our span, under the same (semantic-convention) names.
_KEPT: Final = (names.MCP_METHOD_NAME, names.JSONRPC_REQUEST_ID)


class _SdkTracer(Tracer):
    """The ``mcp`` SDK's tracer: delegates to the real one, except inside :func:`own_spans`."""

    def __init__(self, delegate: Tracer) -> None:
        self._delegate = delegate

    def _absorb(self, attributes: Mapping[str, Any] | None, kept: int) -> Span:
        current = trace.get_current_span()
        if attributes and current.is_recording():
            if kept == _REQUEST_ID:
                request_id = attributes.get(names.JSONRPC_REQUEST_ID)
                if request_id is not None:
                    current.set_attribute(names.JSONRPC_REQUEST_ID, request_id)
            else:
                current.set_attributes({key: attributes[key] for key in _KEPT if key in attributes})
        return NonRecordingSpan(current.get_span_context())

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        kept = _OURS.get()
        if kept:
            return self._absorb(kwargs.get("attributes"), kept)
        return self._delegate.start_span(name, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]  # the same call signature, typed loosely on purpose
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[Span]:
        kept = _OURS.get()
        if kept:
            # Not made current: the SDK's inject() then reads our span, and nothing of the SDK's is exported.
            yield self._absorb(kwargs.get("attributes"), kept)
            return
        with self._delegate.start_as_current_span(name, *args, **kwargs) as span:
            yield span


def _install() -> None:
    """Put :class:`_SdkTracer` in front of the SDK's module-level tracer (once per process)."""
    try:
        from mcp.shared import _otel
    except ImportError:  # an SDK without its own spans: nothing to keep out
        return
    tracer = getattr(_otel, "_tracer", None)
    if tracer is not None and not isinstance(tracer, _SdkTracer):
        _otel._tracer = _SdkTracer(tracer)


_install()


class own_spans:  # used as a function: ``with own_spans():``
    """Run MCP client code with penguiflow's spans as the only client spans (see the module docstring).

    ``method_set``: the current span has its ``mcp.method.name`` already (a ``tools/call``): only the request id
    is copied. ``fastmcp=False`` skips fastmcp's switch (an OpenTelemetry context attached and detached) for
    code that runs none of fastmcp's client (:mod:`.direct`, which sets the switch itself around fastmcp's
    driver). A class, not a generator context manager: it runs around every call."""

    __slots__ = ("_fastmcp", "_kept", "_token")

    def __init__(self, method_set: bool = False, fastmcp: bool = True) -> None:
        self._kept = _REQUEST_ID if method_set else _ALL
        self._fastmcp: contextlib.AbstractContextManager[None] | None = (
            suppress_fastmcp_telemetry() if fastmcp else None
        )

    def __enter__(self) -> None:
        self._token = _OURS.set(self._kept)
        if self._fastmcp is not None:
            self._fastmcp.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._fastmcp is not None:
                self._fastmcp.__exit__(*exc_info)
        finally:
            _OURS.reset(self._token)


def set_attributes(attributes: Mapping[str, Any]) -> None:
    """Add the MCP semantic-convention ``attributes`` (``None`` values skipped) to the current span."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({key: value for key, value in attributes.items() if value is not None})


def set_checked_attributes(attributes: Mapping[str, Any]) -> None:
    """:func:`set_attributes` for a mapping built once without ``None`` values (a call's fixed attributes)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
