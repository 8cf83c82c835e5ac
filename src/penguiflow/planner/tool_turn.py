"""One turn of tool calls in a planner run: check the calls the LLM asked for, run them at once, report back.

A call the planner does not run (unknown tool, arguments that are not a JSON object, a disallowed tool, the
``max_tool_calls`` budget spent) still gets an observation, so the conversation stays whole; a failed tool is an
observation too, never a crashed run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from penguiflow.errors import ToolValidationError
from penguiflow.middleware import Middleware
from penguiflow.middleware.call import new_call_id
from penguiflow.middleware.fused import outcome_of
from penguiflow.planner.llm.base import LLMReply
from penguiflow.planner.result import Hop, ToolCallRecord
from penguiflow.planner.state import RunState
from penguiflow.telemetry import instruments, names
from penguiflow.telemetry.bounds import bounded
from penguiflow.tools.catalog import ToolEntry

__all__ = [
    "InvalidToolCallError",
    "ToolBudgetExhaustedError",
    "ToolDisallowedError",
    "observation",
    "parse_arguments",
    "run_tool_turn",
]


class _Refused(Exception):
    """Why the planner did not run a call; reported to the LLM like a tool error."""


class ToolDisallowedError(_Refused):
    """The tool is in ``planning_hints["disallow_nodes"]``."""


class ToolBudgetExhaustedError(_Refused):
    """``planning_hints["max_tool_calls"]`` was reached."""


class InvalidToolCallError(Exception):
    """Unknown tool, or arguments that are not a JSON object."""


async def run_tool_turn(
    state: RunState,
    hop: Hop,
    reply: LLMReply,
    *,
    catalog: Mapping[str, ToolEntry],
    middleware: tuple[Middleware, ...],
    agent_name: str,
    max_observation_chars: int,
) -> tuple[bool, list[str]]:
    """Run the hop's calls at once, each through its entry's stack under the run's limits, and write every
    call's observation into the conversation (also when the run is cancelled mid-hop). Returns whether
    ``max_tool_calls`` cut the hop short, and the LLM's mistakes in it (for the planner's strikes)."""
    to_run: list[tuple[ToolCallRecord, ToolEntry]] = []
    invalid: list[str] = []
    budget_hit = False
    assistant_calls: list[dict[str, Any]] = []
    for call in reply.tool_calls:
        call_id = call.id or new_call_id()
        record = ToolCallRecord(call_id=call_id, tool=call.name, arguments=call.arguments)
        hop.calls.append(record)
        raw = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, default=str)
        assistant_calls.append(
            {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": raw}}
        )
        try:
            arguments = parse_arguments(call.arguments)
            entry = catalog.get(call.name)
            if entry is None:
                raise InvalidToolCallError(
                    f"unknown tool {call.name!r}; the tools are: {', '.join(t.name for t in state.tools)}"
                )
            record.arguments = arguments
            if state.hints.disallows(call.name):
                raise ToolDisallowedError(f"tool {call.name!r} is not allowed for this request")
            limit = state.hints.max_tool_calls
            if limit is not None and state.tool_calls_used >= limit:
                budget_hit = True
                raise ToolBudgetExhaustedError(f"the budget of {limit} tool call(s) is spent")
        except InvalidToolCallError as exc:
            record.outcome, record.error_type, record.error = "invalid", type(exc).__name__, str(exc)
            invalid.append(str(exc))
            continue
        except _Refused as exc:
            record.outcome, record.error_type, record.error = "refused", type(exc).__name__, str(exc)
            continue
        state.tool_calls_used += 1
        to_run.append((record, entry))
    state.messages.append({"role": "assistant", "content": reply.content, "tool_calls": assistant_calls})
    counted = len(invalid) < len(hop.calls)
    if counted:
        state.hops_used += 1
    telemetry = instruments.current()
    if counted and telemetry is not None and telemetry.metrics is not None:
        labels = {names.GEN_AI_AGENT_NAME: agent_name}
        telemetry.metrics.add(names.PLANNER_HOPS, 1, labels)
        telemetry.metrics.record(names.PLANNER_FANOUT, len(to_run), labels)
    try:
        if to_run:
            async with asyncio.TaskGroup() as group:
                for record, entry in to_run:
                    group.create_task(_call(entry, record, state, middleware))
    finally:
        # Also when the run is cancelled or its deadline passes mid-hop: the conversation stays whole.
        for record in hop.calls:
            state.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": record.call_id,
                    "content": observation(record, max_observation_chars),
                }
            )
    # Arguments the tool's schema refused are the LLM's mistake too: reported back (as the observation
    # above) and bounded by the same strikes as bad JSON and unknown tools.
    invalid += [
        f"arguments {record.tool} refused ({record.error})"
        for record in hop.calls
        if record.error_type == ToolValidationError.__name__
    ]
    return budget_hit, invalid


async def _call(
    entry: ToolEntry, record: ToolCallRecord, state: RunState, middleware: tuple[Middleware, ...]
) -> None:
    start = time.perf_counter()
    assert isinstance(record.arguments, dict)
    try:
        # The LLM chose the id: the conversation keeps it whole, the call (its spans, events, logs) a bounded copy.
        record.result = await entry.invoke(
            record.arguments,
            call_id=bounded(record.call_id),
            limits=state.limits,
            layers=middleware,
            flow=state.flow,
            weight=state.weight,
        )
        record.outcome = "success"
    except Exception as exc:  # a failed tool is an observation, never a crashed run
        record.outcome = outcome_of(exc)
        record.error_type = type(exc).__name__
        record.error = str(exc)[:500] or type(exc).__name__
    finally:
        # CancelledError passes through: the record keeps its "cancelled" outcome, with the time it ran.
        record.latency_ms = (time.perf_counter() - start) * 1000


def observation(record: ToolCallRecord, max_chars: int) -> str:
    """What the LLM reads of a call: its result as text (JSON unless a string), or its error, cut at ``max_chars``."""
    if record.outcome == "success":
        text = (
            record.result if isinstance(record.result, str) else json.dumps(record.result, default=_jsonable)
        )
    else:
        error = record.error or ("cancelled" if record.outcome == "cancelled" else record.outcome)
        text = json.dumps({"error": {"type": record.error_type or record.outcome, "message": error}})
    if len(text) > max_chars:
        text = text[:max_chars] + f"… [truncated, {len(text)} chars]"
    return text


def parse_arguments(arguments: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InvalidToolCallError(f"arguments are not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise InvalidToolCallError(f"arguments must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)
