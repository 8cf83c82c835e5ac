"""``ValidateArguments``: checks a call's arguments against the registry before anything else happens.

ToolNode and ``@tool`` put it right inside the outer ``log_flow_events`` layers of every stack they build (it is
not part of the replaceable ``layers=`` list), so a bad call is logged, fails inside the ``execute_tool`` span
with outcome ``error`` and ``error.type = ToolValidationError``, and never takes a slot, is never retried and
never reaches the network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from penguiflow.errors import ToolValidationError
from penguiflow.middleware.call import Call, CallNext, Middleware
from penguiflow.middleware.events import FlowEventLogger
from penguiflow.registry import ModelRegistry
from penguiflow.validators import plain_json

__all__ = ["ValidateArguments", "base64_arguments", "with_validation"]


class ValidateArguments:
    """Replaces ``call.arguments`` with the registry's validated arguments, or raises ``ToolValidationError``.

    Tools the registry does not know pass unchecked: a registry shared by several nodes may be cleared by one.
    Arguments of a tool described by a JSON schema (an external source's) must also be JSON: a value JSON
    cannot carry (a set, an object, NaN) would otherwise fail in the transport, or be silently changed on the way.
    ``bytes`` are the one exception: given for an argument whose schema says ``contentEncoding: base64`` (a file
    of an HTTP API, a blob of an MCP tool), they are sent as that base64 text.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if call.tool in self.registry:
            if self.registry.pending(call.tool):  # the deferred check, once: no coroutine a call after it
                await self.registry.prepare(call.tool)
            schema = self.registry.model(call.tool) is None
            if schema:
                call.arguments = base64_arguments(self.registry.get(call.tool), call.arguments)
            call.arguments = self.registry.validate(call.tool, call.arguments)
            if schema:
                _check_json(call.tool, call.arguments)
        return await call_next(call)

    def __repr__(self) -> str:
        return f"ValidateArguments({self.registry!r})"


def base64_arguments(schema: Mapping[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with ``bytes`` (alone or in a list) turned into base64 text where ``schema`` says the
    argument is base64 (``contentEncoding: base64``): JSON has no bytes, and that is how the schema asks for them."""
    if not any(isinstance(v, bytes | bytearray | list) for v in arguments.values()):
        return arguments  # the common case, decided without looking at the schema
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return arguments
    converted = dict(arguments)
    for name, value in arguments.items():
        declared = properties.get(name)
        if not isinstance(declared, Mapping):
            continue
        if isinstance(value, bytes | bytearray) and _base64(declared):
            converted[name] = _text(value)
        elif isinstance(value, list) and _base64(declared.get("items")):
            converted[name] = [_text(v) if isinstance(v, bytes | bytearray) else v for v in value]
    return converted


def _base64(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("contentEncoding") == "base64"


def _text(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


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
