"""``ValidateArguments``: checks a call's arguments against the registry before anything else happens.

ToolNode and ``@tool`` put it right inside the outer ``log_flow_events`` layers of every stack they build (it is
not part of the replaceable ``layers=`` list), so a bad call is logged, fails inside the ``execute_tool`` span
with outcome ``error`` and ``error.type = ToolValidationError``, and never takes a slot, is never retried and
never reaches the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from penguiflow.middleware.call import Call, CallNext, Middleware
from penguiflow.middleware.events import FlowEventLogger
from penguiflow.registry import ModelRegistry

__all__ = ["ValidateArguments", "with_validation"]


class ValidateArguments:
    """Replaces ``call.arguments`` with the registry's validated arguments, or raises ``ToolValidationError``.

    Tools the registry does not know pass unchecked: a registry shared by several nodes may be cleared by one.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if call.tool in self.registry:
            call.arguments = self.registry.validate(call.tool, call.arguments)
        return await call_next(call)

    def __repr__(self) -> str:
        return f"ValidateArguments({self.registry!r})"


def with_validation(layers: Sequence[Middleware], registry: ModelRegistry) -> list[Middleware]:
    """``layers`` with :class:`ValidateArguments` placed after the leading event loggers."""
    index = 0
    while index < len(layers) and isinstance(layers[index], FlowEventLogger):
        index += 1
    return [*layers[:index], ValidateArguments(registry), *layers[index:]]
