"""The client capabilities penguiflow declares, and the handlers behind them.

A capability is declared only when the node has the hook that answers it, as the MCP SDK, fastmcp, Pydantic AI
and the OpenAI Agents SDK do: a server then neither lists tools that need what the client lacks
(server-everything leaves its elicitation, sampling and roots tools out) nor asks for it. On MCP 2026-07-28 the
capabilities travel in every request's ``_meta`` and the server parses them per call: declaring elicitation and
sampling costs a fastmcp server ~52,000 instructions a ``tools/call`` (1.4 % of its work; docs/benchmarks.md).

- **elicitation** (``elicitation/create``: the server asks the user something while a tool runs), form and URL
  modes — declared with ``ToolNode(elicitation_handler=...)``. A form answer gets the schema's ``default`` for
  every field it leaves out (SEP-1034); a handler that returns ``None`` declines.
- **sampling** (``sampling/createMessage``: the server asks the application's LLM) — declared with
  ``ToolNode(sampling_handler=...)``.
- **roots** — declared only with ``ToolNode(roots=[...])`` (``file://`` URIs or absolute paths).

A server that asks for an undeclared capability anyway gets the MCP SDK's error answer.

Tasks (a tool whose ``execution.taskSupport`` is ``required``) need a task-augmented call that the MCP client
library does not make yet: such tools are left out of the catalog with a WARNING naming them (see
:func:`callable_tools`), rather than listed and failing every call.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Final

from fastmcp.client.elicitation import ElicitResult
from mcp.types import (
    CreateMessageResult,
    ElicitRequestFormParams,
    ElicitRequestParams,
    SamplingMessage,
    Tool,
)

from penguiflow.tools.hooks import ClientHooks, Elicitation, ElicitationReply, Sampling

__all__ = ["Capabilities", "callable_tools"]

_TASK_REQUIRED: Final = "required"


def callable_tools(tools: list[Tool], log: logging.Logger, source: str) -> list[Tool]:
    """``tools`` without those that can only be called as tasks (logged once, by name, at WARNING)."""
    kept: list[Tool] = []
    left_out: list[Tool] = []
    for tool in tools:
        execution = tool.execution
        support = getattr(execution, "task_support", None) if execution is not None else None
        (left_out if support == _TASK_REQUIRED else kept).append(tool)
    if left_out:
        log.warning(
            "%s: left out of the catalog, as they can only be called as MCP tasks, which penguiflow does not "
            "make yet: %s",
            source,
            ", ".join(sorted(tool.name for tool in left_out)),
        )
    return kept


def _with_defaults(content: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """``content`` with each field it omits set to the schema's ``default`` (SEP-1034)."""
    filled = dict(content)
    for key, spec in ((schema or {}).get("properties") or {}).items():
        if key not in filled and isinstance(spec, Mapping) and "default" in spec:
            filled[key] = spec["default"]
    return filled


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Capabilities:
    """The fastmcp handlers for one node's :class:`~penguiflow.tools.hooks.ClientHooks`."""

    def __init__(self, hooks: ClientHooks, source: str) -> None:
        self.hooks = hooks
        self.source = source

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.hooks.elicitation_handler is not None:
            kwargs["elicitation_handler"] = self._elicit
        if self.hooks.sampling_handler is not None:
            kwargs["sampling_handler"] = self._sample
        if self.hooks.roots is not None:
            kwargs["roots"] = list(self.hooks.roots)
        return kwargs

    async def _elicit(
        self, message: str, _response_type: Any, params: ElicitRequestParams, _context: Any
    ) -> ElicitResult[dict[str, Any]]:
        form = isinstance(params, ElicitRequestFormParams)
        schema = dict(params.requested_schema) if isinstance(params, ElicitRequestFormParams) else None
        handler = self.hooks.elicitation_handler
        assert handler is not None  # registered only with one (client_kwargs)
        request = Elicitation(
            source=self.source,
            message=message,
            mode="form" if form else "url",
            requested_schema=schema,
            url=getattr(params, "url", None),
        )
        answer = await _maybe_await(handler(request))
        if answer is None:
            return ElicitResult(action="decline")
        if isinstance(answer, ElicitationReply):
            if answer.action != "accept":
                return ElicitResult(action=answer.action)
            answer = answer.content or {}
        content = _with_defaults(answer, schema) if form else dict(answer)
        return ElicitResult(action="accept", content=content or None)

    async def _sample(
        self, messages: list[SamplingMessage], params: Any, _context: Any
    ) -> CreateMessageResult:
        handler = self.hooks.sampling_handler
        assert handler is not None  # registered only with one (client_kwargs)
        request = Sampling(
            source=self.source,
            messages=[m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in messages],
            params=params.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"messages"}),
        )
        answer = await _maybe_await(handler(request))
        if isinstance(answer, str):
            return CreateMessageResult(
                role="assistant", model="penguiflow", content={"type": "text", "text": answer}
            )
        return CreateMessageResult.model_validate(dict(answer))
