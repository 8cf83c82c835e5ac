"""A stack whose innermost step is the framework's own: each call carries the step that performs it.

A framework hands its hook the step to run (LangChain's ``handler``, Pydantic AI's wrapped ``call_tool``, the
Agents SDK's ``on_invoke_tool``) anew for every call, so the stack's handler reads it from ``call.context`` —
the layer protocol's per-call scratch space — and runs it with the call's arguments, which a layer may have
changed. The stacks themselves are built once: ``layers`` for every tool, plus ``tool_layers[name]`` inside
them for the tools named there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from penguiflow.middleware import Call, Middleware, Stack
from penguiflow.middleware.call import new_call_id

__all__ = ["Step", "ToolStacks", "mcp_idempotent"]

Step = Callable[[dict[str, Any]], Awaitable[Any]]
"""Performs the call through the framework, with these arguments."""

_STEP = "penguiflow.integrations.step"


async def _run_step(call: Call) -> Any:
    step = cast(Step, call.context[_STEP])
    return await step(call.arguments)


class ToolStacks:
    """The stacks of one integration: ``layers`` (the first outermost) for every tool, ``tool_layers[name]``
    added inside them for that tool. ``source`` labels the calls; ``idempotent`` is their default declaration."""

    def __init__(
        self,
        layers: Sequence[Middleware],
        tool_layers: Mapping[str, Sequence[Middleware]] | None = None,
        *,
        source: str | None = None,
        idempotent: bool | None = None,
        tool_type: str = "function",
    ) -> None:
        self.layers = tuple(layers)
        self.tool_layers = {name: tuple(extra) for name, extra in (tool_layers or {}).items()}
        self.source = source
        self.idempotent = idempotent
        self._default = Stack(_run_step, self.layers, tool_type=tool_type)
        self._own = {
            name: Stack(_run_step, (*self.layers, *extra), tool_type=tool_type)
            for name, extra in self.tool_layers.items()
        }

    def stack(self, tool: str) -> Stack:
        return self._own.get(tool, self._default)

    def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        step: Step,
        *,
        call_id: str | None = None,
        idempotent: bool | None = None,
        source: str | None = None,
    ) -> Call:
        call = Call(
            tool,
            dict(arguments),
            source=source or self.source,
            call_id=call_id or new_call_id(),
            idempotent=self.idempotent if idempotent is None else idempotent,
        )
        call.context[_STEP] = step
        return call

    def run(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        step: Step,
        *,
        call_id: str | None = None,
        idempotent: bool | None = None,
    ) -> Awaitable[Any]:
        """Run one call of ``tool`` through its stack; ``step`` performs it."""
        call = self.call(tool, arguments, step, call_id=call_id, idempotent=idempotent)
        return self.stack(tool)(call)


def mcp_idempotent(annotations: Any) -> bool:
    """Whether an MCP tool may be re-sent: ``readOnlyHint or idempotentHint`` of its annotations, else ``False``
    (the rule of penguiflow's own MCP transport). ``annotations`` is the SDK's ``ToolAnnotations``, its wire
    dict (camelCase) or ``None``."""
    if annotations is None:
        return False
    if isinstance(annotations, Mapping):
        read_only = annotations.get("readOnlyHint", annotations.get("read_only_hint"))
        idempotent = annotations.get("idempotentHint", annotations.get("idempotent_hint"))
    else:  # mcp 2's snake_case names first: its camelCase aliases warn
        read_only = _first(annotations, "read_only_hint", "readOnlyHint")
        idempotent = _first(annotations, "idempotent_hint", "idempotentHint")
    return read_only is True or idempotent is True


def _first(obj: Any, *attributes: str) -> Any:
    for attribute in attributes:
        if hasattr(obj, attribute):
            return getattr(obj, attribute)
    return None
