"""The one interface every transport implements. A transport knows nothing of limits, retries or telemetry
layers: it discovers tools and performs one call, raising the typed errors of :mod:`penguiflow.errors`."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from penguiflow.middleware.call import Call

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""RFC 9110 §9.2.2: HTTP methods whose repetition has the effect of one request (POST and PATCH are not)."""

CURRENT_CALL: ContextVar[Call | None] = ContextVar("penguiflow_current_call", default=None)
"""The call a transport is performing, set by ``ToolNode`` around ``Transport.call``. Its ``context`` is the
same dict for every attempt of one call, so a transport can keep per-call state across retries (HTTP: its
``Idempotency-Key``); a transport that gets notifications for a call (MCP progress) reports them as flow
events of that call."""

MAX_DETAIL: Final = 200
"""How much of a server's own words (an error body, an error message) goes into one of our error messages."""


def shorten(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line, at most ``limit`` characters. Redact secrets *before* shortening: a secret cut in
    two is no longer recognised."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_cause(exc: BaseException, redact: Callable[[str], str]) -> BaseException | None:
    """``exc``, to chain under a typed error, unless it (or anything chained under it) quotes a secret —
    ``redact`` changes its text — in which case ``None``: a traceback would print the secret. Raise the typed
    error *outside* the ``except`` block then, or Python chains ``exc`` as its ``__context__`` anyway."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for text in (str(current), repr(current)):
            if redact(text) != text:
                return None
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return exc


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as its source describes it: source-local ``name``, description and JSON schema of its arguments.

    ``idempotent``: whether running a call twice is harmless, as the source tells (an HTTP method, an MCP
    tool's ``readOnlyHint``/``idempotentHint``); ``False`` when it does not say. It decides whether ``Retry``
    may re-send a call whose fate is unknown (a timeout, a lost connection). ``title``, ``annotations`` and
    ``output_schema`` are the source's own words, copied to the catalog entry.
    """

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    idempotent: bool | None = None
    title: str | None = field(default=None, kw_only=True)
    annotations: dict[str, Any] = field(default_factory=dict, kw_only=True)
    output_schema: dict[str, Any] | None = field(default=None, kw_only=True)


class Transport(Protocol):
    async def connect(self) -> list[ToolSpec]:
        """Open the connection (idempotent) and return the tools the source offers."""
        ...

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Run one call of source-local ``tool``; raise :class:`~penguiflow.errors.ToolError` subclasses."""
        ...

    async def close(self) -> None:
        """Release every resource; a later ``connect()`` may open it again."""
        ...
