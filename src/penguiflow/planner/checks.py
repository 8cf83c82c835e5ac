"""What ``ReactPlanner``'s constructor checks: each argument fails at construction, naming the field."""

from __future__ import annotations

from collections.abc import Sequence

from penguiflow.errors import ConfigurationError
from penguiflow.middleware import Middleware
from penguiflow.planner.llm.base import LLMClient
from penguiflow.planner.llm.openai import OpenAIChatClient
from penguiflow.tools.catalog import ToolEntry

__all__ = ["check_catalog", "check_llm", "check_middleware"]


def check_middleware(middleware: Sequence[Middleware]) -> tuple[Middleware, ...]:
    if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
        raise ConfigurationError("middleware", f"must be a list of layers, got {type(middleware).__name__}")
    for index, layer in enumerate(middleware):
        if not callable(layer):
            raise ConfigurationError(
                f"middleware[{index}]",
                f"must be a layer (async (call, call_next) -> result), got {type(layer).__name__}",
            )
    return tuple(middleware)


def check_catalog(catalog: Sequence[ToolEntry]) -> dict[str, ToolEntry]:
    if isinstance(catalog, str | bytes) or not isinstance(catalog, Sequence | set | frozenset):
        raise ConfigurationError("catalog", f"must be a list of tool entries, got {type(catalog).__name__}")
    entries: dict[str, ToolEntry] = {}
    for index, entry in enumerate(catalog):
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not callable(getattr(entry, "invoke", None)):
            raise ConfigurationError(
                f"catalog[{index}]",
                f"must be a tool entry (ToolNode.get_tools() or @tool), got {type(entry).__name__}",
            )
        if name in entries:
            raise ConfigurationError(f"catalog[{index}]", f"duplicate tool name {name!r}")
        entries[name] = entry
    return entries


def check_llm(llm: str | LLMClient) -> LLMClient:
    if isinstance(llm, str):
        if not llm.strip():
            raise ConfigurationError("llm", "must be a model name or an LLM client, got an empty string")
        return OpenAIChatClient(llm)
    if not callable(getattr(llm, "complete", None)):
        raise ConfigurationError(
            "llm",
            f"must be a model name or an object with async complete(messages, tools), got {type(llm).__name__}",
        )
    return llm
