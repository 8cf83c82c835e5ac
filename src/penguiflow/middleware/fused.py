"""The engine's runner for consecutive built-in layers: what they do to a call, in one coroutine frame.

Each layer of a chain costs a call a coroutine frame of its own and a closure binding it to the next (~1,300
instructions, see docs/benchmarks.md, issue 17). Where a stack has consecutive built-in layers in their default
order — ``log_flow_events → Retry → ConcurrencyLimit → Timeout``, any of them — :func:`fuse` runs their work in
one frame instead: the same steps in the same order, inside the same nesting of ``try`` blocks as the layers'
own frames, so a call gets the same events, spans, metrics, slots and errors. A user's layer (or a subclass of a
built-in one) between them splits the run; it is called exactly as in :func:`chain`. Where a layer would leave
its common path at the very start (an outer event logger already subscribed, a retry deadline, caller limits
to admit), the run hands the call to the layers' own chain; a retry after the first attempt runs the inner
layers' own chain, as the ``Retry`` layer does. What runs is not :func:`fused`'s ``run`` itself but a copy of it
compiled for the layers the stack has (:mod:`penguiflow.middleware.specialise`): no step asks whether its layer
is there.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import types
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from penguiflow.errors import LimiterRejectedError, ToolTimeoutError
from penguiflow.middleware import admission
from penguiflow.middleware.admission import bind
from penguiflow.middleware.call import _HEAD, Call, CallNext, Middleware, _counter, make_call
from penguiflow.middleware.concurrency import ConcurrencyLimit, _wait
from penguiflow.middleware.events import NODE_ERROR, NODE_START, NODE_SUCCESS, FlowEventLogger, emit
from penguiflow.middleware.failures import classify
from penguiflow.middleware.retry import Retry
from penguiflow.middleware.specialise import specialise, template_of
from penguiflow.middleware.timeout import (
    _BLOCKED_MARGIN_S,
    _COMPACT_AT,
    _CURRENT_TASKS,
    Timeout,
    _Expiry,
)
from penguiflow.telemetry import instruments, names
from penguiflow.telemetry.bounds import MAX_OWN_VALUE_CHARS, bounded
from penguiflow.telemetry.instruments import Telemetry

if TYPE_CHECKING:
    from penguiflow.middleware.stack import Stack, Wrapped

_running_loop = asyncio.get_running_loop
_perf_counter = time.perf_counter
_new = object.__new__
_INFO = logging.INFO
_DEBUG = logging.DEBUG
GEN_AI_TOOL_CALL_ID = names.GEN_AI_TOOL_CALL_ID
OUTCOME = names.OUTCOME
ERROR_TYPE = names.ERROR_TYPE


# Handlers that only call a coroutine function with the call's arguments, and that function (see direct).
_DIRECT: weakref.WeakKeyDictionary[CallNext, Callable[..., Awaitable[Any]]] = weakref.WeakKeyDictionary()


def calls_function(handler: CallNext, fn: Callable[..., Awaitable[Any]]) -> None:
    """Declare that ``handler(call)`` is ``fn(**call.arguments)``: a fused run then calls ``fn`` itself."""
    _DIRECT[handler] = fn


class Runner(Protocol):
    """A run of fused layers: ``run(call)`` is a ``CallNext``. A stack's outermost run is called only as
    ``run(call, telemetry)``, telemetry on (the engine knows before it calls; its copy is compiled for that),
    and also holds the stack's span and duration record."""

    def __call__(self, call: Call, telemetry: Telemetry | None = None, /) -> Awaitable[Any]: ...


def outcome_of(exc: BaseException) -> names.Outcome:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, LimiterRejectedError):
        return "rejected"
    # classify, not isinstance(TimeoutError): a client library's own timeout (httpx.ReadTimeout) is one too.
    return "timeout" if classify(exc).kind == "timeout" else "error"


def bind_layer(layer: Middleware, call_next: CallNext) -> CallNext:
    """``layer`` bound to the rest of the stack: ``run(call)`` is ``layer(call, call_next)``."""
    # A layer object's ``__call__`` bound once: calling the bound method is a plain Python call, where calling
    # the object goes through the interpreter's generic path (its type's ``__call__`` looked up on every call).
    method = inspect.getattr_static(type(layer), "__call__", None)
    run_layer = layer.__call__ if isinstance(method, types.FunctionType) else layer

    def run(call: Call) -> Any:
        return run_layer(call, call_next)

    return run


