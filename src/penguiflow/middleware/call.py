"""The layer protocol: what a layer receives (:class:`Call`) and what it must look like (:class:`Middleware`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from penguiflow.middleware.concurrency import ConcurrencyLimit
    from penguiflow.middleware.events import FlowEvent

# Call ids must be unique across processes (they end up in traces) but cheap: a random process prefix and a
# counter cost far less than a uuid4 per call.
_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def new_call_id() -> str:
    return f"call_{_PREFIX}_{next(_counter)}"


@dataclass(slots=True, eq=False)
class Call:
    """One tool invocation as it travels through a stack of layers.

    ``tool`` is the catalog name (``github.create_issue``), ``source`` the tool source (``github``; ``None`` for a
    plain wrapped function), ``arguments`` the keyword arguments. ``attempt`` starts at 1 and is advanced by the
    retry layer. ``context`` is a scratch dict that layers may use to share state for this call. ``limits`` are
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

    tool: str
    arguments: dict[str, Any]
    source: str | None = None
    attempt: int = 1
    call_id: str = field(default_factory=new_call_id)
    context: dict[str, Any] = field(default_factory=dict)
    limits: tuple[ConcurrencyLimit, ...] = ()
    layers: tuple[Middleware, ...] = ()
    idempotent: bool | None = None
    # Receivers of the FlowEvents the layers emit for this call; log_flow_events subscribes here.
    listeners: list[Callable[[FlowEvent], None]] | None = None
    flow: Hashable | None = None
    weight: int = 1
    # Set by the stack running the call: the layer where ``limits`` are admitted, and whether they are now.
    _point: object = field(default=None, init=False, repr=False)
    _admitted: bool = field(default=False, init=False, repr=False)


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
