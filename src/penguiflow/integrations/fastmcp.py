"""FastMCP servers: every incoming tool call through a penguiflow stack, on the server that many agents share.

``server.add_middleware(PenguiflowMiddleware(...))`` runs each ``tools/call`` through the layers: a
``ConcurrencyLimit`` bounds how many calls of the server (or, in ``tool_layers``, of one tool) run at once
whoever sends them; ``client_limit`` bounds each client on its own; ``Timeout`` and ``Retry`` apply to the tool
function; flow events, the ``execute_tool {tool}`` span and the metrics are recorded on the server.

The server's spans join the caller's trace. fastmcp's clients (penguiflow's MCP transport among them) put the
W3C ``traceparent``/``tracestate`` of the calling span in the request's ``_meta``; with fastmcp's telemetry on, its
``tools/call`` SERVER span continues that trace and penguiflow's ``execute_tool {tool}`` span nests under it. With
fastmcp's telemetry off (``FASTMCP_TELEMETRY_MODE=off``: no span, no propagation) the middleware reads the
``_meta`` itself and makes the caller's span the parent — the server's spans join the trace either way.

Clients are told apart by ``client_key(context)``: by default the ``client_id`` of the request's access token
(an authenticated server), else the ``client_id`` the client put in ``_meta``; a call with no key is not held to
a per-client limit. (MCP sessions are no key: under the 2026-07-28 protocol every request is its own.)

A tool's exception reaches the stack as fastmcp's ``ToolError`` with the real exception as its cause; importing
this module registers a classifier for ``fastmcp`` that classifies that cause, so ``Retry`` sees an upstream 503
or a timeout for what it is. Penguiflow's own errors (a timeout, a full queue) go back to the client as a
``ToolError`` with penguiflow's message, an ``isError`` result like any failed tool. A tool is ``idempotent``
when annotated ``readOnlyHint`` or ``idempotentHint``; otherwise ``Retry`` re-runs it only after a failure proving
it did not run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from penguiflow.errors import PenguiflowError
from penguiflow.integrations._calls import ToolStacks, mcp_idempotent
from penguiflow.middleware import Call, CallNext, ConcurrencyLimit, Failure, Middleware, classify
from penguiflow.middleware.failures import register_classifier
from penguiflow.middleware.validation import check_count, check_name

try:
    from fastmcp.exceptions import ToolError
    from fastmcp.server.dependencies import get_access_token
    from fastmcp.server.middleware import CallNext as FastMCPCallNext
    from fastmcp.server.middleware import Middleware as FastMCPMiddleware
    from fastmcp.server.middleware import MiddlewareContext
except ImportError as exc:  # pragma: no cover - fastmcp is a dependency
    raise ImportError(f"penguiflow.integrations.fastmcp needs fastmcp 4 ({exc})") from exc

__all__ = ["PenguiflowMiddleware", "default_client_key"]

ClientKey = Callable[[MiddlewareContext[Any]], str | None]

_CLIENT = "penguiflow.fastmcp.client"
_TRACE_KEYS = ("traceparent", "tracestate")


def default_client_key(context: MiddlewareContext[Any]) -> str | None:
    """The access token's ``client_id``, else the ``client_id`` in the request's ``_meta``, else ``None``."""
    token = get_access_token()
    if token is not None and token.client_id:
        return str(token.client_id)
    fastmcp_context = context.fastmcp_context
    client_id = fastmcp_context.client_id if fastmcp_context is not None else None
    return str(client_id) if client_id else None


def _request_meta(context: MiddlewareContext[Any]) -> Mapping[str, Any]:
    fastmcp_context = context.fastmcp_context
    request_context = fastmcp_context.request_context if fastmcp_context is not None else None
    meta = request_context.meta if request_context is not None else None
    return meta if isinstance(meta, Mapping) else {}


def _caller_context(context: MiddlewareContext[Any]) -> otel_context.Context | None:
    """The caller's trace context from ``_meta``, unless a span is already current (HTTP propagation)."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    meta = _request_meta(context)
    carrier = {key: str(meta[key]) for key in _TRACE_KEYS if meta.get(key)}
    return propagate.extract(carrier) if carrier else None


