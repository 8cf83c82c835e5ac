"""The demo's planner: a ``ReactPlanner`` driven by a scripted LLM (or a real one with ``--llm``).

One planner serves every query of a round, so they share its Level 1 limit. The scripted LLM is one function
for all of them: it recognises the query in the conversation, counts the hops so far and asks for that hop's
calls (only of tools it was offered), then answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from penguiflow.demo import workload
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.tools import ToolEntry

if TYPE_CHECKING:
    from penguiflow.demo.app import DemoOptions

AGENT_NAME = "demo"


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def demo_script(queries: Sequence[workload.Query]) -> Any:
    """The scripted LLM's one reply function, shared by concurrent runs of the given query kinds."""
    by_text = {query.text: query for query in queries}

    def reply(messages: Sequence[Any], tools: Sequence[Any]) -> Any:
        query = next(
            (
                q
                for text, q in by_text.items()
                for m in messages
                if m.get("role") == "user" and text in _text(m)
            ),
            None,
        )
        if query is None:
            return "I have nothing scripted for this query."
        hop = sum(1 for m in messages if m.get("role") == "assistant")
        if hop >= len(query.hops):
            return {"content": query.answer, "usage": {"input_tokens": 40 * (hop + 1), "output_tokens": 12}}
        offered = {getattr(schema, "name", None) for schema in tools}
        calls = [(name, args) for name, args in query.hops[hop] if name in offered]
        return {
            "tool_calls": calls,
            "usage": {"input_tokens": 40 * (hop + 1), "output_tokens": 8 * len(calls)},
        }

    return reply


class QueryBook:
    """The queries of the current round, by text: the scripted LLM looks each run's query up here."""

    def __init__(self) -> None:
        self.queries: dict[str, workload.Query] = {}

    def script(self, messages: Sequence[Any], tools: Sequence[Any]) -> Any:
        return demo_script(list(self.queries.values()))(messages, tools)


BOOK = QueryBook()


def make_planner(catalog: Sequence[ToolEntry], options: DemoOptions) -> ReactPlanner:
    llm: Any = options.llm if options.llm else ScriptedLLM(BOOK.script, model="scripted-demo")
    return ReactPlanner(
        catalog=list(catalog),
        llm=llm,
        absolute_max_parallel=workload.ABSOLUTE_MAX_PARALLEL,
        agent_name=AGENT_NAME,
    )


async def run_query(planner: ReactPlanner, query: workload.Query, options: DemoOptions) -> str:
    BOOK.queries[query.text] = query
    # Each kind of query is a named flow (as a tenant would be): Level 1 shares its slots between them
    # round-robin, and its per-flow queue depth and wait are labelled with the kind.
    result = await planner.run(query.text, planning_hints=query.planning_hints, flow=query.kind)
    return str(getattr(result, "answer", result))
