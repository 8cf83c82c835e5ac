"""``planning_hints``: parse and validate them, and render the ones only the LLM can act on into its prompt.

Enforced by the planner: ``max_parallel`` (Level 2), ``disallow_nodes``, ``budget.max_hops``, ``deadline_s``,
``max_tool_calls``. Guidance for the LLM (rendered into the system prompt): ``preferred_order``,
``parallel_groups``, ``preferred_nodes``. Tool names in ``disallow_nodes`` may be ``fnmatch`` patterns
(``"github.*"``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from penguiflow.planner.errors import PlanningHintsError

__all__ = ["Budget", "PlanningHints", "parse_hints", "render_hints"]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Budget(BaseModel):
    """Limits on planning iterations."""

    model_config = _STRICT

    max_hops: int | None = Field(None, ge=1)


class PlanningHints(BaseModel):
    """The validated ``planning_hints`` of one run."""

    model_config = _STRICT

    max_parallel: int | None = Field(None, ge=1)
    preferred_order: list[str] = Field(default_factory=list)
    parallel_groups: list[list[str]] = Field(default_factory=list)
    disallow_nodes: list[str] = Field(default_factory=list)
    preferred_nodes: list[str] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    deadline_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_tool_calls: int | None = Field(None, ge=0)

    def disallows(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.disallow_nodes)


def parse_hints(hints: Mapping[str, Any] | PlanningHints | None) -> PlanningHints:
    """Validate ``hints``; an unknown key or a wrong type raises :class:`PlanningHintsError` naming the key."""
    if hints is None:
        return PlanningHints()
    if isinstance(hints, PlanningHints):
        return hints
    if not isinstance(hints, Mapping):
        raise PlanningHintsError("planning_hints", f"must be a mapping, got {type(hints).__name__}")
    data = dict(hints)
    # Strict mode refuses an int where a float is meant; seconds are naturally written as ints.
    if isinstance(data.get("deadline_s"), int) and not isinstance(data.get("deadline_s"), bool):
        data["deadline_s"] = float(data["deadline_s"])
    try:
        return PlanningHints.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "planning_hints"
        if error["type"] == "extra_forbidden":
            message = f"unknown planning hint (known: {', '.join(_known(error['loc']))})"
        else:
            message = f"{error['msg']}, got {error.get('input')!r}"
        raise PlanningHintsError(f"planning_hints.{field}", message) from None


def _known(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Budget if len(loc) > 1 and loc[0] == "budget" else PlanningHints
    return list(model.model_fields)


def render_hints(hints: PlanningHints) -> str:
    """The guidance part of ``hints`` as prompt text ("" when there is none)."""
    lines: list[str] = []
    if hints.preferred_order:
        lines.append(
            "- When these tools are all needed, call them in this order: " + " → ".join(hints.preferred_order)
        )
    for group in hints.parallel_groups:
        lines.append(
            "- These tools are independent and may be called together in one turn: " + ", ".join(group)
        )
    if hints.preferred_nodes:
        lines.append("- Prefer these tools when they can do the job: " + ", ".join(hints.preferred_nodes))
    if hints.max_parallel == 1:
        lines.append("- Tool calls run one at a time for this request.")
    if hints.budget.max_hops is not None:
        lines.append(f"- You have at most {hints.budget.max_hops} turn(s) of tool calls; answer within them.")
    if hints.max_tool_calls is not None:
        lines.append(f"- At most {hints.max_tool_calls} tool call(s) in total for this request.")
    if not lines:
        return ""
    return "Planning hints for this request:\n" + "\n".join(lines)
