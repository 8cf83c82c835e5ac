"""``Timeout``: bounds one attempt of a call. Put it inside the limit, so that queueing does not count.

A timeout works by cancelling the attempt's task, so it cannot stop a tool that does not let it: one that
catches and ignores ``CancelledError``, or one that blocks the event loop (a synchronous sleep, CPU-bound work in
an ``async def``; a sync function run by ``@tool``/``wrap`` goes to a thread, which cannot be stopped either, but
its slot is released at the timeout). Such a call holds its slot until the tool finally returns; the layer then
logs a WARNING (logger ``penguiflow.middleware.timeout``) saying how long it overran, so the culprit can be found.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry import trace

from penguiflow.errors import ToolTimeoutError
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.events import NODE_TIMEOUT, emit
from penguiflow.middleware.validation import check_seconds
from penguiflow.telemetry import instruments, names
from penguiflow.telemetry.bounds import bounded

_log = logging.getLogger(__name__)
# Finishing just as the timer falls due is a race, not a blocked loop: only a clear overrun is reported.
_BLOCKED_MARGIN_S = 0.1


class Timeout:
    """Fails an attempt that runs longer than ``seconds`` with :class:`~penguiflow.errors.ToolTimeoutError`
    (a :class:`TimeoutError`, and retryable). A ``TimeoutError`` raised by the tool itself passes through as is.
    """

    def __init__(self, seconds: float, *, latency_callback: LatencyCallback | None = None) -> None:
        self.seconds = check_seconds(seconds, "seconds")
        self.latency_callback = latency_callback

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        # ``asyncio.timeout`` costs ~4 µs a call (an async context manager and its bookkeeping), most of the
        # default stack's overhead; the same protocol by hand — one timer that cancels this task, then
        # ``uncancel`` to tell our cancellation from anyone else's — costs under 1 µs.
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a layer always runs inside a task
            raise RuntimeError("Timeout must run inside an asyncio task")
        loop = task.get_loop()
        start = loop.time()
        expiry = _Expiry(task)
        handle = loop.call_at(start + self.seconds, expiry.fire)
        try:
            return await call_next(call)
        except asyncio.CancelledError:
            # Ours only if the timer fired and no other cancellation (of the caller, of an outer timeout) is
            # pending: those keep propagating as CancelledError.
            if expiry.fired:
                expiry.fired = False
                if task.uncancel() <= expiry.cancelling:
                    self._report(call, (loop.time() - start) * 1000)
                    raise ToolTimeoutError(call.tool, self.seconds) from None
            raise
        finally:
            handle.cancel()
            if expiry.fired:  # the tool swallowed our cancellation: withdraw it all the same
                task.uncancel()
                self._overran(call, loop.time() - start, "ignored the cancellation of its timeout")
            elif loop.time() - start > self.seconds + _BLOCKED_MARGIN_S:
                # Our timer was due long ago but could not fire: something held the loop, likely this tool.
                self._overran(
                    call, loop.time() - start, "returned late: the event loop was blocked (by this tool?)"
                )

    def _overran(self, call: Call, elapsed: float, how: str) -> None:
        _log.warning(
            "%s %s: it ran %.3fs against a timeout of %gs and held its slot until it returned",
            call.tool,
            how,
            elapsed,
            self.seconds,
            extra={"tool": call.tool, "timeout_s": self.seconds, "elapsed_s": round(elapsed, 3)},
        )

    def _report(self, call: Call, latency_ms: float) -> None:
        telemetry = instruments.current()
        if telemetry is not None:
            if telemetry.metrics is not None:
                telemetry.metrics.add(
                    names.TIMEOUTS,
                    1,
                    {names.GEN_AI_TOOL_NAME: bounded(call.tool), names.TOOL_SOURCE: call.source or ""},
                )
            trace.get_current_span().add_event(
                names.EVENT_TIMEOUT, {names.TIMEOUT_S: self.seconds, names.ATTEMPT: call.attempt}
            )
        emit(call, self.latency_callback, NODE_TIMEOUT, latency_ms, timeout_s=self.seconds)


class _Expiry:
    """The timer's callback: cancels the task once and remembers it did (``__slots__``: one per call)."""

    __slots__ = ("cancelling", "fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.fired = False

    def fire(self) -> None:
        if not self.task.done():
            self.fired = True
            self.task.cancel()
