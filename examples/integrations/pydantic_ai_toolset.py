"""Pydantic AI: a toolset behind a penguiflow stack, and a penguiflow ToolNode as a toolset, in one agent.

Pydantic AI's ``FunctionModel`` (offline) asks for 10 searches and 10 catalog look-ups in one step; Pydantic AI runs
all 20 at once. ``wrap_toolset`` holds the searches to 3; the ``ToolNode`` (the local HTTP API's OpenAPI
operations) holds its own calls to its ``max_concurrency`` of 2 — both measured by the API. ~2 s.

    python examples/integrations/pydantic_ai_toolset.py
"""

from __future__ import annotations

import asyncio

import httpx
from pydantic_ai import Agent, FunctionToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from penguiflow.demo.backends import HttpApiServer
from penguiflow.integrations.pydantic_ai import catalog_toolset, wrap_toolset
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType


async def main() -> None:
    async with HttpApiServer() as api:

        async def search(query: str) -> str:
            """Search the knowledge base."""
            async with httpx.AsyncClient() as client:
                response = await client.post(f"{api.url}/echo", json={"query": query})
                response.raise_for_status()
                return response.json()["echo"]["query"]

        node = ToolNode(
            config=ExternalToolConfig(
                name="api", transport=TransportType.HTTP, connection=api.url, max_concurrency=2
            )
        )
        catalog = catalog_toolset(node)  # connects the node when the agent first lists its tools

        def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            if len(messages) > 1:
                return ModelResponse(parts=[TextPart("Everything gathered.")])
            # api.slow, as model APIs get its name (a dot is encoded "--")
            slow = next(tool.name for tool in info.function_tools if tool.name == "api--slow")
            parts = [ToolCallPart("search", {"query": f"topic {i}"}) for i in range(10)]
            parts += [ToolCallPart(slow, {"ms": 100}) for _ in range(10)]
            return ModelResponse(parts=parts)

        searches = wrap_toolset(
            FunctionToolset([search]),
            Retry(RetryPolicy()),
            ConcurrencyLimit(3, name="pydantic_ai.search"),
            Timeout(5),
            source="functions",
        )
        agent = Agent(FunctionModel(model), toolsets=[searches, catalog])
        async with node:
            result = await agent.run("Gather everything")

    print(
        f"{result.output} searches peaked at {api.stats.peak('echo')} (limit 3), "
        f"catalog calls at {api.stats.peak('slow')} (the node's max_concurrency 2)"
    )
    assert api.stats.count("echo") == 10 and api.stats.count("slow") == 10
    assert api.stats.peak("echo") <= 3 and api.stats.peak("slow") <= 2


if __name__ == "__main__":
    asyncio.run(main())