def chain(handler: CallNext, layers: Sequence[Middleware]) -> CallNext:
    """``layers[0](call, layers[1](call, … handler(call)))``: the first layer is the outermost."""
    for layer in reversed(layers):
        handler = bind_layer(layer, handler)
    return handler


def _rank(layer: Middleware) -> int | None:
    """The place of a built-in layer in the order a fused run follows; ``None`` for any other layer. Exact
    types: a subclass may override what the run inlines. A ``ConcurrencyLimit`` subclass that keeps its
    ``__call__`` (an adaptive limit) is fused: the run calls its hooks as that ``__call__`` does."""
    kind = type(layer)
    if kind is FlowEventLogger:
        return 0
    if kind is Retry:
        return 1
    if isinstance(layer, ConcurrencyLimit) and kind.__call__ is ConcurrencyLimit.__call__:
        return 2
    if kind is Timeout:
        return 3
    return None


def fuse(handler: CallNext, layers: Sequence[Middleware], stack: Stack) -> tuple[CallNext, Runner]:
    """``(plain, top)``: ``plain`` is what :func:`chain` returns, each run of two or more built-in layers in the
    default order made one frame (:func:`fused`); ``top`` the same, but its outermost run (of any number of
    layers, none included) is a runner that also holds ``stack``'s span when given the telemetry. Telemetry
    off, ``plain`` has a frame less where the outermost run is a single layer, or none."""
    inner: CallNext = handler
    end = len(layers)
    while True:
        start, rank = end, 4
        while start > 0:
            this = _rank(layers[start - 1])
            if this is None or this >= rank:
                break
            rank, start = this, start - 1
        if start == 0:
            break
        if end - start >= 2:
            inner = fused(layers[start:end], inner, None)
        else:
            start = end - 1
            inner = bind_layer(layers[start], inner)
        end = start
    top = fused(layers[:end], inner, stack)
    if end >= 2:
        return fused(layers[:end], inner, None), top
    return (bind_layer(layers[0], inner) if end == 1 else inner), top


