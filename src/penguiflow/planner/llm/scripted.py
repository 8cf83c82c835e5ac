"""``ScriptedLLM``: replays given replies, for tests and the offline demo. No network, no key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from penguiflow.middleware.call import new_call_id
from penguiflow.planner.errors import ScriptExhaustedError
from penguiflow.planner.llm.base import LLMReply, Message, ToolCall, ToolSchema, Usage

__all__ = ["ReplySpec", "ScriptedLLM", "to_reply"]

ReplySpec = LLMReply | str | Mapping[str, Any] | Sequence[Any]
"""A scripted reply: an :class:`LLMReply`; a ``str`` (a final answer); a list of tool calls; or a mapping
``{"tool_calls": [...], "content": ..., "usage": {"input_tokens": .., "output_tokens": ..}}``. A tool call is a
:class:`ToolCall`, a ``(name, arguments)`` pair or ``{"name":, "arguments":, "id":}``; arguments are a dict or
raw JSON text (which may be malformed on purpose)."""

Script = Callable[[Sequence[Message], Sequence[ToolSchema]], ReplySpec]


class ScriptedLLM:
    """Answers each ``complete`` with the next scripted reply.

    ``replies`` is a list of :data:`ReplySpec` (an item may itself be a callable producing the reply from the
    conversation so far), or one callable used for every turn. ``calls`` keeps what each turn was shown.

    >>> llm = ScriptedLLM([[("local.add", {"a": 1, "b": 2})], "3"])
    """

    provider = "scripted"

    def __init__(self, replies: Iterable[ReplySpec | Script] | Script, *, model: str = "scripted") -> None:
        self.model = model
        self._script: Script | None = replies if callable(replies) else None
        self._replies: list[ReplySpec | Script] = [] if callable(replies) else list(replies)
        self.calls: list[tuple[list[Message], list[ToolSchema]]] = []

    @property
    def remaining(self) -> int:
        return len(self._replies)

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> LLMReply:
        self.calls.append(([dict(m) for m in messages], list(tools)))
        if self._script is not None:
            spec: ReplySpec | Script = self._script
        elif self._replies:
            spec = self._replies.pop(0)
        else:
            raise ScriptExhaustedError(f"ScriptedLLM: no reply left for turn {len(self.calls)}")
        if callable(spec):
            spec = spec(messages, tools)
        return to_reply(spec)


def to_reply(spec: ReplySpec) -> LLMReply:
    """The :class:`LLMReply` a :data:`ReplySpec` describes; a tool call without an id gets a fresh unique one
    (ids end up in traces as ``gen_ai.tool.call.id``)."""
    if isinstance(spec, LLMReply):
        return spec
    if isinstance(spec, str):
        return LLMReply(content=spec)
    if isinstance(spec, Mapping):
        usage = spec.get("usage")
        return LLMReply(
            content=spec.get("content"),
            tool_calls=tuple(_tool_call(c) for c in spec.get("tool_calls") or ()),
            usage=Usage(**usage) if isinstance(usage, Mapping) else usage,
        )
    return LLMReply(tool_calls=tuple(_tool_call(c) for c in spec))


def _tool_call(spec: Any) -> ToolCall:
    if isinstance(spec, ToolCall):
        return spec
    if isinstance(spec, Mapping):
        name, arguments, call_id = spec["name"], spec.get("arguments", {}), spec.get("id")
    else:
        name, arguments = spec
        call_id = None
    if not isinstance(arguments, str | dict):
        arguments = json.loads(json.dumps(arguments))
    return ToolCall(id=call_id or new_call_id(), name=name, arguments=arguments)
