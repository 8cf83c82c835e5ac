"""LangChain v1: every tool call of a ``create_agent`` agent through one penguiflow stack.

The agent (LangChain's fake chat model, offline) asks for 12 searches and one report in a single turn. LangGraph's
``ToolNode`` would run all 13 at once; the middleware's ``ConcurrencyLimit(3)`` holds them to 3 — measured by the
local HTTP API the tools call — and the report, whose first request gets a 503, is retried outside the limit and
succeeds on attempt 2. ~2 s.

    python examples/integrations/langchain_agent.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from penguiflow import log_flow_events
from penguiflow.demo.backends import HttpApiServer
from penguiflow.integrations.langchain import PenguiflowMiddleware
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout


class ScriptedModel(FakeMessagesListChatModel):
    """LangChain's fake chat model, bindable to tools as create_agent requires."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self


async def main() -> None:
    async with HttpApiServer(flaky_failures=1) as api:

        @tool
        async def search(query: str) -> str:
            """Search the knowledge base."""
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{api.url}/slow", params={"ms": 100})
                response.raise_for_status()
                return f"results for {query}"

        @tool
        async def quarterly_report(quarter: str) -> str:
            """Fetch a quarterly report (the API answers 503 once)."""
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{api.url}/flaky", params={"key": quarter})
                response.raise_for_status()  # a 503 raises httpx.HTTPStatusError: Retry knows what it means
                return f"report {quarter} (attempt {response.json()['attempt']})"

        calls = [{"name": "search", "args": {"query": f"topic {i}"}, "id": f"s{i}"} for i in range(12)]
        calls.append({"name": "quarterly_report", "args": {"quarter": "Q3"}, "id": "r1"})
        model = ScriptedModel(
            responses=[AIMessage(content="", tool_calls=calls), AIMessage(content="All done.")]
        )
        agent = create_agent(
            model,
            [search, quarterly_report],
            middleware=[
                PenguiflowMiddleware(
                    log_flow_events(),
                    Retry(RetryPolicy(max_attempts=3, wait_exponential_min_s=0.05)),
                    ConcurrencyLimit(3, name="langchain.tools"),
                    Timeout(5),
                    source="langchain",
                )
            ],
        )
        result = await agent.ainvoke({"messages": [{"role": "user", "content": "Prepare the Q3 review"}]})

    replies = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    print(f"{len(replies)} tool results; the report: {replies[-1]!r}")
    print(f"at most {api.stats.peak('slow')} searches reached the API at once (limit 3)")
    print(
        f"the report took {api.stats.count('flaky')} requests (503, then 200); answer: {result['messages'][-1].content}"
    )
    assert api.stats.peak("slow") <= 3 and api.stats.count("flaky") == 2


if __name__ == "__main__":
    asyncio.run(main())
