"""Resources and prompts: the MCP requests besides ``tools/call`` that an agent needs, in MCP's JSON shape.

``ToolNode.list_resources()``, ``read_resource(uri)``, ``list_prompts()`` and ``get_prompt(name, arguments)`` run
through the node's stack like tool calls — one ``execute_tool {source}.{method}`` span with the MCP attributes
(``mcp.method.name``, ``mcp.resource.uri`` masked, ``gen_ai.prompt.name``), the node's limit, timeout and
retries (reads are idempotent) — and end here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from fastmcp import Client

from penguiflow.errors import ToolValidationError
from penguiflow.telemetry import names

__all__ = ["METHODS", "perform"]

RESOURCES_LIST: Final = "resources/list"
RESOURCES_READ: Final = "resources/read"
PROMPTS_LIST: Final = "prompts/list"
PROMPTS_GET: Final = "prompts/get"
METHODS: Final = frozenset({RESOURCES_LIST, RESOURCES_READ, PROMPTS_LIST, PROMPTS_GET})


def _json(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def attributes(method: str, arguments: Mapping[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    """The MCP conventions' attributes of one request (a URI may carry a secret: masked)."""
    found: dict[str, Any] = {names.MCP_METHOD_NAME: method}
    if method == RESOURCES_READ:
        found[names.MCP_RESOURCE_URI] = redact(str(arguments.get("uri", "")))
    elif method == PROMPTS_GET:
        found[names.GEN_AI_PROMPT_NAME] = str(arguments.get("name", ""))
    return found


async def perform(client: Client[Any], method: str, arguments: Mapping[str, Any], name: str) -> Any:
    """Send one resources or prompts request; the result in MCP's JSON shape."""
    if method == RESOURCES_LIST:
        return [_json(resource) for resource in await client.list_resources()]
    if method == PROMPTS_LIST:
        return [_json(prompt) for prompt in await client.list_prompts()]
    if method == RESOURCES_READ:
        uri = arguments.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ToolValidationError(f"{name}: uri must be a non-empty string", tool=name)
        return [_json(content) for content in await client.read_resource(uri)]
    if method == PROMPTS_GET:
        prompt, values = arguments.get("name"), arguments.get("arguments") or {}
        if not isinstance(prompt, str) or not prompt:
            raise ToolValidationError(f"{name}: name must be a non-empty string", tool=name)
        if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
            raise ToolValidationError(f"{name}: prompt arguments must map names to strings", tool=name)
        return _json(await client.get_prompt(prompt, dict(values)))
    raise ToolValidationError(f"{name}: not an MCP request penguiflow sends", tool=name)
