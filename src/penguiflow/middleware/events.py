"""Flow events: what the layers report about a call, the latency callbacks, and ``log_flow_events``.

Every layer reports through :func:`emit`: to its own ``latency_callback`` and to every listener subscribed
on the call (``log_flow_events`` subscribes, so it sees the retries, timeouts and queue waits of the layers
inside it). Nothing is built when nobody listens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from opentelemetry import trace

from penguiflow.middleware.call import Call, CallNext, LatencyCallback

NODE_START: Final = "node_start"
NODE_SUCCESS: Final = "node_success"
NODE_ERROR: Final = "node_error"
NODE_RETRY: Final = "node_retry"
NODE_TIMEOUT: Final = "node_timeout"
QUEUE_WAIT: Final = "queue_wait"
NODE_PROGRESS: Final = (
    "node_progress"  # a tool source reported progress (MCP): attributes progress, total, message
)
EVENT_TYPES: Final = (
    NODE_START,
    NODE_SUCCESS,
    NODE_ERROR,
    NODE_RETRY,
    NODE_TIMEOUT,
    QUEUE_WAIT,
    NODE_PROGRESS,
)

_internal_log = logging.getLogger("penguiflow.middleware")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """One thing that happened to a call. ``node_name`` is the tool's name, as in the source library."""

    event_type: str
    node_name: str
    source: str | None
    call_id: str
    attempt: int
    latency_ms: float
    trace_id: str | None = None
    span_id: str | None = None
    error_type: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


def run_callback(callback: LatencyCallback, event: FlowEvent) -> None:
    """Call a user's latency callback; one that raises is logged and never breaks the call."""
    try:
        callback(event.event_type, event.latency_ms, event)
    except Exception:
        _internal_log.exception("latency_callback raised on %s for %s", event.event_type, event.node_name)


def emit(
    call: Call,
    callback: LatencyCallback | None,
    event_type: str,
    latency_ms: float,
    *,
    error: BaseException | None = None,
    **attributes: Any,
) -> None:
    """Report ``event_type`` for ``call`` to ``callback`` and to the call's listeners, if there are any."""
    listeners = call.listeners
    if callback is None and not listeners:
        return
    event = _event(call, event_type, latency_ms, error, attributes)
    if callback is not None:
        run_callback(callback, event)
    if listeners:
        for listener in tuple(listeners):  # a copy: a listener may unsubscribe while we iterate
            try:
                listener(event)
            except Exception:  # a listener is a callback too: it must never break the call
                _internal_log.exception("flow event listener raised on %s for %s", event_type, call.tool)


def _event(
    call: Call, event_type: str, latency_ms: float, error: BaseException | None, attributes: dict[str, Any]
) -> FlowEvent:
    context = trace.get_current_span().get_span_context()
    return FlowEvent(
        event_type=event_type,
        node_name=call.tool,
        source=call.source,
        call_id=call.call_id,
        attempt=call.attempt,
        latency_ms=latency_ms,
        trace_id=format(context.trace_id, "032x") if context.is_valid else None,
        span_id=format(context.span_id, "016x") if context.is_valid else None,
        error_type=type(error).__qualname__ if error is not None else None,
        attributes=attributes or _EMPTY,
    )


_LEVELS: Final = {
    NODE_START: logging.DEBUG,
    QUEUE_WAIT: logging.DEBUG,
    NODE_PROGRESS: logging.DEBUG,
    NODE_SUCCESS: logging.INFO,
    NODE_RETRY: logging.WARNING,
    NODE_TIMEOUT: logging.WARNING,
    NODE_ERROR: logging.ERROR,
}

