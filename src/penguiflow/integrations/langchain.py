"""LangChain v1 and LangGraph: every tool call through a penguiflow stack, and penguiflow catalogs as LangChain tools.

Three pieces (``pip install 'penguiflow[langchain]'``):

- :class:`PenguiflowMiddleware`, an agent middleware for ``langchain.agents.create_agent``: its
  ``awrap_tool_call``/``wrap_tool_call`` hooks run each tool call of the agent through the stack — the limit,
  retries and timeout apply inside LangGraph's ``ToolNode``, which otherwise runs a turn's calls with an unbounded
  ``gather``. ``tool_layers`` adds layers for some tools only (a limit of their own).
- :func:`wrap_tool`: any ``BaseTool`` (sync or async) behind a stack, as a ``BaseTool`` with the same name,
  description and argument schema, for any LangChain or LangGraph code that takes tools.
- :func:`as_langchain_tools`: a ``ToolNode``'s (or any catalog's) entries as LangChain tools, so a LangGraph graph
  calls penguiflow sources through their own stacks.

What the stack sees is what the tool raises. LangGraph's ``ToolNode`` turns only argument errors into
``ToolMessage``\\ s by default, so a tool's exception reaches ``Retry``; a tool or ``ToolNode`` configured with
``handle_tool_error(s)=True`` turns failures into messages *before* the stack sees them: nothing is retried then.
After the stack gives up, the error propagates as LangChain's own would (the run fails, or an error-handling
middleware placed outside this one turns it into a message).

Sync runs (``agent.invoke``, ``tool.invoke``) go through the stack on a background event loop shared by all sync
callers (see :mod:`penguiflow.integrations._sync`); a middleware or wrapped tool serves sync or async runs, not
both at the same moment. LangChain emits no OpenTelemetry span of its own per tool call, so the stack's
``execute_tool {tool}`` span is the call's span, a child of whatever span is current when the agent runs;
``gen_ai.tool.call.id`` is the model's tool call id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from penguiflow.integrations._calls import ToolStacks
from penguiflow.integrations._catalog import Catalog, catalog_entries, function_name
from penguiflow.integrations._sync import run_sync
from penguiflow.middleware import Middleware
from penguiflow.tools.catalog import ToolEntry

try:
    from langchain.agents.middleware import AgentMiddleware, ToolCallRequest
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool, StructuredTool
    from pydantic import ConfigDict, PrivateAttr
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"penguiflow.integrations.langchain needs LangChain v1: pip install 'penguiflow[langchain]' ({exc})"
    ) from exc

__all__ = ["PenguiflowMiddleware", "PenguiflowTool", "as_langchain_tools", "wrap_tool"]


class PenguiflowMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Runs every tool call of a ``create_agent`` agent through ``layers`` (the first outermost).

    >>> agent = create_agent(model, tools, middleware=[PenguiflowMiddleware(
    ...     log_flow_events(), Retry(RetryPolicy()), ConcurrencyLimit(3, name="tools"), Timeout(10))])

    ``tool_layers`` maps tool names to extra layers, run inside ``layers`` for that tool only.
    ``source`` labels the calls' metrics and spans (``penguiflow.tool.source``); ``idempotent`` is what the calls
    declare to ``Retry`` (``None``: unknown, the policy alone decides). ``name`` tells two instances in one agent
    apart (``create_agent`` wants unique middleware names).
    """

    def __init__(
        self,
        *layers: Middleware,
        tool_layers: Mapping[str, Sequence[Middleware]] | None = None,
        source: str | None = None,
        idempotent: bool | None = None,
        name: str = "PenguiflowMiddleware",
    ) -> None:
        super().__init__()
        self.stacks = ToolStacks(layers, tool_layers, source=source, idempotent=idempotent)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        async def step(arguments: dict[str, Any]) -> Any:
            return await handler(_with_arguments(request, arguments))

        return await self._run(request, step)

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        async def step(arguments: dict[str, Any]) -> Any:
            return await asyncio.to_thread(handler, _with_arguments(request, arguments))

        return run_sync(lambda: self._run(request, step))

    def _run(
        self, request: ToolCallRequest, step: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> Awaitable[Any]:
        tool_call = request.tool_call
        return self.stacks.run(
            tool_call["name"], tool_call.get("args") or {}, step, call_id=tool_call.get("id")
        )


def _with_arguments(request: ToolCallRequest, arguments: dict[str, Any]) -> ToolCallRequest:
    if arguments == request.tool_call.get("args"):
        return request
    return request.override(tool_call={**request.tool_call, "args": arguments})


# --- any BaseTool behind a stack -------------------------------------------------------------------------------


def _is_tool_call(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "tool_call"


def _arguments(tool_input: Any) -> tuple[dict[str, Any], str | None]:
    """The call's arguments and tool call id from any input ``BaseTool.invoke`` accepts."""
    if _is_tool_call(tool_input):
        return dict(tool_input.get("args") or {}), tool_input.get("id")
    if isinstance(tool_input, dict):
        return dict(tool_input), None
    return {"input": tool_input}, None  # a single-string tool input


def _rebuild(tool_input: Any, arguments: dict[str, Any]) -> Any:
    """The tool's input again, with the call's arguments (a layer may have changed them)."""
    if _is_tool_call(tool_input):
        return {**tool_input, "args": arguments}
    if isinstance(tool_input, dict):
        return arguments
    return arguments.get("input", tool_input)


class PenguiflowTool(BaseTool):
    """What :func:`wrap_tool` returns: ``inner`` run through a stack on every ``invoke``/``ainvoke``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    _stacks: ToolStacks = PrivateAttr()

    def _run_through(self, tool_input: Any, run: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
        arguments, call_id = _arguments(tool_input)

        async def step(changed: dict[str, Any]) -> Any:
            return await run(_rebuild(tool_input, changed))

        return self._stacks.run(self.name, arguments, step, call_id=call_id)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        async def run(tool_input: Any) -> Any:
            return await self.inner.ainvoke(tool_input, config, **kwargs)

        return await self._run_through(input, run)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        async def run(tool_input: Any) -> Any:
            return await asyncio.to_thread(self.inner.invoke, tool_input, config, **kwargs)

        return run_sync(lambda: self._run_through(input, run))

    # ``BaseTool.run``/``arun`` (called directly, not through ``invoke``) land here: the same stack.
    def _run(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("run_manager", None)
        return self.invoke(args[0] if args and not kwargs else kwargs)

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("run_manager", None)
        return await self.ainvoke(args[0] if args and not kwargs else kwargs)


def wrap_tool(
    tool: BaseTool,
    *layers: Middleware,
    source: str | None = None,
    idempotent: bool | None = None,
) -> PenguiflowTool:
    """``tool`` behind ``layers`` (the first outermost), as a ``BaseTool`` of the same name and schema.

    Every attempt is one ``invoke``/``ainvoke`` of ``tool`` (its callbacks fire per attempt); a tool call input
    (``{"type": "tool_call", "id": …}``) keeps its id as ``gen_ai.tool.call.id`` and gets its ``ToolMessage`` back.
    """
    wrapped = PenguiflowTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        inner=tool,
    )
    wrapped._stacks = ToolStacks(layers, source=source, idempotent=idempotent)
    return wrapped


# --- a penguiflow catalog as LangChain tools ---------------------------------------------------------------


def as_langchain_tools(
    catalog: Catalog | Iterable[ToolEntry], *, layers: Sequence[Middleware] = ()
) -> list[BaseTool]:
    """The entries of ``catalog`` (a connected ``ToolNode``, or any iterable of ``ToolEntry``) as async LangChain
    tools: each call goes through the entry's own stack (its source's limit, retries, timeout), with ``layers``
    outside it. Names are made valid function names (``github.create_issue`` → ``github_create_issue_<hash>``)."""
    caller_layers = tuple(layers)

    def make(entry: ToolEntry) -> BaseTool:
        async def run(**arguments: Any) -> Any:
            return await entry.invoke(arguments, layers=caller_layers)

        return StructuredTool(
            name=function_name(entry.name),
            description=entry.description or entry.name,
            args_schema=entry.input_schema,
            coroutine=run,
        )

    return [make(entry) for entry in catalog_entries(catalog)]
