"""The layer protocol: what a layer receives (:class:`Call`) and what it must look like (:class:`Middleware`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from penguiflow.middleware.concurrency import ConcurrencyLimit
    from penguiflow.middleware.events import FlowEvent

# Call ids must be unique across processes (they end up in traces) but cheap: a random process prefix and a
# counter cost far less than a uuid4 per call.
_PREFIX = os.urandom(4).hex()
_HEAD = f"call_{_PREFIX}_"
_counter = itertools.count(1)


def new_call_id() -> str:
    return _HEAD + str(next(_counter))


_new = object.__new__


class Call:
    """One tool invocation as it travels through a stack of layers.

    ``tool`` is the catalog name (``github.create_issue``), ``source`` the tool source (``github``; ``None`` for a
    plain wrapped function), ``arguments`` the keyword arguments. ``attempt`` starts at 1 and is advanced by the
    retry layer. ``call_id`` is the caller's id of the call (an LLM's tool call id), else a unique one made when
    first read. ``context`` is a scratch dict that layers may use to share state for this call. ``limits`` are
    extra limiters the *caller* imposes (the planner's Level 1 and 2), admitted by the engine together with the
    stack's own limiter, whatever the stack's layers (see ``penguiflow.middleware.admission``); ``layers`` are
    the caller's own layers (``ReactPlanner(middleware=...)``), run outside the tool source's layers, inside the
    call's span. ``idempotent`` says whether running the call twice is harmless: ``True``
    (a read, a PUT, an MCP tool annotated ``idempotentHint``), ``False`` (a POST, a tool that creates
    something) or ``None`` (unknown: a function you wrapped yourself); :class:`~penguiflow.middleware.Retry`
    re-sends a ``False`` call only after a failure proving the source did not process it. ``flow`` is the
    call's fairness key at ``fair`` limiters (a tenant, a planner run; a ``str`` also labels their per-flow
    metrics, so keep those few) and ``weight`` its flow's share of turns there.
    """

    # A plain class with slots, not a dataclass: one is made per call, and building it is a visible share of a
    # stack's cost (see docs/benchmarks.md, issue 17): the engine makes its own through :func:`make_call`.
    __slots__ = (
        "_admitted",
        "_call_id",
        "_point",
        "arguments",
        "attempt",
        "context",
        "flow",
        "idempotent",
        "layers",
        "limits",
        "listeners",
        "source",
        "tool",
        "weight",
    )

    tool: str
    arguments: dict[str, Any]
    source: str | None
    attempt: int
    context: dict[str, Any]
    limits: tuple[ConcurrencyLimit, ...]
    layers: tuple[Middleware, ...]
    idempotent: bool | None
    # Receivers of the FlowEvents the layers emit for this call; log_flow_events subscribes here.
    listeners: list[Callable[[FlowEvent], None]] | None
    flow: Hashable | None
    weight: int
    # Set by the stack running the call: the layer where ``limits`` are admitted, and whether they are now.
    _point: object
    _admitted: bool

    def __init__(
        self,
        tool: str,
        arguments: dict[str, Any],
        source: str | None = None,
        attempt: int = 1,
        call_id: str | None = None,
        context: dict[str, Any] | None = None,
        limits: tuple[ConcurrencyLimit, ...] = (),
        layers: tuple[Middleware, ...] = (),
        idempotent: bool | None = None,
        listeners: list[Callable[[FlowEvent], None]] | None = None,
        flow: Hashable | None = None,
        weight: int = 1,
    ) -> None:
        self.tool = tool
        self.arguments = arguments
        self.source = source
        self.attempt = attempt
        self._call_id = call_id
        self.context = {} if context is None else context
        self.limits = limits
        self.layers = layers
        self.idempotent = idempotent
        self.listeners = listeners
        self.flow = flow
        self.weight = weight
        self._point = None
        self._admitted = False

    @property
    def call_id(self) -> str:
        # Made when first read: with telemetry off and nobody listening to its events, no call reads it.
        call_id = self._call_id
        if call_id is None:
            call_id = self._call_id = new_call_id()
        return call_id

    @call_id.setter
    def call_id(self, value: str) -> None:
        self._call_id = value

    def __repr__(self) -> str:
        return (
            f"Call(tool={self.tool!r}, arguments={self.arguments!r}, source={self.source!r}, "
            f"attempt={self.attempt!r}, call_id={self.call_id!r}, idempotent={self.idempotent!r})"
        )


def make_call(
    tool: str,
    arguments: dict[str, Any],
    source: str | None = None,
    idempotent: bool | None = None,
    call_id: str | None = None,
    limits: tuple[ConcurrencyLimit, ...] = (),
    layers: tuple[Middleware, ...] = (),
    flow: Hashable | None = None,
    weight: int = 1,
) -> Call:
    """``Call(tool, arguments, ...)`` as the engine makes one per call: a class call with keywords goes through
    the interpreter's generic path (its keywords packed in a dict, ``__init__`` run in a frame of its own); a
    function filling the slots costs about half as much."""
    call: Call = _new(Call)
    call.tool = tool
    call.arguments = arguments
    call.source = source
    call.attempt = 1
    call._call_id = call_id
    call.context = {}
    call.limits = limits
    call.layers = layers
    call.idempotent = idempotent
    call.listeners = None
    call.flow = flow
    call.weight = weight
    call._point = None
    call._admitted = False
    return call


CallNext = Callable[[Call], Awaitable[Any]]
"""Runs the rest of the stack (the inner layers, then the tool) for a call."""

Handler = Callable[[Call], Awaitable[Any]]
"""The innermost step of a stack: performs the call (a transport, or a wrapped function)."""


class Middleware(Protocol):
    """A layer: an object (or plain ``async def``) taking the call and the rest of the stack.

    A layer may inspect or change ``call``, run ``await call_next(call)`` zero or more times, and return or
    raise whatever it decides. It must not hold state for one call on ``self``: use ``call.context``.
    """

    def __call__(self, call: Call, call_next: CallNext, /) -> Awaitable[Any]: ...


LatencyCallback = Callable[[str, float, "FlowEvent"], None]
"""``callback(event_type, latency_ms, event)``, as in the user guide's "Example Logging"."""
