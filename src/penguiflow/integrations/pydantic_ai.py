"""Pydantic AI: any toolset behind a penguiflow stack, and a penguiflow catalog as a toolset.

Two pieces (``pip install 'penguiflow[pydantic-ai]'``):

- :func:`wrap_toolset` / :class:`PenguiflowToolset`, a ``WrapperToolset``: every ``call_tool`` of the wrapped
  toolset — function tools, an ``MCPToolset``, any toolset — goes through the stack. Pydantic AI runs a step's
  tool calls in parallel and has no per-toolset limit; a ``ConcurrencyLimit`` in the stack is one.
- :func:`catalog_toolset` / :class:`CatalogToolset`: the entries of a ``ToolNode`` (or any catalog) as a toolset;
  each call goes through the entry's own stack. Arguments the entry rejects come back to the model as a retry
  prompt (``ModelRetry``), as Pydantic AI does for its own tools.

MCP tools declare whether they may be re-sent: ``readOnlyHint or idempotentHint`` of their annotations makes a
call ``idempotent``, otherwise ``Retry`` re-sends it only after a failure proving it did not run (the rule of
penguiflow's own MCP transport). Other tools are ``idempotent=None`` unless the wrapper says otherwise.

Spans: with Pydantic AI's instrumentation on (``Instrumentation`` capability, ``instrument_all``), Pydantic AI
opens its own ``execute_tool {tool}`` span around each tool call (instrumentation scope ``pydantic-ai``: arguments
and result if ``include_content``, its own retries). Penguiflow's ``execute_tool {tool}`` span (scope
``penguiflow``) nests under it, one per call, with the stack's story: queue wait, attempts, back-off, outcome.
Both carry the model's ``gen_ai.tool.call.id``. Count penguiflow's spans by their scope; the duplicate name is
not suppressed because the two measure different things (Pydantic AI's includes argument validation and its
``ModelRetry`` handling, penguiflow's only the stack and the tool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from penguiflow.errors import ToolValidationError
from penguiflow.integrations._calls import ToolStacks, mcp_idempotent
from penguiflow.integrations._catalog import Catalog, function_name, resolved_entries
from penguiflow.middleware import Middleware
from penguiflow.tools.catalog import ToolEntry

try:
    from pydantic_ai import ModelRetry, RunContext
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset
    from pydantic_core import SchemaValidator, core_schema
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"penguiflow.integrations.pydantic_ai needs Pydantic AI: pip install 'penguiflow[pydantic-ai]' ({exc})"
    ) from exc

__all__ = ["CatalogToolset", "PenguiflowToolset", "catalog_toolset", "wrap_toolset"]


def _idempotent(tool: ToolsetTool[Any]) -> bool | None:
    """An MCP tool's own declaration (``MCPToolset`` puts its annotations in the metadata), else unknown."""
    metadata = tool.tool_def.metadata
    if metadata is None or "annotations" not in metadata:
        return None
    return mcp_idempotent(metadata["annotations"])


@dataclass
class PenguiflowToolset(WrapperToolset[Any]):
    """``wrapped`` with every tool call run through ``layers`` (the first outermost), plus
    ``tool_layers[name]`` inside them for the tools named there. Build it with :func:`wrap_toolset`."""

    layers: Sequence[Middleware] = ()
    tool_layers: Mapping[str, Sequence[Middleware]] | None = None
    source: str | None = None
    idempotent: bool | None = None
    _stacks: ToolStacks = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Stacks are stateless (limiters live in the layers), so the copies ``for_run`` makes share the limits.
        self._stacks = ToolStacks(
            self.layers, self.tool_layers, source=self.source, idempotent=self.idempotent
        )

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        async def step(arguments: dict[str, Any]) -> Any:
            return await self.wrapped.call_tool(name, arguments, ctx, tool)

        declared = self.idempotent if self.idempotent is not None else _idempotent(tool)
        return await self._stacks.run(name, tool_args, step, call_id=ctx.tool_call_id, idempotent=declared)


def wrap_toolset(
    toolset: AbstractToolset[Any],
    *layers: Middleware,
    tool_layers: Mapping[str, Sequence[Middleware]] | None = None,
    source: str | None = None,
    idempotent: bool | None = None,
) -> PenguiflowToolset:
    """``toolset`` behind ``layers``: ``Agent(model, toolsets=[wrap_toolset(toolset, Retry(), ConcurrencyLimit(3,
    name="search"), Timeout(10))])``. ``source`` labels the calls; ``idempotent`` overrides what tools declare."""
    return PenguiflowToolset(
        toolset, layers=layers, tool_layers=tool_layers, source=source, idempotent=idempotent
    )


# --- a penguiflow catalog as a toolset -------------------------------------------------------------------------

_ANY_ARGUMENTS = SchemaValidator(
    core_schema.any_schema()
)  # the entry's own stack validates against its schema


class CatalogToolset(AbstractToolset[Any]):
    """The entries of a catalog as Pydantic AI tools. A ``ToolNode`` that has not connected yet connects when
    the agent first lists its tools; closing it stays the caller's business."""

    def __init__(
        self,
        catalog: Catalog | Iterable[ToolEntry],
        *,
        layers: Sequence[Middleware] = (),
        id: str | None = None,
        max_retries: int = 1,
    ) -> None:
        self._catalog = catalog if isinstance(catalog, Catalog) else list(catalog)
        self._layers = tuple(layers)
        self._id = id
        self._max_retries = max_retries
        self._entries: dict[str, ToolEntry] = {}

    @property
    def id(self) -> str | None:
        return self._id

    async def _load(self) -> dict[str, ToolEntry]:
        self._entries = {function_name(entry.name): entry for entry in await resolved_entries(self._catalog)}
        return self._entries

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        entries = await self._load()
        return {
            name: ToolsetTool(
                toolset=self,
                tool_def=ToolDefinition(
                    name=name,
                    description=entry.description or entry.name,
                    parameters_json_schema=entry.input_schema,
                ),
                max_retries=self._max_retries,
                args_validator=_ANY_ARGUMENTS,
            )
            for name, entry in entries.items()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        entry = self._entries[name]
        try:
            return await entry.invoke(tool_args, call_id=ctx.tool_call_id, layers=self._layers)
        except ToolValidationError as exc:
            raise ModelRetry(str(exc)) from exc


def catalog_toolset(
    catalog: Catalog | Iterable[ToolEntry],
    *,
    layers: Sequence[Middleware] = (),
    id: str | None = None,
    max_retries: int = 1,
) -> CatalogToolset:
    """A ``ToolNode`` (or any iterable of ``ToolEntry``) as a toolset: ``Agent(model, toolsets=[catalog_toolset(
    node)])``. ``layers`` run outside each entry's own stack (a limit for this agent's calls, say)."""
    return CatalogToolset(catalog, layers=layers, id=id, max_retries=max_retries)
