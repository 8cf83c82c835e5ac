"""``ToolNode``: one external tool source (MCP server, HTTP API, UTCP manual) behind its own layer stack.

The node owns the source's Level 3 limit: every tool it discovers shares one stack, so ``max_concurrency``
bounds the calls to the *source*, whichever of its tools they call. Constructing a node touches no network and
imports no transport; ``connect()`` (or ``async with node:`` or the first ``call()``) opens the transport and
discovers the tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from opentelemetry.trace import StatusCode

from penguiflow.errors import ConfigurationError, PenguiflowError, ToolNotFoundError
from penguiflow.middleware import (
    AdaptiveConcurrencyLimit,
    ConcurrencyLimit,
    Middleware,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    log_flow_events,
)
from penguiflow.middleware.call import Call
from penguiflow.registry import ModelRegistry
from penguiflow.telemetry import get_tracer, names
from penguiflow.tools.catalog import ToolEntry
from penguiflow.tools.config import ExternalToolConfig, TransportType
from penguiflow.tools.hooks import (
    ClientHooks,
    ElicitationHandler,
    ProgressCallback,
    SamplingHandler,
    node_hooks,
)
from penguiflow.tools.transports.base import CURRENT_CALL
from penguiflow.tools.validation import with_validation

if TYPE_CHECKING:
    from penguiflow.tools.transports.base import ToolSpec, Transport

__all__ = ["NotConnectedError", "PendingTools", "ToolNode"]

_REQUEST = "penguiflow.mcp.request"  # Call.context key: the MCP request (resources/prompts) a call stands for

# Transports by module and class name, imported only when a node connects: constructing a node for a transport
# whose optional dependencies are missing must work (the guide builds nodes before anything runs).
_TRANSPORTS: dict[TransportType, tuple[str, str]] = {
    TransportType.HTTP: ("penguiflow.tools.transports.http", "HttpTransport"),
    TransportType.MCP: ("penguiflow.tools.transports.mcp", "McpTransport"),
    TransportType.UTCP: ("penguiflow.tools.transports.utcp", "UtcpTransport"),
}


class NotConnectedError(PenguiflowError, RuntimeError):
    """The node has not discovered its tools yet: ``await node.connect()`` (or ``async with node:``) first."""


def load_transport(config: ExternalToolConfig, hooks: ClientHooks | None = None) -> Transport:
    """A new transport for ``config``; a transport that cannot be imported raises ``ConfigurationError``.
    ``hooks`` go to the transports that take them (MCP)."""
    module_name, class_name = _TRANSPORTS[config.transport]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            "transport",
            f"{config.name}: the {config.transport.value} transport is not available ({exc}); "
            "for UTCP install the extra: pip install 'penguiflow[utcp]'",
        ) from exc
    cls = getattr(module, class_name)
    transport: Transport = cls(config, hooks) if config.transport is TransportType.MCP else cls(config)
    return transport


class PendingTools(ToolEntry):
    """The tools of a node that has not connected yet, as one catalog entry named ``{node}.*``.

    :meth:`resolve` connects the node and returns its real entries; the planner calls it before its first run.
    Invoking it directly raises :class:`NotConnectedError`.
    """

    def __init__(self, node: ToolNode) -> None:
        super().__init__(
            f"{node.name}.*",
            f"the tools of {node.name}, discovered when it connects",
            {"type": "object"},
            node.name,
            node.stack,
        )
        self.node = node

    async def resolve(self) -> list[ToolEntry]:
        """Connect the node (once, whoever asks) and return its tools."""
        return await self.node.connect()

    async def invoke(self, arguments: Mapping[str, Any], **_: Any) -> Any:
        raise NotConnectedError(
            f"{self.node.name}: tools not discovered yet; await node.connect() (or use 'async with node:'), "
            "or give the entries to a ReactPlanner, which connects the node at its first run"
        )


class ToolNode:
    """The tools of one external source, each run through the node's stack.

    ``layers`` replaces :meth:`default_layers` (to reorder them or add plug-in layers such as a Redis limit).
    Argument validation always runs first, inside any leading ``log_flow_events`` layers, whatever ``layers``
    says: a bad call never reaches the network.

    For what a *server* sends or asks (MCP): ``progress_callback(event)`` gets every ``node_progress`` flow
    event; ``elicitation_handler`` and ``sampling_handler`` answer the server's requests for user input and
    for an LLM completion (without one the capability is not declared, so the server neither asks nor lists the
    tools that need it; see :mod:`penguiflow.tools.hooks`); ``roots`` are the ``file://`` roots offered to the
    server (none by default); ``oauth`` is an
    :class:`~penguiflow.tools.McpOAuth` or :class:`~penguiflow.tools.McpClientCredentials` for an MCP server
    over HTTP that uses OAuth 2.1.

    >>> async with ToolNode(ExternalToolConfig(name="github", transport=TransportType.MCP,
    ...                                        connection="npx -y @modelcontextprotocol/server-github")) as gh:
    ...     catalog = gh.get_tools()              # github.create_issue, github.list_repos, ...
    ...     await gh.call("github.get_user", {"username": "octocat"})
    """

    def __init__(
        self,
        config: ExternalToolConfig,
        registry: ModelRegistry | None = None,
        *,
        layers: Sequence[Middleware] | None = None,
        progress_callback: ProgressCallback | None = None,
        elicitation_handler: ElicitationHandler | None = None,
        sampling_handler: SamplingHandler | None = None,
        roots: Sequence[str] | None = None,
        oauth: Any = None,
    ) -> None:
        if not isinstance(config, ExternalToolConfig):
            raise ConfigurationError("config", f"must be an ExternalToolConfig, got {type(config).__name__}")
        self.config = config
        self.hooks = node_hooks(
            config, progress_callback, elicitation_handler, sampling_handler, roots, oauth
        )
        self.registry = registry if registry is not None else ModelRegistry()
        self._layers: tuple[Middleware, ...] = tuple(
            self.default_layers(config) if layers is None else layers
        )
        self._stack = Stack(self._handle, with_validation(self._layers, self.registry), tool_type="extension")
        self._transport: Transport | None = None
        self._entries: dict[str, ToolEntry] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def default_layers(config: ExternalToolConfig) -> list[Middleware]:
        """The default stack for ``config``, outermost first: ``log_flow_events → Retry → ConcurrencyLimit →
        Timeout``; with ``adaptive`` set, an ``AdaptiveConcurrencyLimit`` (ceiling ``max_concurrency``) takes the
        ``ConcurrencyLimit``'s place. That limiter (Level 3) is the admission point: a planner's Levels 1 and 2
        are admitted with it, in one decision."""
        policy = config.adaptive_policy
        limit: ConcurrencyLimit = (
            ConcurrencyLimit(config.max_concurrency, name=config.name, max_queue=config.max_queue)
            if policy is None
            else AdaptiveConcurrencyLimit(
                name=config.name,
                max_limit=config.max_concurrency,
                algorithm=policy,
                max_queue=config.max_queue,
            )
        )
        return [
            log_flow_events(),
            Retry(config.retry_policy),
            limit,
            Timeout(config.timeout_s),
        ]

    # --- configured limits -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def max_concurrency(self) -> int:
        return self.config.max_concurrency

    @property
    def timeout_s(self) -> float:
        return self.config.timeout_s

    @property
    def retry_policy(self) -> RetryPolicy:
        return self.config.retry_policy

    @property
    def limiter(self) -> ConcurrencyLimit | None:
        """The node's ``ConcurrencyLimit`` layer (its live ``in_flight``/``queued``), if the stack has one."""
        for layer in self._layers:
            if isinstance(layer, ConcurrencyLimit):
                return layer
        return None

    @property
    def layers(self) -> tuple[Middleware, ...]:
        return self._layers

    @property
    def stack(self) -> Stack:
        return self._stack

    @property
    def transport(self) -> Transport | None:
        """The open transport, while connected."""
        return self._transport

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def __repr__(self) -> str:
        return (
            f"ToolNode(name={self.name!r}, transport={self.config.transport.value!r}, "
            f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s:g}, connected={self.connected})"
        )

    # --- life cycle ----------------------------------------------------------------------------------------
    async def connect(self) -> list[ToolEntry]:
        """Open the transport and discover the tools (once; concurrent callers wait for the same connect)."""
        if self._transport is not None:
            return self.get_tools()
        async with self._lock:
            if self._transport is None:
                with get_tracer().start_as_current_span(
                    names.SPAN_CONNECT.format(source=self.name),
                    attributes={
                        names.TOOL_SOURCE: self.name,
                        names.TOOL_TRANSPORT: self.config.transport.value,
                    },
                    record_exception=False,  # the type only: a message may quote the server's reply
                    set_status_on_exception=False,
                ) as span:
                    try:
                        transport, specs = await self._discover()
                    except asyncio.CancelledError:
                        span.set_attribute(names.OUTCOME, "cancelled")  # the caller's decision, not an error
                        raise
                    except BaseException as exc:
                        span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
                        span.set_status(StatusCode.ERROR, type(exc).__qualname__)
                        raise
                    self._adopt(transport, specs)
                    span.set_attribute(names.TOOLS_DISCOVERED, len(self._entries))
        return self.get_tools()

    async def _discover(self) -> tuple[Transport, list[ToolSpec]]:
        module_name = _TRANSPORTS[self.config.transport][0]
        if module_name not in sys.modules:  # a first import (httpx, fastmcp...) takes ~0.5 s: not on the loop
            with contextlib.suppress(ImportError):  # load_transport reports it
                await asyncio.to_thread(importlib.import_module, module_name)
        transport = load_transport(self.config, self.hooks)
        try:
            return transport, await transport.connect()
        except BaseException:
            with contextlib.suppress(Exception):  # the connect error is the one to report
                await transport.close()
            raise

    def _adopt(self, transport: Transport, specs: list[ToolSpec]) -> None:
        """Make ``specs`` (filtered) the node's entries, registered in the registry, and ``transport`` its own."""
        patterns = self.config.tool_filter
        entries: dict[str, ToolEntry] = {}
        for spec in specs:
            if patterns is not None and not any(fnmatch.fnmatchcase(spec.name, p) for p in patterns):
                continue
            name = f"{self.name}.{spec.name}"
            self.registry.register(name, spec.input_schema, defer_check=True)  # checked before its first call
            entries[name] = ToolEntry(
                name,
                spec.description,
                spec.input_schema,
                self.name,
                self._stack,
                idempotent=spec.idempotent,
                title=spec.title,
                annotations=spec.annotations,
                output_schema=spec.output_schema,
            )
        for stale in set(self._entries) - set(entries):
            self.registry.unregister(stale)
        self._entries = entries
        self._transport = transport

    async def close(self) -> None:
        """Close the transport. The entries stay listed; the next call connects again."""
        async with self._lock:
            transport, self._transport = self._transport, None
            if transport is not None:
                await transport.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- tools -----------------------------------------------------------------------------------------------
    def get_tools(self) -> list[ToolEntry]:
        """The discovered tools as catalog entries named ``{name}.{tool}``.

        Before the first ``connect()`` the tools are not known yet: the list then holds one
        :class:`PendingTools` entry standing for the whole source, which a planner replaces by the real tools,
        connecting the node, at its first run — so ``ReactPlanner(catalog=[*node.get_tools()])`` works right
        after construction, as the user guide writes it. Never an empty list, which would silently give a
        planner no tools.
        """
        if self._transport is None and not self._entries:
            return [PendingTools(self)]
        return list(self._entries.values())

    def get_tool(self, name: str) -> ToolEntry:
        """The entry of ``name`` (catalog name ``github.create_issue`` or source-local ``create_issue``)."""
        entry = self._entries.get(name) or self._entries.get(f"{self.name}.{name}")
        if entry is None:
            raise ToolNotFoundError(f"{self.name}: no tool {name!r}", tool=name)
        return entry

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
        limits: tuple[ConcurrencyLimit, ...] = (),
        layers: tuple[Middleware, ...] = (),
    ) -> Any:
        """Run one call of ``tool`` through the node's stack, connecting first if needed."""
        if self._transport is None:
            await self.connect()
        entry = self.get_tool(tool)
        return await entry.invoke(arguments or {}, call_id=call_id, limits=limits, layers=layers)

    # --- MCP resources and prompts: through the same stack (span, limits, timeout, retries) as tool calls -------
    async def list_resources(self) -> list[dict[str, Any]]:
        """The server's resources, in MCP's JSON shape (``uri``, ``name``, ``mimeType`` …). MCP only."""
        result: list[dict[str, Any]] = await self._request("resources/list", {})
        return result

    async def read_resource(self, uri: str) -> list[dict[str, Any]]:
        """The contents of resource ``uri`` (``text`` or base64 ``blob``, with ``mimeType``). MCP only."""
        result: list[dict[str, Any]] = await self._request("resources/read", {"uri": uri})
        return result

    async def list_prompts(self) -> list[dict[str, Any]]:
        """The server's prompts, in MCP's JSON shape (``name``, ``arguments`` …). MCP only."""
        result: list[dict[str, Any]] = await self._request("prompts/list", {})
        return result

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Prompt ``name`` filled with ``arguments``: ``{"description", "messages": [...]}``. MCP only."""
        result: dict[str, Any] = await self._request(
            "prompts/get", {"name": name, "arguments": dict(arguments or {})}
        )
        return result

    async def _request(self, method: str, arguments: dict[str, Any]) -> Any:
        if self.config.transport is not TransportType.MCP:
            raise ConfigurationError(
                "transport",
                f"{self.name}: resources and prompts are MCP's, not {self.config.transport.value}'s",
            )
        if self._transport is None:
            await self.connect()
        call = Call(f"{self.name}.{method}", arguments, source=self.name, idempotent=True)
        call.context[_REQUEST] = method
        return await self._stack(call)

    async def _handle(self, call: Call) -> Any:
        transport = self._transport
        if transport is None:  # closed after the call entered the stack: reopen rather than fail
            await self.connect()
            transport = self._transport
            assert transport is not None
        method = call.context.get(_REQUEST)
        if method is not None:  # set by _request only: a tool's own name never routes here
            return await transport.request(method, call.arguments)  # type: ignore[attr-defined]
        # The call, for what the transport keeps per call (its context, across retries) and the notifications
        # it gets about it (MCP progress).
        current = CURRENT_CALL.set(call)
        try:
            return await transport.call(call.tool[len(self.name) + 1 :], call.arguments)
        finally:
            CURRENT_CALL.reset(current)
