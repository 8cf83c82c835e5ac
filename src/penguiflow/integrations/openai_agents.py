"""OpenAI Agents SDK: ``FunctionTool``\\ s and MCP servers behind a penguiflow stack, a catalog as ``FunctionTool``\\ s.

Three pieces (``pip install 'penguiflow[openai-agents]'``):

- :func:`wrap_function_tool`: a ``FunctionTool`` (``@function_tool`` or hand-made) whose ``on_invoke_tool`` runs
  through the stack. The SDK runs a turn's tool calls concurrently with no limit; the stack's limit is one.
- :func:`wrap_mcp_server`: an ``MCPServer`` (stdio, SSE, streamable HTTP) whose ``call_tool`` runs through the
  stack; everything else is the wrapped server's. An MCP tool is ``idempotent`` when annotated ``readOnlyHint``
  or ``idempotentHint`` (the rule of penguiflow's own MCP transport).
- :func:`function_tools`: the entries of a ``ToolNode`` (or any catalog) as ``FunctionTool``\\ s, each call through
  the entry's own stack.

Failures: ``@function_tool`` turns a tool's exception into a message for the model (its
``failure_error_function``) *inside* ``on_invoke_tool``, where no stack could see it. The wrapper therefore runs
the tool with that conversion off, so ``Retry`` and the outcome metrics see the real exception, and applies the
tool's own ``failure_error_function`` once the stack has given up: the model gets the message it would have got,
and a tool created with ``failure_error_function=None`` fails the run, as before (the SDK's ``UserError``, its
``__cause__`` penguiflow's typed error: ``ToolTimeoutError``, the tool's own exception). An MCP tool's ``isError`` result
is a result, not an exception: it is not retried.

Spans: the SDK traces with its own tracing (``function_span``, exported to OpenAI unless disabled), not
OpenTelemetry, so nothing duplicates penguiflow's ``execute_tool {tool}`` span; it is a child of the
OpenTelemetry span current when ``Runner.run`` was called, one per tool call, ``gen_ai.tool.call.id`` the model's
call id. Calls through a wrapped MCP server get fresh ids (the SDK does not pass the call id to the server).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from penguiflow.integrations._calls import ToolStacks, mcp_idempotent
from penguiflow.integrations._catalog import Catalog, catalog_entries, function_name
from penguiflow.middleware import Middleware
from penguiflow.tools.catalog import ToolEntry

try:
    from agents import FunctionTool, RunContextWrapper, default_tool_error_function
    from agents.mcp import MCPServer
    from agents.tool import (
        resolve_function_tool_failure_error_function,
        set_function_tool_failure_error_function,
    )
    from agents.tool_context import ToolContext
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "penguiflow.integrations.openai_agents needs the OpenAI Agents SDK: "
        f"pip install 'penguiflow[openai-agents]' ({exc})"
    ) from exc

__all__ = ["PenguiflowMCPServer", "function_tools", "wrap_function_tool", "wrap_mcp_server"]

ErrorFunction = Callable[[RunContextWrapper[Any], Exception], Any]
"""The SDK's ``ToolErrorFunction``: the message the model gets for a failed call (may be async)."""


def _arguments(input_json: str) -> dict[str, Any]:
    try:
        parsed = json.loads(input_json) if input_json else {}
    except ValueError:
        return {}  # the tool reports malformed arguments itself, as the SDK does
    return parsed if isinstance(parsed, dict) else {}


async def _as_message(error_function: ErrorFunction, ctx: ToolContext[Any], exc: Exception) -> Any:
    message = error_function(ctx, exc)
    return await message if inspect.isawaitable(message) else message


# --- FunctionTool --------------------------------------------------------------------------------------------


def wrap_function_tool(
    tool: FunctionTool,
    *layers: Middleware,
    source: str | None = None,
    idempotent: bool | None = None,
) -> FunctionTool:
    """A copy of ``tool`` whose every invocation runs through ``layers`` (the first outermost)."""
    raising = set_function_tool_failure_error_function(dataclasses.replace(tool), None)
    stacks = ToolStacks(layers, source=source, idempotent=idempotent)

    async def on_invoke_tool(ctx: ToolContext[Any], input_json: str) -> Any:
        arguments = _arguments(input_json)

        async def step(changed: dict[str, Any]) -> Any:
            sent = input_json if changed == arguments else json.dumps(changed)
            return await raising.on_invoke_tool(ctx, sent)

        try:
            return await stacks.run(tool.name, arguments, step, call_id=ctx.tool_call_id)
        except Exception as exc:
            error_function = resolve_function_tool_failure_error_function(tool, ctx)
            if error_function is None:
                raise
            return await _as_message(error_function, ctx, exc)

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)


