"""What a planner run returns: the answer, why the run ended, and every hop's calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from penguiflow.planner.llm.base import Usage

__all__ = ["CallOutcome", "Hop", "PlannerResult", "StopReason", "ToolCallRecord"]

StopReason = Literal["answered", "budget_exhausted", "deadline", "max_tool_calls"]
# The engine's outcomes, plus two the planner decides before a call reaches a stack: "refused" (disallowed
# tool or no tool-call budget left) and "invalid" (unknown tool, arguments that are not a JSON object).
CallOutcome = Literal["success", "error", "timeout", "rejected", "cancelled", "refused", "invalid"]


@dataclass(slots=True)
class ToolCallRecord:
    """One tool call of a hop."""

    call_id: str
    tool: str
    arguments: dict[str, Any] | str
    outcome: CallOutcome = "cancelled"  # until it ends: a call still running when the run stops was cancelled
    latency_ms: float = 0.0
    error_type: str | None = None
    error: str | None = None
    result: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


@dataclass(slots=True)
class Hop:
    """One LLM turn and the tool calls it asked for (all run at once)."""

    index: int
    calls: list[ToolCallRecord] = field(default_factory=list)
    content: str | None = None
    llm_latency_ms: float = 0.0

    @property
    def fanout(self) -> int:
        return len(self.calls)


@dataclass(slots=True)
class PlannerResult:
    """``answer`` is the LLM's final answer (``None`` when the run stopped for another ``reason``)."""

    answer: str | None
    reason: StopReason
    trajectory: list[Hop]
    usage: Usage
    duration_s: float
    llm_calls: int

    @property
    def hops(self) -> int:
        """Hops that count toward ``max_hops``: turns with tool calls, except those where every call was invalid
        (those are reported back to the LLM and bounded by ``max_invalid_replies`` instead)."""
        return sum(1 for hop in self.trajectory if any(call.outcome != "invalid" for call in hop.calls))

    @property
    def calls(self) -> list[ToolCallRecord]:
        return [call for hop in self.trajectory for call in hop.calls]

    @property
    def tool_calls(self) -> int:
        """Calls that reached a tool's stack."""
        return sum(1 for call in self.calls if call.outcome not in ("refused", "invalid"))

    @property
    def failures(self) -> int:
        """Calls that reached a tool and failed (error, timeout, rejected, cancelled)."""
        return sum(1 for call in self.calls if call.outcome in ("error", "timeout", "rejected", "cancelled"))

    @property
    def refused(self) -> int:
        return sum(1 for call in self.calls if call.outcome == "refused")

    @property
    def invalid(self) -> int:
        return sum(1 for call in self.calls if call.outcome == "invalid")
