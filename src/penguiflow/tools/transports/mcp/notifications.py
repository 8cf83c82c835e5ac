"""Server notifications as first-class signals: progress and log messages.

- **Progress** of a call (``notifications/progress`` with the call's progress token) becomes a
  ``node_progress`` flow event of that call — what ``log_flow_events`` listeners and the latency callbacks see,
  and the node's ``progress_callback`` — and a ``penguiflow.mcp.progress`` span event on the call's span.
  Progress handled after its call's result (rare: the SDK handles each notification in a task of its own) is
  dropped, so that no listener sees a call progress after it ended.
- **Log messages** (``notifications/message``) go to Python logging under ``penguiflow.mcp.<source>`` at the
  mapped level (``notice`` → INFO, ``alert``/``emergency`` → CRITICAL), and to a ``penguiflow.mcp.log`` span
  event on the span of the call in flight — when there is exactly one: MCP does not say which request a log
  message belongs to, and an event on the wrong call would mislead.

Nothing is printed: the application's logging configuration decides where it goes. What the server wrote is
masked (configured secrets) and shortened before it is logged or put on a span.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from mcp.shared.dispatcher import ProgressFnT
from mcp.types import LOG_LEVEL_META_KEY, LoggingMessageNotificationParams
from opentelemetry import trace
from opentelemetry.trace import Span

from penguiflow.middleware.call import Call
from penguiflow.middleware.events import NODE_PROGRESS, FlowEvent, emit, heard
from penguiflow.telemetry import names
from penguiflow.tools.hooks import ProgressCallback
from penguiflow.tools.transports.base import shorten

__all__ = ["LEVELS", "Notifications"]

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}
_MAX_LOG: Final = 2000  # characters of one server log message kept
# The MCP levels a request can ask for, lowest first, each with the Python level LEVELS logs it at (asking for
# "critical" also brings "alert" and "emergency", which are logged at CRITICAL too).
# Each one's _meta built once and shared by every call, so read-only: a library writing into it in place would
# carry one call's keys into the next; this way it raises instead.
_REQUESTABLE: Final = tuple(
    (python_level, MappingProxyType({LOG_LEVEL_META_KEY: level}))
    for level, python_level in (
        ("info", logging.INFO),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("critical", logging.CRITICAL),
    )
)
_NOTHING_HEARD: Final = MappingProxyType({LOG_LEVEL_META_KEY: "emergency"})  # MCP has no level for "none"
# From this protocol version on, a server sends a request's log messages only at or above the level that
# request's _meta asks for (before it, a session-wide logging/setLevel filtered them). ISO dates: ordered as text.
_PER_REQUEST_LOGGING_SINCE: Final = "2026-07-28"


class Notifications:
    """The notification handlers of one MCP source."""

    def __init__(
        self, source: str, redact: Callable[[str], str], progress_callback: ProgressCallback | None
    ) -> None:
        self.source = source
        self.log = logging.getLogger(f"penguiflow.mcp.{source}")
        self._redact = redact
        self._progress_callback = progress_callback
        self._ids = itertools.count()
        self._in_flight: dict[int, Span] = {}
        self.per_request_levels = False  # whether the open session's protocol asks for log levels per request

    def opened(self, protocol_version: str | None) -> None:
        """The session's negotiated protocol version, once it is open."""
        self.per_request_levels = (
            protocol_version is not None and protocol_version >= _PER_REQUEST_LOGGING_SINCE
        )

    def start(self, call: Call | None) -> tuple[int, ProgressFnT | None, Mapping[str, Any] | None]:
        """A request starts: its span registered for log events (until :meth:`end` with the key returned),
        its progress handler and its ``_meta`` — for what someone hears only, so the server neither tracks nor
        sends the rest:

        - a progress handler (hence a progress token: fastmcp's server spends ~20,000 instructions a call on
          one alone, see docs/benchmarks.md) only with a recording span, a ``progress_callback``, or a listener
          on the call that reads ``node_progress``;
        - log messages at every level while the span records them as events; otherwise from the lowest level
          ``penguiflow.mcp.<source>`` is enabled for (with no logging configured: WARNING). The session asks for
          every level (fastmcp's default); a request's ``_meta`` narrows it, on the protocols that ask per
          request. With even CRITICAL disabled the request asks for "emergency".

        Two methods, not a context manager: this runs around every call.
        """
        key = next(self._ids)
        span = trace.get_current_span()
        self._in_flight[key] = span
        if span.is_recording():
            return key, self._on_progress(key, call, span), None
        on_progress = (
            self._on_progress(key, call, span)
            if call is not None and (self._progress_callback is not None or heard(call, NODE_PROGRESS))
            else None
        )
        return key, on_progress, self._log_meta() if self.per_request_levels else None

    def end(self, key: int) -> None:
        del self._in_flight[key]

    def _log_meta(self) -> Mapping[str, Any] | None:
        log = self.log
        if log.isEnabledFor(logging.DEBUG):
            return None  # the session's own level, "debug"
        for python_level, meta in _REQUESTABLE:
            if log.isEnabledFor(python_level):
                return meta
        return _NOTHING_HEARD

    def _on_progress(self, key: int, call: Call | None, span: Span) -> ProgressFnT:
        started = time.perf_counter()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            # The SDK runs progress handlers in tasks of their own: one may run after its call's result (a
            # server reporting progress just before it). Such progress is dropped: on the ended span add_event
            # would log a warning, and a node_progress after the call's node_success would mislead a listener.
            if key not in self._in_flight:
                return
            text = shorten(self._redact(message), _MAX_LOG) if message else None
            attributes: dict[str, Any] = {names.MCP_PROGRESS: progress}
            if total is not None:
                attributes[names.MCP_PROGRESS_TOTAL] = total
            if text is not None:
                attributes[names.MCP_PROGRESS_MESSAGE] = text
            if span.is_recording():
                span.add_event(names.EVENT_MCP_PROGRESS, attributes)
            if call is not None:
                callback = self._progress_callback
                # This runs in the session's reader task: make the call's span current for the event's ids.
                with trace.use_span(span, end_on_exit=False):
                    emit(
                        call,
                        None if callback is None else _adapt(callback),
                        NODE_PROGRESS,
                        (time.perf_counter() - started) * 1000,
                        progress=progress,
                        total=total,
                        message=text,
                    )

        return on_progress

    async def on_log(self, params: LoggingMessageNotificationParams) -> None:
        level = LEVELS.get(str(params.level).lower(), logging.INFO)
        data = params.data if isinstance(params.data, str) else json.dumps(params.data, default=str)
        text = shorten(self._redact(data), _MAX_LOG)
        logger = shorten(self._redact(params.logger), 100) if params.logger else None
        self.log.log(level, "%s%s", f"[{logger}] " if logger else "", text)
        if len(self._in_flight) == 1:
            (span,) = self._in_flight.values()
            attributes = {names.MCP_LOG_LEVEL: str(params.level), names.MCP_LOG_DATA: text}
            if logger:
                attributes[names.MCP_LOG_LOGGER] = logger
            span.add_event(names.EVENT_MCP_LOG, attributes)


def _adapt(callback: ProgressCallback) -> Callable[[str, float, FlowEvent], None]:
    """The node's one-argument progress callback in the latency-callback shape ``emit`` calls."""

    def run(_event_type: str, _latency_ms: float, event: FlowEvent) -> None:
        callback(event)

    return run
