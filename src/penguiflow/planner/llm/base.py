"""The LLM client protocol: what the planner asks of any model provider.

Messages use the Chat Completions shape (``{"role": ..., "content": ..., "tool_calls": [...]}`` and
``{"role": "tool", "tool_call_id": ..., "content": ...}``) with the catalog's tool names as they are
(``github.create_issue``). A client that talks to a provider with other naming rules maps names itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["LLMClient", "LLMReply", "Message", "ToolCall", "ToolSchema", "Usage"]

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """One tool offered to the LLM."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the LLM asked for. ``arguments`` is what the LLM sent: a dict, or raw JSON text that the
    planner parses (and reports back to the LLM when it is not a JSON object)."""

    id: str
    name: str
    arguments: dict[str, Any] | str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one LLM call (or the sum over a run), as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True, slots=True)
class LLMReply:
    """One reply: tool calls to run (all of them at once), or a final answer in ``content``."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    model: str | None = None  # the model that answered, when the provider says
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@runtime_checkable
class LLMClient(Protocol):
    """Any model provider: implement ``complete`` (and a ``model`` name for spans and metrics).

    >>> class MyClient:
    ...     model = "my-model"
    ...     provider = "acme"          # optional, for gen_ai.provider.name
    ...     async def complete(self, messages, tools):
    ...         return LLMReply(content="42")
    """

    model: str

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply: ...