class _PerClientLimit:
    """A layer: one ``ConcurrencyLimit`` per client (``call.context[_CLIENT]``), made on a client's first call
    and dropped when it is idle again. All of them report under one limiter name (their gauges add up)."""

    def __init__(self, limit: int, name: str, max_queue: int | None) -> None:
        self.limit = check_count(limit, "client_limit", minimum=1)
        self.name = check_name(name, "client_limit_name")
        self.max_queue = max_queue
        self._limiters: dict[str, ConcurrencyLimit] = {}

    def idle(self) -> bool:
        """No client has a call running or queued (every per-client limiter has been dropped)."""
        return not self._limiters

    def limiter(self, client: str) -> ConcurrencyLimit:
        limiter = self._limiters.get(client)
        if limiter is None:
            limiter = ConcurrencyLimit(self.limit, name=self.name, max_queue=self.max_queue)
            self._limiters[client] = limiter
        return limiter

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        client = call.context.get(_CLIENT)
        if client is None:
            return await call_next(call)
        limiter = self.limiter(client)
        try:
            return await limiter(call, call_next)
        finally:
            if limiter.in_flight == 0 and limiter.queued == 0 and self._limiters.get(client) is limiter:
                del self._limiters[client]


class PenguiflowMiddleware(FastMCPMiddleware):
    """Runs every ``tools/call`` the server receives through ``layers`` (the first outermost).

    >>> server.add_middleware(PenguiflowMiddleware(
    ...     log_flow_events(), ConcurrencyLimit(20, name="server"), Timeout(30),
    ...     tool_layers={"search": [ConcurrencyLimit(5, name="search")]}, client_limit=4))

    ``tool_layers[name]`` run inside ``layers`` for that tool. ``client_limit`` holds each client (see
    ``client_key``) to that many calls at once, between ``layers`` and ``tool_layers``; ``client_max_queue``
    bounds each client's queue. ``source`` labels the calls (default: the server's name).
    """

    def __init__(
        self,
        *layers: Middleware,
        tool_layers: Mapping[str, Sequence[Middleware]] | None = None,
        client_limit: int | None = None,
        client_key: ClientKey = default_client_key,
        client_max_queue: int | None = None,
        client_limit_name: str = "mcp.client",
        source: str | None = None,
    ) -> None:
        self.per_client = (
            None
            if client_limit is None
            else _PerClientLimit(client_limit, client_limit_name, client_max_queue)
        )
        outer = (*layers, self.per_client) if self.per_client is not None else layers
        self.stacks = ToolStacks(outer, tool_layers, source=source)
        self.client_key = client_key

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: FastMCPCallNext[Any, Any]
    ) -> Any:
        params = context.message
        name: str = params.name

        async def step(arguments: dict[str, Any]) -> Any:
            changed = (
                context if arguments == (params.arguments or {}) else _with_arguments(context, arguments)
            )
            return await call_next(changed)

        fastmcp_context = context.fastmcp_context
        call = self.stacks.call(
            name,
            params.arguments or {},
            step,
            idempotent=await self._idempotent(context, name),
            source=fastmcp_context.fastmcp.name if fastmcp_context is not None else None,
        )
        client = self.client_key(context)
        if client is not None:
            call.context[_CLIENT] = client
        parent = _caller_context(context)
        token = otel_context.attach(parent) if parent is not None else None
        try:
            return await self.stacks.stack(name)(call)
        except PenguiflowError as exc:
            raise ToolError(str(exc)) from exc
        finally:
            if token is not None:
                otel_context.detach(token)

    @staticmethod
    async def _idempotent(context: MiddlewareContext[Any], name: str) -> bool:
        fastmcp_context = context.fastmcp_context
        if fastmcp_context is None:
            return False
        try:
            tool = await fastmcp_context.fastmcp.get_tool(name)
        except Exception:  # an unknown or hidden tool: fastmcp answers the call itself
            return False
        return mcp_idempotent(getattr(tool, "annotations", None)) if tool is not None else False


def _with_arguments(context: MiddlewareContext[Any], arguments: dict[str, Any]) -> MiddlewareContext[Any]:
    return context.copy(message=context.message.model_copy(update={"arguments": arguments}))


def classify_tool_error(exc: BaseException) -> Failure | None:
    """fastmcp wraps a tool's exception in ``ToolError``: what it is, is what its cause is."""
    cause = exc.__cause__
    if isinstance(exc, ToolError) and cause is not None:
        return classify(cause)
    return None


register_classifier("fastmcp", classify_tool_error)
