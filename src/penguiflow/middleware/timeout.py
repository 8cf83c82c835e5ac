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
import time
import types
import weakref
from collections import deque
from collections.abc import Callable
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
# Finished attempts a layer's queue may hold behind a long-running one before it is compacted.
_COMPACT_AT = 64
# Python 3.11's asyncio.current_task is a Python function reading this dict (3.12 made it a C function):
# reading the dict here saves a frame per call, and gives the loop as well.
_CURRENT_TASKS: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = (
    None
    if isinstance(asyncio.current_task, types.BuiltinFunctionType)
    else getattr(asyncio.tasks, "_current_tasks")  # noqa: B009 - private: mypy does not know it
)
_running_loop = asyncio.get_running_loop
_new = object.__new__


class Timeout:
    """Fails an attempt that runs longer than ``seconds`` with :class:`~penguiflow.errors.ToolTimeoutError`
    (a :class:`TimeoutError`, and retryable). A ``TimeoutError`` raised by the tool itself passes through as is.
    """

    def __init__(self, seconds: float, *, latency_callback: LatencyCallback | None = None) -> None:
        self._seconds = check_seconds(seconds, "seconds")
        self.latency_callback = latency_callback
        self._deadlines: _Deadlines | None = None  # of the loop that used the layer last
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def seconds(self) -> float:
        # Read-only: the layer's deadlines are kept in arrival order, which one fixed bound guarantees.
        return self._seconds

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        # ``asyncio.timeout`` costs ~4 µs a call (an async context manager and its bookkeeping), most of the
        # default stack's overhead; the same protocol by hand — cancel this task at the deadline, then
        # ``uncancel`` to tell our cancellation from anyone else's — costs far less. Every attempt through this
        # layer has the same bound, so deadlines fall due in arrival order: one timer per layer and loop (for
        # the oldest running attempt) replaces a timer per call, whose creation, cancellation and purge from
        # the loop's heap cost more than the rest of the layer.
        loop = _running_loop()
        task = _CURRENT_TASKS.get(loop) if _CURRENT_TASKS is not None else asyncio.current_task(loop)
        if task is None:  # pragma: no cover - a layer always runs inside a task
            raise RuntimeError("Timeout must run inside an asyncio task")
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines_of(loop)
        clock = deadlines.clock
        start = clock()
        # _Expiry filled here rather than by an ``__init__``: a class call with a frame of its own costs more
        # than the rest of this set-up.
        expiry: _Expiry = _new(_Expiry)
        expiry.task = task
        expiry.deadline = start + self._seconds
        expiry.cancelling = task.cancelling()
        expiry.fired = False
        queue = deadlines.queue
        if queue and (queue[0].task is None or len(queue) > _COMPACT_AT):
            deadlines.trim()
        queue.append(expiry)
        deadlines.live += 1
        if deadlines.timer is None:
            deadlines.timer = loop.call_at(expiry.deadline, deadlines.fire)
        try:
            return await call_next(call)
        except asyncio.CancelledError:
            # Ours only if the timer fired and no other cancellation (of the caller, of an outer timeout) is
            # pending: those keep propagating as CancelledError.
            if expiry.fired:
                expiry.fired = False
                if task.uncancel() <= expiry.cancelling:
                    self._report(call, (clock() - start) * 1000)
                    raise ToolTimeoutError(call.tool, self._seconds) from None
            raise
        finally:
            expiry.task = None  # done: the timer skips it (and the task is not kept alive by the queue)
            deadlines.live -= 1
            # Leave the queue at once when at either end of it (sequential calls, calls finishing in the order
            # they came): only one finishing in the middle waits there to be trimmed.
            if queue:
                if queue[-1] is expiry:
                    queue.pop()
                elif queue[0] is expiry:
                    queue.popleft()
            if expiry.fired:  # the tool swallowed our cancellation: withdraw it all the same
                task.uncancel()
                self._overran(call, clock() - start, "ignored the cancellation of its timeout")
            elif clock() - start > self._seconds + _BLOCKED_MARGIN_S:
                # Our timer was due long ago but could not fire: something held the loop, likely this tool.
                self._overran(
                    call, clock() - start, "returned late: the event loop was blocked (by this tool?)"
                )

    def _deadlines_of(self, loop: asyncio.AbstractEventLoop) -> _Deadlines:
        deadlines = self._by_loop.get(loop)
        if deadlines is None:
            deadlines = self._by_loop[loop] = _Deadlines(loop)
        self._deadlines = deadlines
        return deadlines

    def _overran(self, call: Call, elapsed: float, how: str) -> None:
        _log.warning(
            "%s %s: it ran %.3fs against a timeout of %gs and held its slot until it returned",
            call.tool,
            how,
            elapsed,
            self._seconds,
            extra={"tool": call.tool, "timeout_s": self._seconds, "elapsed_s": round(elapsed, 3)},
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
                names.EVENT_TIMEOUT, {names.TIMEOUT_S: self._seconds, names.ATTEMPT: call.attempt}
            )
        emit(call, self.latency_callback, NODE_TIMEOUT, latency_ms, timeout_s=self._seconds)


class _Expiry:
    """One attempt's deadline: cancels its task once and remembers it did (``__slots__``: one per call).
    ``task`` is ``None`` once the attempt is over."""

    __slots__ = ("cancelling", "deadline", "fired", "task")

    # Filled by Timeout.__call__ (no ``__init__``: see there).
    task: asyncio.Task[Any] | None
    deadline: float
    cancelling: int  # the task's pending cancellations before this attempt
    fired: bool

    def fire(self) -> None:
        task = self.task
        if task is not None and not task.done():
            self.fired = True
            task.cancel()


class _Deadlines:
    """The running attempts of one ``Timeout`` layer on one loop, oldest (first due) first, and the one timer
    that waits for the oldest. A finished attempt stays queued until it reaches the head or the queue is
    compacted (when finished ones are most of it), so that finishing costs no search."""

    __slots__ = ("clock", "live", "loop", "queue", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The loop's clock; for asyncio's own loops, the function it calls (``BaseEventLoop.time`` is
        # ``time.monotonic()``), saving a method frame per reading. A loop with a clock of its own keeps it.
        self.clock: Callable[[], float] = (
            time.monotonic
            if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time
            else loop.time
        )
        self.queue: deque[_Expiry] = deque()
        self.live = 0  # attempts queued and not finished
        self.timer: asyncio.TimerHandle | None = None

    def trim(self) -> None:
        """Drop finished attempts from the head; compact the queue when finished ones are most of it. The
        queue object stays the same (the caller appends to it next)."""
        queue = self.queue
        while queue and queue[0].task is None:
            queue.popleft()
        if len(queue) > _COMPACT_AT and len(queue) > 4 * self.live:
            running = [expiry for expiry in queue if expiry.task is not None]
            queue.clear()
            queue.extend(running)

    def fire(self) -> None:
        self.timer = None
        queue = self.queue
        now = self.loop.time()
        while queue:
            head = queue[0]
            if head.task is None:
                queue.popleft()
            elif head.deadline <= now:
                queue.popleft()
                head.fire()
            else:
                self.timer = self.loop.call_at(head.deadline, self.fire)
                return
