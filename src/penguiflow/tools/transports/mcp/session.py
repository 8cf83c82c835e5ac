"""The client session of a stdio server: fastmcp's, with each tool's output schema checked by a compiled validator.

The ``mcp`` SDK checks every ``structuredContent`` against the tool's ``outputSchema`` with ``jsonschema``,
walking the schema in Python on every call (for fastmcp's one-field ``{"result": ...}`` wrapper, the biggest
single piece of a stdio call that is neither the wire nor the event loop). Here the schema is compiled once
(:func:`penguiflow.validators.compiled`, ``jsonschema-rs``) and a result it finds valid is accepted at once;
anything else — invalid content, no structured content, a schema it cannot compile, a pinned call — goes on to
the SDK's own check, so every outcome and message stays the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastmcp.client._version_pin import pinned_call
from fastmcp.client.transports.base import VersionAwareClientSession
from mcp.types import CallToolResult

from penguiflow.validators import compiled

__all__ = ["LeanSession"]

# The draft jsonschema-rs compiles for; the SDK picks a schema's own ``$schema``, so any other stays the SDK's.
_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


class LeanSession(VersionAwareClientSession):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # tool -> (the schema it was compiled from, its is_valid or None): recompiled when the listing changes.
        self._checks: dict[str, tuple[object, Callable[[Any], bool] | None]] = {}

    async def validate_tool_result(self, name: str, result: CallToolResult) -> None:
        schema = self._tool_output_schemas.get(name)
        content = result.structured_content
        if schema is not None and content is not None and pinned_call.get() is None:
            check = self._check(name, schema)
            if check is not None and check(content):
                return
        await super().validate_tool_result(name, result)

    def _check(self, name: str, schema: dict[str, Any]) -> Callable[[Any], bool] | None:
        cached = self._checks.get(name)
        if cached is not None and cached[0] is schema:  # the SDK replaces the dict when the schema changes
            return cached[1]
        check = compiled(schema) if schema.get("$schema", _DRAFT) == _DRAFT else None
        self._checks[name] = (schema, check)
        return check
