"""``Timeout``: bounds one attempt of a call. Put it inside the limit, so that queueing does not count."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace

from penguiflow.errors import ToolTimeoutError
from penguiflow.middleware.call import Call, CallNext, LatencyCallback
from penguiflow.middleware.events import NODE_TIMEOUT, emit
from penguiflow.middleware.validation import check_seconds
from penguiflow.telemetry import instruments, names


class Timeout:
    """Fails an attempt that runs longer than ``seconds`` with :class:`~penguiflow.errors.ToolTimeoutError`
    (a :class:`TimeoutError`, and retryable). A ``TimeoutError`` raised by the tool itself passes through as is.
    """

    def __init__(self, seconds: float, *, latency_callback: LatencyCallback | None = None) -> None:
        self.seconds = check_seconds(seconds, "seconds")
        self.latency_callback = latency_callback

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        start = time.perf_counter()
        timeout = asyncio.timeout(self.seconds)
        try:
            async with timeout:
                return await call_next(call)
        except TimeoutError:
            if not timeout.expired():
                raise
            self._report(call, (time.perf_counter() - start) * 1000)
            raise ToolTimeoutError(call.tool, self.seconds) from None

    def _report(self, call: Call, latency_ms: float) -> None:
        telemetry = instruments.current()
        if telemetry is not None:
            if telemetry.metrics is not None:
                telemetry.metrics.add(
                    names.TIMEOUTS,
                    1,
                    {names.GEN_AI_TOOL_NAME: call.tool, names.TOOL_SOURCE: call.source or ""},
                )
            trace.get_current_span().add_event(
                names.EVENT_TIMEOUT, {names.TIMEOUT_S: self.seconds, names.ATTEMPT: call.attempt}
            )
        emit(call, self.latency_callback, NODE_TIMEOUT, latency_ms, timeout_s=self.seconds)
