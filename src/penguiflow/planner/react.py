"""``ReactPlanner``: ask the LLM, run the tool calls it asks for (all at once, under Level 1 and 2), repeat.

Every tool call goes through its catalog entry's stack with the planner's limiters on ``call.limits``; the
engine admits them together with the tool source's own limit (Level 3) in one decision, at the stack's
admission point (inside retry), whatever layers the entry has: a call sleeping in back-off or waiting for its
source holds no planner slot, and LLM calls never count toward a tool limit. Level 1 is shared fairly between
concurrent runs (each run a flow of its ``fair`` limiter) unless ``fairness="fifo"``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import StatusCode

from penguiflow.errors import ConfigurationError
from penguiflow.middleware import ConcurrencyLimit, Middleware
from penguiflow.middleware.fairness import FAIRNESS, Fairness
from penguiflow.middleware.validation import check_count, check_name
from penguiflow.planner.chat import ask, open_span
from penguiflow.planner.checks import check_catalog, check_llm, check_middleware
from penguiflow.planner.errors import LLMOutputError
from penguiflow.planner.hints import PlanningHints, parse_hints, render_hints
from penguiflow.planner.llm.base import LLMClient, LLMReply, Message, ToolSchema
from penguiflow.planner.result import Hop, PlannerResult, StopReason
from penguiflow.planner.state import RunFlow, RunState
from penguiflow.planner.tool_turn import run_tool_turn
from penguiflow.telemetry import instruments, names
from penguiflow.tools.catalog import ToolEntry
from penguiflow.tools.node import PendingTools

__all__ = ["ReactPlanner"]

MAX_ABSOLUTE_PARALLEL = 1000
LEVEL1_NAME = "planner"  # the limiter names the demo and dashboards know Levels 1 and 2 by
LEVEL2_NAME = "run"

DEFAULT_SYSTEM_PROMPT = (
    "You are {agent}, an agent that fulfils the user's request with the tools offered. "
    "Call several tools in one turn when they do not depend on each other: they run in parallel. "
    "A tool result may be an error; decide whether to retry, use another tool, or answer without it. "
    "When you have the answer, reply with it as plain text and call no tool."
)


class ReactPlanner:
    """A ReAct loop over a catalog of tools.

    ``llm`` is a model name (served by :class:`OpenAIChatClient`, reading ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` at the first call) or any :class:`~penguiflow.planner.llm.LLMClient`.
    ``absolute_max_parallel`` (Level 1, 1..1000) bounds the tool calls running over all concurrent runs;
    calls beyond it wait, holding no slot. ``fairness`` is how Level 1 shares its slots between concurrent runs:
    ``"fair"`` (default) serves the runs round-robin, FIFO within a run — a run that fans out 500 calls does
    not make a later run wait behind all of them — and ``"fifo"`` in arrival order over all runs. ``max_hops`` is the default number of tool-call turns per run
    (``planning_hints["budget"]["max_hops"]`` overrides it). ``max_invalid_replies`` is how many unusable LLM
    replies a run reports back to the LLM before it raises :class:`~penguiflow.planner.LLMOutputError`: a turn
    counts as one when a tool call in it has arguments that are not a JSON object, names an unknown tool or has
    arguments the tool's schema refuses (``ToolValidationError``), or when the reply is empty.
    ``middleware`` are layers run around every tool call of the planner, native ones included, outside each
    source's own layers (so they see its retries and timeouts) — the guide's ``log_flow_events(logger,
    latency_callback=...)`` goes here.

    >>> planner = ReactPlanner(catalog=[*github.get_tools(), summarize], llm="gpt-4", absolute_max_parallel=50)
    >>> result = await planner.run("Triage the open issues", planning_hints={"max_parallel": 5})
    >>> result.answer, result.reason, result.hops, result.tool_calls
    """

    def __init__(
        self,
        catalog: Sequence[ToolEntry],
        llm: str | LLMClient,
        *,
        absolute_max_parallel: int = 50,
        max_hops: int = 8,
        system_prompt: str | None = None,
        agent_name: str = "penguiflow",
        max_invalid_replies: int = 3,
        max_observation_chars: int = 8000,
        middleware: Sequence[Middleware] = (),
        fairness: Fairness = "fair",
    ) -> None:
        self.catalog: dict[str, ToolEntry] = check_catalog(catalog)
        self.middleware: tuple[Middleware, ...] = check_middleware(middleware)
        # Sources listed before they connected (ToolNode.get_tools() before connect()): resolved at first run.
        self._connect_lock = asyncio.Lock()
        self.llm: LLMClient = check_llm(llm)
        check_count(absolute_max_parallel, "absolute_max_parallel", minimum=1)
        if absolute_max_parallel > MAX_ABSOLUTE_PARALLEL:
            raise ConfigurationError(
                "absolute_max_parallel",
                f"must be at most {MAX_ABSOLUTE_PARALLEL}, got {absolute_max_parallel}",
            )
        self.max_hops = check_count(max_hops, "max_hops", minimum=1)
        self.agent_name = check_name(agent_name, "agent_name")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigurationError("system_prompt", f"must be a string, got {type(system_prompt).__name__}")
        self.system_prompt = system_prompt
        self.max_invalid_replies = check_count(max_invalid_replies, "max_invalid_replies", minimum=0)
        self.max_observation_chars = check_count(max_observation_chars, "max_observation_chars", minimum=100)
        if fairness not in FAIRNESS:
            raise ConfigurationError("fairness", f"must be one of {', '.join(FAIRNESS)}, got {fairness!r}")
        # Level 1: one limiter for every run of this planner; each run is a flow of it.
        self.limiter = ConcurrencyLimit(absolute_max_parallel, name=LEVEL1_NAME, fairness=fairness)

    @property
    def absolute_max_parallel(self) -> int:
        return self.limiter.limit

    @property
    def model(self) -> str:
        return str(getattr(self.llm, "model", type(self.llm).__name__))

    async def connect(self) -> None:
        """Connect every tool source listed before it had connected and put its tools in the catalog.

        ``run()`` does this first; call it yourself to pay the connection cost up front. A source that cannot
        be reached raises its typed error (:class:`~penguiflow.errors.ToolConnectionError`, …) and is tried
        again at the next run."""
        if not any(isinstance(entry, PendingTools) for entry in self.catalog.values()):
            return
        async with self._connect_lock:
            entries = list(self.catalog.values())
            pending = [entry for entry in entries if isinstance(entry, PendingTools)]
            if not pending:
                return
            resolved = await asyncio.gather(*(entry.resolve() for entry in pending))
            tools = dict(zip((id(entry) for entry in pending), resolved, strict=True))
            self.catalog = check_catalog(
                [tool for entry in entries for tool in tools.get(id(entry), [entry])]
            )

    async def aclose(self) -> None:
        """Close the LLM client's connections, if it has any."""
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()

    # --- one run ---------------------------------------------------------------------------------------------
    async def run(
        self,
        query: str,
        planning_hints: Mapping[str, Any] | PlanningHints | None = None,
        *,
        flow: str | None = None,
        weight: int = 1,
    ) -> PlannerResult:
        """Answer ``query``. ``flow`` names who the run is for (a tenant): runs with the same ``flow`` share one
        turn of Level 1's round-robin, and it labels the per-flow Level 1 metrics; by default each run is a flow
        of its own, unlabelled. ``weight`` is the flow's share: served ``weight`` calls per turn. Raises :class:`~penguiflow.planner.PlanningHintsError` for bad hints (before
        anything runs), :class:`~penguiflow.planner.LLMError` when the LLM cannot be asked and
        :class:`~penguiflow.planner.LLMOutputError` after too many unusable replies. Tool failures never raise:
        the LLM sees them as observations. Cancelling the run cancels its tool calls and frees their slots."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigurationError("query", "must be a non-empty string")
        hints = parse_hints(planning_hints)
        if flow is not None and (not isinstance(flow, str) or not flow):
            raise ConfigurationError("flow", f"must be a non-empty string, got {flow!r}")
        check_count(weight, "weight", minimum=1)
        # The deadline covers connecting the tool sources too: a server that never answers must not hold the run.
        deadline_at = (
            None if hints.deadline_s is None else asyncio.get_running_loop().time() + hints.deadline_s
        )
        connected = await self._connect_by(deadline_at)
        telemetry = instruments.current()
        start = time.perf_counter()
        state = self._new_run(query, hints, flow if flow is not None else RunFlow(), weight)
        reason: str = "error"
        attributes = {
            names.GEN_AI_OPERATION_NAME: names.OPERATION_INVOKE_AGENT,
            names.GEN_AI_AGENT_NAME: self.agent_name,
        }
        with open_span(telemetry, names.SPAN_INVOKE_AGENT.format(agent=self.agent_name), attributes) as span:
            try:
                if connected:
                    answer, stop = await self._loop_until_deadline(state, deadline_at)
                else:
                    answer, stop = None, "deadline"
                reason = stop
            except asyncio.CancelledError:
                reason = "cancelled"
                raise
            except BaseException as exc:
                if span is not None:
                    span.set_attribute(names.ERROR_TYPE, type(exc).__qualname__)
                    span.set_status(StatusCode.ERROR, type(exc).__qualname__)
                raise
            finally:
                for limit in state.limits:
                    if limit is not self.limiter:  # this run's own Level 2 limiter ends with it
                        instruments.unregister_limiter(limit)
                duration = time.perf_counter() - start
                if span is not None:
                    span.set_attribute(names.PLANNER_STOP_REASON, reason)
                    span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, state.usage.input_tokens)
                    span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, state.usage.output_tokens)
                if telemetry is not None and telemetry.metrics is not None:
                    labels = {names.GEN_AI_AGENT_NAME: self.agent_name, names.PLANNER_STOP_REASON: reason}
                    telemetry.metrics.add(names.PLANNER_RUNS, 1, labels)
                    telemetry.metrics.record(names.AGENT_DURATION, duration, labels)
        return PlannerResult(
            answer=answer,
            reason=stop,
            trajectory=state.trajectory,
            usage=state.usage,
            duration_s=duration,
            llm_calls=state.llm_calls,
        )

    def _new_run(self, query: str, hints: PlanningHints, flow: Hashable, weight: int) -> RunState:
        limits: tuple[ConcurrencyLimit, ...] = (self.limiter,)
        if hints.max_parallel is not None:
            # Admitted jointly with Level 1 and the source's limit: a call waiting for its run's own limit
            # holds none of the planner's slots.
            limits = (ConcurrencyLimit(hints.max_parallel, name=LEVEL2_NAME), self.limiter)
        prompt = (self.system_prompt or DEFAULT_SYSTEM_PROMPT).replace("{agent}", self.agent_name)
        guidance = render_hints(hints)
        if guidance:
            prompt = f"{prompt}\n\n{guidance}"
        tools = [
            ToolSchema(entry.name, entry.description, entry.input_schema)
            for entry in self.catalog.values()
            if not hints.disallows(entry.name)
        ]
        messages: list[Message] = [{"role": "system", "content": prompt}, {"role": "user", "content": query}]
        return RunState(hints=hints, limits=limits, flow=flow, weight=weight, messages=messages, tools=tools)

    async def _connect_by(self, deadline_at: float | None) -> bool:
        """:meth:`connect`, by ``deadline_at`` (loop time) if given; ``False`` if the deadline came first."""
        if deadline_at is None:
            await self.connect()
            return True
        try:
            async with asyncio.timeout_at(deadline_at) as scope:
                await self.connect()
        except TimeoutError:
            if not scope.expired():
                raise  # a source's own connect timeout: its typed error, as without a deadline
            return False
        return True

    async def _loop_until_deadline(
        self, state: RunState, deadline_at: float | None
    ) -> tuple[str | None, StopReason]:
        if deadline_at is None:
            return await self._loop(state)
        try:
            async with asyncio.timeout_at(deadline_at) as scope:
                return await self._loop(state)
        except TimeoutError:
            if not scope.expired():
                raise  # a TimeoutError of the LLM client's own, not our deadline
            return None, "deadline"

    async def _loop(self, state: RunState) -> tuple[str | None, StopReason]:
        max_hops = state.hints.budget.max_hops or self.max_hops
        while True:
            if state.hops_used >= max_hops:
                return await self._last_word(
                    state, f"budget of {max_hops} tool-call turn(s)"
                ), "budget_exhausted"
            reply, llm_ms = await self._ask(state)
            if not reply.tool_calls:
                if reply.content and reply.content.strip():
                    state.trajectory.append(
                        Hop(len(state.trajectory) + 1, content=reply.content, llm_latency_ms=llm_ms)
                    )
                    return reply.content, "answered"
                self._strike(state, "an empty reply")
                state.messages.append({"role": "assistant", "content": reply.content or ""})
                state.messages.append(
                    {"role": "user", "content": "Your reply was empty: call tools, or answer in plain text."}
                )
                continue
            hop = Hop(len(state.trajectory) + 1, content=reply.content, llm_latency_ms=llm_ms)
            state.trajectory.append(hop)
            budget_hit, invalid = await run_tool_turn(
                state,
                hop,
                reply,
                catalog=self.catalog,
                middleware=self.middleware,
                agent_name=self.agent_name,
                max_observation_chars=self.max_observation_chars,
            )
            if invalid:  # bad JSON, unknown tools, arguments the schema refused: the LLM's mistakes
                self._strike(state, invalid[-1])
            if budget_hit:
                limit = state.hints.max_tool_calls
                return await self._last_word(state, f"budget of {limit} tool call(s)"), "max_tool_calls"

    async def _last_word(self, state: RunState, budget: str) -> str | None:
        """One more LLM turn, with no tools offered, so the results of the last hop are not wasted: the run
        still ends for its budget, but with the LLM's best answer when it gives one."""
        state.messages.append(
            {
                "role": "user",
                "content": f"The {budget} is spent. Answer now with what you have; no more tool calls.",
            }
        )
        reply, llm_ms = await self._ask(state, offer_tools=False)
        answer = reply.content if not reply.tool_calls and reply.content and reply.content.strip() else None
        state.trajectory.append(Hop(len(state.trajectory) + 1, content=reply.content, llm_latency_ms=llm_ms))
        return answer

    # --- the LLM ----------------------------------------------------------------------------------------------
    async def _ask(self, state: RunState, *, offer_tools: bool = True) -> tuple[LLMReply, float]:
        return await ask(self.llm, self.model, state, offer_tools=offer_tools)

    def _strike(self, state: RunState, what: str) -> None:
        state.strikes += 1
        if state.strikes > self.max_invalid_replies:
            raise LLMOutputError(
                f"the LLM ({self.model}) kept producing unusable replies; the last one had {what}",
                attempts=state.strikes,
            )
