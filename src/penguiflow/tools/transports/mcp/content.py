"""What a call returns: an MCP ``CallToolResult`` turned into the value the caller (an LLM, an application) gets.

- ``structuredContent``, when the server sent it, *is* the result (a tool with an ``outputSchema`` must send it,
  and the ``mcp`` SDK has already checked it against that schema: a mismatch is a
  :class:`~penguiflow.errors.ToolExecutionError`). fastmcp wraps a non-object result as ``{"result": value}``
  and says so in the schema (``x-fastmcp-wrap-result``): the value is unwrapped.
- Plain text — every block ``text``, none annotated — is the text (blocks joined by newlines).
- Anything else (images, audio, embedded resources, resource links, annotated or ``_meta``-carrying blocks)
  is the list of blocks exactly as MCP sends them: MCP's field names (``mimeType``, ``resource_link``,
  ``annotations.audience``), nothing dropped.
- ``isError`` raises :class:`~penguiflow.errors.ToolExecutionError` with the tool's own words, secrets masked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from mcp.types import CallToolResult, ContentBlock, TextContent, Tool

from penguiflow.errors import ToolExecutionError

__all__ = ["WRAP_KEY", "blocks", "result_value", "tool_fields", "wrapped_tools"]

WRAP_KEY: Final = "x-fastmcp-wrap-result"


def wrapped_tools(tools: Collection[Tool]) -> set[str]:
    """The tools whose structured result fastmcp wraps as ``{"result": value}``."""
    return {tool.name for tool in tools if (tool.output_schema or {}).get(WRAP_KEY)}


def blocks(content: list[ContentBlock]) -> list[dict[str, Any]]:
    """Content blocks in MCP's JSON shape (aliases: ``mimeType``, not ``mime_type``)."""
    return [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in content]


def _plain_text(block: ContentBlock) -> bool:
    return isinstance(block, TextContent) and block.annotations is None and block.meta is None


def result_value(name: str, result: CallToolResult, *, wrapped: bool, redact: Callable[[str], str]) -> Any:
    """The value of ``result`` for catalog tool ``name`` (see the module docstring)."""
    if result.is_error:
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        reason = redact(" ".join(texts)) or "no message"
        raise ToolExecutionError(f"{name}: the tool reported an error: {reason}", tool=name)
    structured = result.structured_content
    if structured is not None:
        if wrapped and isinstance(structured, dict) and "result" in structured:
            return structured["result"]
        return structured
    if result.content and all(_plain_text(block) for block in result.content):
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        return texts[0] if len(texts) == 1 else "\n".join(texts)
    return blocks(result.content)


def tool_fields(tool: Tool) -> dict[str, Any]:
    """What the catalog keeps of a tool beyond name, description and input schema, in MCP's JSON shape."""
    annotations = (
        tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True) if tool.annotations else {}
    )
    output_schema = dict(tool.output_schema) if tool.output_schema else None
    if output_schema is not None and output_schema.get(WRAP_KEY):
        # The call returns the unwrapped value: describe that, not fastmcp's {"result": ...} envelope.
        inner = (output_schema.get("properties") or {}).get("result")
        output_schema = dict(inner) if isinstance(inner, dict) else None
    return {
        "title": tool.title or (tool.annotations.title if tool.annotations else None),
        "annotations": annotations,
        "output_schema": output_schema,
    }