# What a stdlib LogRecord already has: an ``extra`` key among them makes logging raise (node_progress carries a
# ``message``), so an event attribute by such a name goes in as ``event_<name>``.
_RECORD_NAMES: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class FlowEventLogger:
    """The layer :func:`log_flow_events` returns. Put it outermost to see every event of the call."""

    def __init__(self, logger: Any = None, *, latency_callback: LatencyCallback | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("penguiflow.flow")
        self.latency_callback = latency_callback
        self._stdlib = isinstance(self.logger, logging.Logger | logging.LoggerAdapter)
        self._on_event = self.on_event  # bound once: subscribed to every call

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        on_event = self._on_event
        listeners = call.listeners
        if listeners is None:
            listeners = call.listeners = [on_event]
        elif any(isinstance(getattr(listener, "__self__", None), FlowEventLogger) for listener in listeners):
            # An outer log_flow_events (a planner's middleware around a source's default one) already logs
            # every event of this call, the inner layers' included: logging here too would print each twice.
            return await self._nested(call, call_next)
        else:
            listeners.append(on_event)
        start = time.perf_counter()
        # Whether anyone reads the happy path's events, asked once: node_success's level (INFO) is above
        # node_start's (DEBUG), so if it is not logged neither is node_start. The common case (a stdlib logger,
        # no callback, no other listener) asks the logger once, inline.
        if self._stdlib and self.latency_callback is None and len(listeners) == 1:
            happy = start_wanted = self.logger.isEnabledFor(logging.INFO)
            if happy:
                start_wanted = self.logger.isEnabledFor(logging.DEBUG)
        else:
            happy = self._wanted(call, NODE_SUCCESS)
            start_wanted = happy and self._wanted(call, NODE_START)
        try:
            if start_wanted:
                emit(call, None, NODE_START, 0.0)
            try:
                result = await call_next(call)
            except asyncio.CancelledError as exc:
                emit(call, None, NODE_ERROR, (time.perf_counter() - start) * 1000, error=exc, cancelled=True)
                raise
            except Exception as exc:
                emit(call, None, NODE_ERROR, (time.perf_counter() - start) * 1000, error=exc)
                raise
            if happy or len(listeners) > 1:  # or someone subscribed while it ran
                emit(call, None, NODE_SUCCESS, (time.perf_counter() - start) * 1000)
            return result
        finally:
            listeners.remove(on_event)

    async def _nested(self, call: Call, call_next: CallNext) -> Any:
        """Inside another event logger: log nothing; our latency callback still sees every event we would."""
        callback = self.latency_callback
        if callback is None:
            return await call_next(call)
        assert call.listeners is not None

        def on_event(event: FlowEvent) -> None:
            if event.event_type != NODE_START:
                run_callback(callback, event)

        call.listeners.append(on_event)
        start = time.perf_counter()
        try:
            result = await call_next(call)
        except BaseException as exc:
            cancelled = {"cancelled": True} if isinstance(exc, asyncio.CancelledError) else {}
            run_callback(
                callback, _event(call, NODE_ERROR, (time.perf_counter() - start) * 1000, exc, cancelled)
            )
            raise
        finally:
            call.listeners.remove(on_event)
        run_callback(callback, _event(call, NODE_SUCCESS, (time.perf_counter() - start) * 1000, None, {}))
        return result

    def _wanted(self, call: Call, event_type: str) -> bool:
        """Whether an event of the happy path reaches anyone: building one costs more than the rest of the
        layer, and with the default logger (level WARNING) nobody reads ``node_start`` or ``node_success``."""
        if call.listeners is not None and len(call.listeners) > 1:
            return True  # other listeners want every event
        return self.reads(event_type)

    def reads(self, event_type: str) -> bool:
        """Whether this layer does anything with an event of ``event_type``: logs it or hands it on."""
        if self.latency_callback is not None and event_type != NODE_START:
            return True
        if not self._stdlib:
            return True  # a structlog logger filters itself
        return bool(self.logger.isEnabledFor(_LEVELS[event_type]))

    def on_event(self, event: FlowEvent) -> None:
        """Log one event and hand it to the latency callback (not for ``node_start``, which has no latency)."""
        fields: dict[str, Any] = {
            "event_type": event.event_type,
            "node_name": event.node_name,
            "tool_source": event.source,
            "call_id": event.call_id,
            "attempt": event.attempt,
            "latency_ms": round(event.latency_ms, 3),
            "trace_id": event.trace_id,
            "span_id": event.span_id,
        }
        if event.error_type is not None:
            fields["error_type"] = event.error_type
        if self._stdlib:
            for key, value in event.attributes.items():
                fields[f"event_{key}" if key in _RECORD_NAMES else key] = value
        else:
            fields.update(event.attributes)
        level = _LEVELS.get(event.event_type, logging.INFO)
        if event.attributes.get("cancelled"):
            level = logging.INFO  # the caller's own decision, not a failure of the tool
        try:
            if self._stdlib:
                self.logger.log(
                    level, "%s %s %.1fms", event.event_type, event.node_name, event.latency_ms, extra=fields
                )
            else:  # structlog (or any logger taking an event name and keyword fields)
                del fields["event_type"]
                getattr(self.logger, logging.getLevelName(level).lower())(event.event_type, **fields)
        except Exception:
            _internal_log.exception("logging a flow event failed")
        if self.latency_callback is not None and event.event_type != NODE_START:
            run_callback(self.latency_callback, event)


def heard(call: Call, event_type: str) -> bool:
    """Whether an event of ``event_type`` emitted on ``call`` would reach anyone among its listeners.

    Asked before requesting what only such an event would carry (an MCP call's progress token): an event
    logger whose logger is not enabled at the event's level does not count; any other listener does.
    """
    for listener in call.listeners or ():
        owner = getattr(listener, "__self__", None)
        if not isinstance(owner, FlowEventLogger) or owner.reads(event_type):
            return True
    return False


def log_flow_events(
    logger: Any = None, *, latency_callback: LatencyCallback | None = None
) -> FlowEventLogger:
    """A layer that logs every call's start, success, error, retries, timeouts and queue waits.

    ``logger`` is a stdlib :class:`logging.Logger` (fields go in ``extra``) or a structlog logger (fields as
    keywords); by default ``logging.getLogger("penguiflow.flow")``. ``latency_callback(event_type, latency_ms,
    event)`` is called for every event but ``node_start``.
    """
    return FlowEventLogger(logger, latency_callback=latency_callback)
