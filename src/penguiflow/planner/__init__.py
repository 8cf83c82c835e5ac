"""The ReAct planner (Levels 1 and 2 of the concurrency guide).

>>> from penguiflow.planner import ReactPlanner, ScriptedLLM
>>> planner = ReactPlanner(catalog=catalog, llm="gpt-4", absolute_max_parallel=50)
>>> result = await planner.run("Process all customer data", planning_hints={"max_parallel": 5})
"""

from penguiflow.planner.errors import (
    LLMAuthenticationError,
    LLMError,
    LLMOutputError,
    LLMResponseError,
    PlannerError,
    PlanningHintsError,
    ScriptExhaustedError,
)
from penguiflow.planner.hints import Budget, PlanningHints, parse_hints, render_hints
from penguiflow.planner.llm import (
    LLMClient,
    LLMReply,
    OpenAIChatClient,
    ScriptedLLM,
    ToolCall,
    ToolSchema,
    Usage,
)
from penguiflow.planner.react import ReactPlanner
from penguiflow.planner.result import Hop, PlannerResult, StopReason, ToolCallRecord
from penguiflow.planner.tool_turn import ToolBudgetExhaustedError, ToolDisallowedError

__all__ = [
    "Budget",
    "Hop",
    "LLMAuthenticationError",
    "LLMClient",
    "LLMError",
    "LLMOutputError",
    "LLMReply",
    "LLMResponseError",
    "OpenAIChatClient",
    "PlannerError",
    "PlannerResult",
    "PlanningHints",
    "PlanningHintsError",
    "ReactPlanner",
    "ScriptExhaustedError",
    "ScriptedLLM",
    "StopReason",
    "ToolBudgetExhaustedError",
    "ToolCall",
    "ToolCallRecord",
    "ToolDisallowedError",
    "ToolSchema",
    "Usage",
    "parse_hints",
    "render_hints",
]