# --- MCP servers ---------------------------------------------------------------------------------------------


class PenguiflowMCPServer(MCPServer):
    """``server`` with every ``call_tool`` through a stack; all the rest (connection, listing, approval and
    failure policies) is ``server``'s own. Build it with :func:`wrap_mcp_server`."""

    def __init__(self, server: MCPServer, stacks: ToolStacks) -> None:
        # No ``MCPServer.__init__``: its settings are the wrapped server's, read through ``__getattr__``.
        self._server = server
        self._stacks = stacks

    def __getattr__(self, name: str) -> Any:
        if name in ("_server", "_stacks"):  # not set yet (copy, pickle): never recurse
            raise AttributeError(name)
        return getattr(self._server, name)

    @property
    def wrapped(self) -> MCPServer:
        return self._server

    @property
    def name(self) -> str:
        return self._server.name

    async def connect(self) -> None:
        await self._server.connect()  # type: ignore[no-untyped-call]

    async def cleanup(self) -> None:
        await self._server.cleanup()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> PenguiflowMCPServer:
        await self._server.__aenter__()  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._server.__aexit__(*exc_info)  # type: ignore[attr-defined]

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> Any:
        return await self._server.list_tools(run_context, agent)

    @property
    def cached_tools(self) -> Any:
        return self._server.cached_tools

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> Any:
        async def step(changed: dict[str, Any]) -> Any:
            return await self._server.call_tool(tool_name, changed, meta)

        return await self._stacks.run(
            tool_name, arguments or {}, step, idempotent=self._idempotent(tool_name)
        )

    def _idempotent(self, tool_name: str) -> bool | None:
        if self._stacks.idempotent is not None:
            return self._stacks.idempotent
        for listed in self._server.cached_tools or ():
            if listed.name == tool_name:
                return mcp_idempotent(listed.annotations)
        return False  # an MCP tool not (yet) listed: nothing says it may run twice

    async def list_prompts(self) -> Any:
        return await self._server.list_prompts()

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return await self._server.get_prompt(name, arguments)

    async def list_resources(self, cursor: str | None = None) -> Any:
        return await self._server.list_resources(cursor)

    async def list_resource_templates(self, cursor: str | None = None) -> Any:
        return await self._server.list_resource_templates(cursor)

    async def read_resource(self, uri: str) -> Any:
        return await self._server.read_resource(uri)


def wrap_mcp_server(
    server: MCPServer,
    *layers: Middleware,
    tool_layers: Mapping[str, Sequence[Middleware]] | None = None,
    source: str | None = None,
    idempotent: bool | None = None,
) -> PenguiflowMCPServer:
    """``server`` with its tool calls through ``layers`` (plus ``tool_layers[name]`` for some tools):
    ``Agent(..., mcp_servers=[wrap_mcp_server(server, Retry(), ConcurrencyLimit(4, name="github"))])``.
    ``source`` (default: the server's name) labels the calls; ``idempotent`` overrides the tools' annotations."""
    stacks = ToolStacks(layers, tool_layers, source=source or server.name, idempotent=idempotent)
    return PenguiflowMCPServer(server, stacks)


# --- a penguiflow catalog as FunctionTools -------------------------------------------------------------------


def _output(result: Any) -> Any:
    """What the model reads: text as is, anything else as JSON."""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str)
    except (TypeError, ValueError):
        return str(result)


def function_tools(
    catalog: Catalog | Iterable[ToolEntry],
    *,
    layers: Sequence[Middleware] = (),
    failure_error_function: ErrorFunction | None = default_tool_error_function,
) -> list[FunctionTool]:
    """The entries of ``catalog`` (a connected ``ToolNode``, or any iterable of ``ToolEntry``) as ``FunctionTool``\\ s;
    ``layers`` run outside each entry's own stack. A call that still fails after the entry's stack is reported to
    the model by ``failure_error_function`` (the SDK's default message), or fails the run if it is ``None``."""
    caller_layers = tuple(layers)

    def make(entry: ToolEntry) -> FunctionTool:
        async def on_invoke_tool(ctx: ToolContext[Any], input_json: str) -> Any:
            try:
                result = await entry.invoke(
                    _arguments(input_json), call_id=ctx.tool_call_id, layers=caller_layers
                )
            except Exception as exc:
                if failure_error_function is None:
                    raise
                return await _as_message(failure_error_function, ctx, exc)
            return _output(result)

        return FunctionTool(
            name=function_name(entry.name),
            description=entry.description or entry.name,
            params_json_schema=entry.input_schema,
            on_invoke_tool=on_invoke_tool,
            strict_json_schema=False,  # a source's schema is what it is; strict mode would rewrite it
        )

    return [make(entry) for entry in catalog_entries(catalog)]
