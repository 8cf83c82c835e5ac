"""Composition: a :class:`Stack` runs a call through its layers to a handler, inside one ``execute_tool`` span.

The stack, not a layer, owns the call's span and its outcome metrics, so every call is traced and counted
exactly once whatever layers it has; and it places the admission of the caller's limits, so no layers escape them. Layers add their own child spans, span events and metrics inside it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from penguiflow.middleware.admission_point import CallerLimits, place_admission
from penguiflow.middleware.call import Call, CallNext, Handler, Middleware, make_call
from penguiflow.middleware.fused import calls_function, chain, fuse, wrapped_entry
from penguiflow.telemetry import instruments, names
from penguiflow.telemetry.bounds import bounded

# Per tool of a stack: its span name, its span attributes but the call id, its metric attributes on success.
_Named = tuple[str, dict[str, Any], dict[str, Any]]
# Tools whose names and attributes a stack keeps built (a catalog is far smaller; this bounds misuse).
_MAX_NAMED = 1024


class Stack:
    """Layers around a handler. ``await stack(call)`` runs one call; the stack itself is stateless."""

    def __init__(
        self, handler: Handler, layers: Sequence[Middleware] = (), *, tool_type: str = "function"
    ) -> None:
        self.handler = handler
        self.layers: tuple[Middleware, ...] = tuple(layers)
        self.tool_type = tool_type
        # The engine, not the layers, decides where the caller's limits are admitted (see place_admission).
        chained, self._point = place_admission(self.layers)
        self._entry = chain(handler, chained)
        # A call with no caller limits (most calls of a native tool) has nothing to admit: what the engine
        # inserted and a CallerLimits pass it through, so it skips them (one coroutine a call each).
        free = [layer for layer in self.layers if type(layer) is not CallerLimits]
        # The calls without caller limits run the built-in layers fused (one frame, see fused.py); the
        # outermost run also holds each call's span.
        self._free, self._top = fuse(handler, free, self)
        self._named: dict[tuple[str, str | None], _Named] = {}
        self._attributes: dict[tuple[str, str | None, str, str], dict[str, Any]] = {}

    def __call__(self, call: Call) -> Awaitable[Any]:
        # A plain function returning the awaitable, not a coroutine of its own: a queued call then holds one
        # coroutine frame less (~220 bytes with 100,000 calls queued, see benchmarks/scale.py).
        telemetry = instruments.current()
        if telemetry is not None:
            return self._top(call, telemetry)  # the span, around its layers or _run
        if call.limits or call.layers:
            return self._run(call)
        return self._free(call)

    def _run(self, call: Call) -> Awaitable[Any]:
        entry: CallNext
        if not call.limits:
            entry = self._free
        else:
            entry = self._entry
            call._point = self._point
        # The caller's layers (a planner's middleware) go outside this source's own: they see its retries.
        if call.layers:
            return chain(entry, call.layers)(call)
        return entry(call)

    def _name(self, call: Call) -> _Named:
        """The span name, span attributes (but the call id) and success metric attributes of a tool, built
        once: they are the same for every call of it."""
        if len(self._named) >= _MAX_NAMED:
            self._named.clear()  # a stack serves a catalog; this only bounds a caller inventing names
        tool = bounded(call.tool)  # a server chose the name: it may be huge
        source = call.source or ""
        named = (
            names.SPAN_EXECUTE_TOOL.format(tool=tool),
            {
                names.GEN_AI_OPERATION_NAME: names.OPERATION_EXECUTE_TOOL,
                names.GEN_AI_TOOL_NAME: tool,
                names.GEN_AI_TOOL_TYPE: self.tool_type,
                names.TOOL_SOURCE: source,
            },
            {names.GEN_AI_TOOL_NAME: tool, names.TOOL_SOURCE: source, names.OUTCOME: "success"},
        )
        self._named[(call.tool, call.source)] = named
        return named

    def _failure_attributes(self, call: Call, outcome: str, error_type: str) -> dict[str, Any]:
        key = (call.tool, call.source, outcome, error_type)
        attributes = self._attributes.get(key)
        if attributes is None:
            if len(self._attributes) >= _MAX_NAMED:
                self._attributes.clear()
            attributes = {
                names.GEN_AI_TOOL_NAME: bounded(call.tool),
                names.TOOL_SOURCE: call.source or "",
                names.OUTCOME: outcome,
                names.ERROR_TYPE: error_type,
            }
            self._attributes[key] = attributes
        return attributes


def function_handler(fn: Callable[..., Any]) -> Handler:
    """A handler calling ``fn(**call.arguments)``; a sync ``fn`` runs in a worker thread.

    A timeout cannot stop a thread: a sync function that times out releases its slot but runs on to its end.
    """
    if inspect.iscoroutinefunction(fn):

        def run_async(call: Call) -> Awaitable[Any]:
            # The function's own coroutine, not one awaiting it: a frame less per call.
            return fn(**call.arguments)  # type: ignore[no-any-return]

        calls_function(run_async, fn)
        return run_async

    async def run_sync(call: Call) -> Any:
        return await asyncio.to_thread(fn, **call.arguments)

    return run_sync


class Wrapped:
    """What :func:`wrap` returns: an async callable with the wrapped function's signature, run through layers."""

    def __init__(
        self,
        fn: Callable[..., Any],
        layers: Sequence[Middleware],
        name: str,
        source: str | None,
        idempotent: bool | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.idempotent = idempotent
        self.stack = Stack(function_handler(fn), layers)
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)
        if type(self).__call__ is Wrapped.__call__:  # a subclass's own __call__ stays what it is
            self._own_class()

    def _own_class(self) -> None:
        """Give this instance a class of its own whose ``__call__`` is :meth:`__call__` with the stack's
        outermost run in its frame, compiled for these layers (``fused.wrapped_entry``): a coroutine frame less
        per call. The type's ``__call__`` is what calling an instance runs, hence a class; and it stays an
        ``async def``, which frameworks inspect to know a tool is async."""
        entry = wrapped_entry(self.stack)
        entry.__qualname__ = f"{type(self).__qualname__}.__call__"
        namespace = {
            "__call__": entry,
            "__module__": type(self).__module__,
            "__qualname__": type(self).__qualname__,
        }
        self.__class__ = type(type(self).__name__, (type(self),), namespace)

    @property
    def layers(self) -> tuple[Middleware, ...]:
        return self.stack.layers

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # What an instance's own __call__ (see _own_class) does, in two frames.
        if args:
            kwargs = self._signature.bind(*args, **kwargs).arguments
        call = make_call(self.name, kwargs, self.source, self.idempotent)
        # Stack.__call__ inlined (a call without caller limits or layers): a Python call less per call.
        telemetry = instruments.current()
        if telemetry is not None:
            return await self.stack._top(call, telemetry)
        return await self.stack._free(call)


def wrap(
    fn: Callable[..., Any],
    *layers: Middleware,
    name: str | None = None,
    source: str | None = None,
    idempotent: bool | None = None,
) -> Wrapped:
    """Run ``fn`` through ``layers``, the first one outermost: how a user puts an existing tool behind a stack.

    ``idempotent=False`` tells ``Retry`` that ``fn`` must not run twice: it is then re-sent only after a failure
    proving it did not run (see :mod:`penguiflow.middleware.retry`).

    >>> fetch = wrap(fetch_page, log_flow_events(), Retry(RetryPolicy()), ConcurrencyLimit(5, name="web"),
    ...              Timeout(10), name="web.fetch")
    >>> await fetch("https://example.org")
    """
    return Wrapped(fn, layers, name or str(getattr(fn, "__qualname__", repr(fn))), source, idempotent)
