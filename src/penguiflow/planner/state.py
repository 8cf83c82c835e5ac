"""The state of one planner run: what a turn reads and writes (its limits, its conversation, its counters)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from penguiflow.middleware import ConcurrencyLimit
from penguiflow.planner.hints import PlanningHints
from penguiflow.planner.llm.base import Message, ToolSchema, Usage
from penguiflow.planner.result import Hop

__all__ = ["RunFlow", "RunState"]


@dataclass
class RunState:
    """The state of one run."""

    hints: PlanningHints
    limits: tuple[ConcurrencyLimit, ...]
    flow: Hashable
    weight: int
    messages: list[Message]
    tools: list[ToolSchema]
    trajectory: list[Hop] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    llm_calls: int = 0
    hops_used: int = 0
    tool_calls_used: int = 0
    strikes: int = 0


class RunFlow:
    """The fairness key of one run that was given no ``flow``: unique, and no metric label (runs are many)."""

    __slots__ = ()
