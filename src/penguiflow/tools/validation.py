"""``ValidateArguments``: checks a call's arguments against the registry before anything else happens.

ToolNode and ``@tool`` put it right inside the outer ``log_flow_events`` layers of every stack they build (it is
not part of the replaceable ``layers=`` list), so a bad call is logged, fails inside the ``execute_tool`` span
with outcome ``error`` and ``error.type = ToolValidationError``, and never takes a slot, is never retried and
never reaches the network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from penguiflow.errors import ToolValidationError
from penguiflow.middleware.call import Call, CallNext, Middleware
from penguiflow.middleware.events import FlowEventLogger
from penguiflow.registry import ModelRegistry
from penguiflow.validators import plain_json

__all__ = ["ValidateArguments", "with_validation"]


class ValidateArguments:
    """Replaces ``call.arguments`` with the registry's validated arguments, or raises ``ToolValidationError``.

    Tools the registry does not know pass unchecked: a registry shared by several nodes may be cleared by one.
    Arguments of a tool described by a JSON schema (an external source's) must also be JSON: a value JSON
    cannot carry (a set, an object, NaN) would otherwise fail in the transport, or be silently changed on the way.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if call.tool in self.registry:
            await self.registry.prepare(call.tool)
            call.arguments = self.registry.validate(call.tool, call.arguments)
            if self.registry.model(call.tool) is None:
                _check_json(call.tool, call.arguments)
        return await call_next(call)

    def __repr__(self) -> str:
        return f"ValidateArguments({self.registry!r})"


def _check_json(tool: str, arguments: dict[str, Any]) -> None:
    try:
        if plain_json(arguments):  # the common case, a tenth of what encoding it costs
            return
    except RecursionError:  # nested deeper than the walk goes: json.dumps below judges (and names it)
        pass
    try:
        json.dumps(arguments, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        for name, value in arguments.items():  # name the first argument that cannot be sent (never its value)
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError, RecursionError):
                raise ToolValidationError(
                    f"{tool}: argument {name!r} is not JSON data ({type(value).__name__}); "
                    "the tool's source only accepts JSON values (no NaN or infinity)",
                    tool=tool,
                ) from None
        raise ToolValidationError(f"{tool}: the arguments are not JSON data", tool=tool) from None


def with_validation(layers: Sequence[Middleware], registry: ModelRegistry) -> list[Middleware]:
    """``layers`` with :class:`ValidateArguments` placed after the leading event loggers."""
    index = 0
    while index < len(layers) and isinstance(layers[index], FlowEventLogger):
        index += 1
    return [*layers[:index], ValidateArguments(registry), *layers[index:]]
