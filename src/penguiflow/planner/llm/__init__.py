"""LLM clients: the protocol the planner asks of a provider, an OpenAI-compatible client and a scripted one."""

from penguiflow.planner.llm.base import LLMClient, LLMReply, Message, ToolCall, ToolSchema, Usage
from penguiflow.planner.llm.openai import OpenAIChatClient
from penguiflow.planner.llm.scripted import ScriptedLLM

__all__ = [
    "LLMClient",
    "LLMReply",
    "Message",
    "OpenAIChatClient",
    "ScriptedLLM",
    "ToolCall",
    "ToolSchema",
    "Usage",
]