def fused(layers: Sequence[Middleware], inner: CallNext, stack: Stack | None) -> Runner:
    """``chain(inner, layers)`` in one frame, ``layers`` built-in ones in the default order (see :func:`fuse`).
    With a ``stack``, ``run(call, telemetry)`` (telemetry on, only) is also the stack's ``execute_tool`` span
    and duration record around the call (what runs inside it: :meth:`Stack._run`, or these layers when the
    call has no caller limits or layers)."""
    logger = next((layer for layer in layers if type(layer) is FlowEventLogger), None)
    retry = next((layer for layer in layers if type(layer) is Retry), None)
    limit = next((layer for layer in layers if isinstance(layer, ConcurrencyLimit)), None)
    timeout = next((layer for layer in layers if type(layer) is Timeout), None)
    generic = chain(inner, layers)
    # What the Retry layer's ``call_next`` is: the layers inside it, then ``inner``.
    retry_next = chain(inner, [layer for layer in (limit, timeout) if layer is not None])
    on_event = logger._on_event if logger is not None else None
    loggers: Any = logger.logger if logger is not None else None
    # An exact stdlib Logger: its level cache is read here (a subclass may decide otherwise, an adapter too).
    plain_logger = type(loggers) is logging.Logger
    # A coroutine function's handler (function_handler): its function called here, a Python call less.
    direct = _DIRECT.get(inner)

    async def run(call: Call, telemetry: Telemetry | None = None) -> Any:
        # --- the stack's span (a stack's outermost run, telemetry on) -------------------------------------
        span = token = None
        if telemetry is not None:
            assert stack is not None
            span_start = _perf_counter()
            found = stack._named.get((call.tool, call.source))
            named = found if found is not None else stack._name(call)
            tracer = telemetry.tracer
            if tracer is not None:
                call_id = call._call_id  # Call.call_id inlined: the property is a call of its own
                if call_id is None:
                    call_id = call._call_id = _HEAD + str(next(_counter))  # new_call_id() inlined
                elif len(call_id) > MAX_OWN_VALUE_CHARS:
                    call_id = bounded(call_id)  # an LLM chose it: it may be huge
                # One dict made (a copy), where {**named[1], key: value} makes two.
                span_attributes = named[1].copy()
                span_attributes[GEN_AI_TOOL_CALL_ID] = call_id
                # Kind INTERNAL, the default.
                span = tracer.start_span(named[0], attributes=span_attributes)
                token = otel_context.attach(trace.set_span_in_context(span))
        outcome: names.Outcome = "success"
        error_type: str | None = None
        try:
            if call.limits or (call.layers and telemetry is not None):
                # Caller limits to admit (or, in the span, caller layers to run): the stack's own path.
                return await (stack._run(call) if telemetry is not None else generic(call))  # type: ignore[union-attr]
            if (logger is not None and call.listeners is not None) or (
                retry is not None and retry.policy.deadline_s is not None
            ):
                return await generic(call)
            # --- log_flow_events: subscribe, ask once whether the happy path's events are read -------------
            if logger is not None:
                listeners = call.listeners = [on_event]  # type: ignore[list-item]
                log_start = _perf_counter()
                if plain_logger and logger.latency_callback is None:
                    # Logger.isEnabledFor inlined: its answer is cached per level on the logger (until the
                    # logging configuration changes, which clears the cache); only a miss asks the method.
                    cache = loggers._cache
                    happy = cache.get(_INFO)
                    if happy is None or loggers.disabled:
                        happy = loggers.isEnabledFor(_INFO)
                    start_wanted = happy
                    if happy:
                        start_wanted = cache.get(_DEBUG)
                        if start_wanted is None or loggers.disabled:
                            start_wanted = loggers.isEnabledFor(_DEBUG)
                elif logger._stdlib and logger.latency_callback is None:
                    happy = start_wanted = loggers.isEnabledFor(_INFO)
                    if happy:
                        start_wanted = loggers.isEnabledFor(_DEBUG)
                else:
                    happy = logger._wanted(call, NODE_SUCCESS)
                    start_wanted = happy and logger._wanted(call, NODE_START)
            try:
                if logger is not None and start_wanted:
                    emit(call, None, NODE_START, 0.0)
                try:
                    # --- Retry: the first attempt --------------------------------------------------------
                    first: Exception | None = None
                    if retry is not None:
                        # The logger's reading when nothing ran since (a retried first attempt's span starts
                        # there): a clock reading less.
                        retry_start = (
                            log_start if logger is not None and not start_wanted else _perf_counter()
                        )
                        call.attempt = 1
                    try:
                        if limit is not None or timeout is not None:
                            loop = _running_loop()
                        # --- ConcurrencyLimit: admitted at once, or waits holding no slot ----------------
                        if limit is not None:
                            path = limit._alone
                            if limit._loop is not loop:
                                bind(limit, loop)
                            if limit._in_flight < limit._limit:  # admission.try_admit of a path of one
                                limit._in_flight += 1
                                counting = telemetry if telemetry is not None else instruments.current()
                                if counting is not None and counting.metrics is not None:
                                    if call.flow is None or not limit._parking.fair:
                                        limit._admitted[None] += 1  # limit._count_admitted inlined
                                    else:
                                        limit._count_admitted(call.flow)
                            else:
                                await _wait(path, call, loop)
                            observed = limit._observed
                            limit_start = loop.time() if observed else 0.0
                        error: BaseException | None = None
                        try:
                            # --- Timeout: this attempt's deadline (see Timeout.__call__) -----------------
                            if timeout is not None:
                                current = (
                                    _CURRENT_TASKS.get(loop)
                                    if _CURRENT_TASKS is not None
                                    else asyncio.current_task(loop)
                                )
                                if current is None:  # pragma: no cover - a layer always runs inside a task
                                    raise RuntimeError("Timeout must run inside an asyncio task")
                                task = current
                                held = timeout._deadlines
                                deadlines = (
                                    held
                                    if held is not None and held.loop is loop
                                    else timeout._deadlines_of(loop)
                                )
                                clock = deadlines.clock
                                timeout_start = clock()
                                expiry: _Expiry = _new(_Expiry)
                                expiry.task = task
                                expiry.deadline = timeout_start + timeout._seconds
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
                                if direct is not None:
                                    result = await direct(**call.arguments)
                                else:
                                    result = await inner(call)
                            except asyncio.CancelledError:
                                if timeout is not None and expiry.fired:
                                    expiry.fired = False
                                    if task.uncancel() <= expiry.cancelling:
                                        timeout._report(call, (clock() - timeout_start) * 1000)
                                        raise ToolTimeoutError(call.tool, timeout._seconds) from None
                                raise
                            finally:
                                if timeout is not None:
                                    expiry.task = None
                                    deadlines.live -= 1
                                    if queue:
                                        if queue[-1] is expiry:
                                            queue.pop()
                                        elif queue[0] is expiry:
                                            queue.popleft()
                                    if expiry.fired:
                                        task.uncancel()
                                        timeout._overran(
                                            call,
                                            clock() - timeout_start,
                                            "ignored the cancellation of its timeout",
                                        )
                                    elif clock() - timeout_start > timeout._seconds + _BLOCKED_MARGIN_S:
                                        timeout._overran(
                                            call,
                                            clock() - timeout_start,
                                            "returned late: the event loop was blocked (by this tool?)",
                                        )
                        except BaseException as exc:
                            error = exc
                            raise
                        finally:
                            if limit is not None:
                                if observed:
                                    limit.on_complete(call, loop.time() - limit_start, error)
                                if limit._waiting or limit._in_flight <= 0:
                                    admission.release(path)
                                else:  # admission.release of a path of one that nobody waits for
                                    limit._in_flight -= 1
                    except Exception as exc:
                        if (
                            retry is None
                            or retry.policy.max_attempts == 1
                            or not retry.is_retryable(exc, call)
                        ):
                            raise
                        first = exc
                    if first is not None:
                        assert retry is not None
                        result = await retry._retry(call, retry_next, first, retry_start, None)
                except asyncio.CancelledError as exc:
                    if logger is not None:
                        elapsed_ms = (_perf_counter() - log_start) * 1000
                        emit(call, None, NODE_ERROR, elapsed_ms, error=exc, cancelled=True)
                    raise
                except Exception as exc:
                    if logger is not None:
                        emit(call, None, NODE_ERROR, (_perf_counter() - log_start) * 1000, error=exc)
                    raise
                if logger is not None and (happy or len(listeners) > 1):  # or someone subscribed while it ran
                    emit(call, None, NODE_SUCCESS, (_perf_counter() - log_start) * 1000)
                return result
            finally:
                if logger is not None:
                    listeners.remove(on_event)  # type: ignore[arg-type]
        except BaseException as exc:
            if telemetry is not None:
                outcome = outcome_of(exc)
                error_type = type(exc).__qualname__
            raise
        finally:
            if telemetry is not None:
                assert stack is not None
                if span is not None:
                    otel_context.detach(token)  # type: ignore[arg-type]
                    if error_type is None:  # success: what the span was started with is all it says
                        pass
                    elif outcome == "cancelled":
                        span.set_attribute(OUTCOME, outcome)  # the caller's decision: no error, no ERROR
                    else:
                        span.set_attribute(ERROR_TYPE, error_type)
                        span.set_attribute(OUTCOME, outcome)
                        # The type, never the message: messages of user tools may carry data we must not export.
                        span.set_status(StatusCode.ERROR, error_type)
                    span.end()
                metrics = telemetry.metrics
                if metrics is not None:
                    # One record per call: the histogram's count is the call counter by outcome (the
                    # OpenTelemetry convention), so a separate counter would double the per-call metric cost.
                    attributes = (
                        named[2]
                        if error_type is None
                        else stack._failure_attributes(call, outcome, error_type)
                    )
                    metrics.tool_duration.record(_perf_counter() - span_start, attributes)

    # What runs: this function compiled for these layers (specialise.py), each "is this layer here" decided.
    # A stack's outermost run is called with the telemetry, the others without.
    return specialise(run, {"telemetry": stack is not None, "_CURRENT_TASKS": _CURRENT_TASKS is not None})


def wrapped_entry(stack: Stack) -> Callable[..., Awaitable[Any]]:
    """``Wrapped.__call__`` for a wrapped function's ``stack``: with telemetry on, the stack's outermost run
    (its span and its layers) in this coroutine's own frame, a frame less per call (telemetry off, it awaits
    the stack's telemetry-off run, as ``Wrapped.__call__`` does)."""
    free = stack._free
    made = template_of(stack._top)
    assert made is not None, "a stack's outermost run is a fused one"
    run, known, truth = made

    async def __call__(self: Wrapped, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs = self._signature.bind(*args, **kwargs).arguments
        call = make_call(self.name, kwargs, self.source, self.idempotent)
        telemetry = instruments.current()
        if telemetry is None:
            return await free(call)
        return await run(call, telemetry)

    # The call was just made: no caller limits, no caller layers, nobody subscribed to its events.
    facts = {**known, "call.listeners": False}
    # make_call inlined too: a Python call less.
    truth = {**truth, "call.limits": False, "call.layers": False}
    return specialise(run, facts, truth, entry=__call__, inline=make_call)
