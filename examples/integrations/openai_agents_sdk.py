"""OpenAI Agents SDK: ``FunctionTool``\\ s behind a penguiflow stack, inside ``Runner.run``.

The model is a local Chat Completions server playing a script (offline; the real OpenAI client talks to it): it asks
for 12 look-ups and one report in one turn. The SDK would run all 13 at once; ``wrap_function_tool`` puts them
behind one ``ConcurrencyLimit(3)`` — measured by the local HTTP API — and the report's 503 is retried, outside the
limit, to a 200. ~2 s.

    python examples/integrations/openai_agents_sdk.py
"""

from __future__ import annotations

import asyncio

import httpx
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from penguiflow.demo.backends import HttpApiServer
from penguiflow.demo.backends.chat_completions import chat_completions_server
from penguiflow.integrations.openai_agents import wrap_function_tool
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout

set_tracing_disabled(True)  # the SDK's own traces would go to OpenAI; penguiflow's spans are OpenTelemetry


async def main() -> None:
    async with HttpApiServer(flaky_failures=1) as api:

        @function_tool
        async def lookup(item: str) -> str:
            """Look an item up."""
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{api.url}/slow", params={"ms": 100})
                response.raise_for_status()
                return f"{item}: in stock"

        @function_tool
        async def report(quarter: str) -> str:
            """Fetch a quarterly report (the API answers 503 once)."""
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{api.url}/flaky", params={"key": quarter})
                response.raise_for_status()
                return f"report {quarter}, attempt {response.json()['attempt']}"

        # One limiter for both tools: the 13 calls share 3 slots.
        layers = (
            Retry(RetryPolicy(wait_exponential_min_s=0.05)),
            ConcurrencyLimit(3, name="agents.tools"),
            Timeout(5),
        )
        tools = [wrap_function_tool(lookup, *layers), wrap_function_tool(report, *layers)]
        script = [
            [*(("lookup", {"item": f"sku-{i}"}) for i in range(12)), ("report", {"quarter": "Q3"})],
            "Stock checked.",
        ]
        with chat_completions_server(script) as model_server:
            client = AsyncOpenAI(base_url=model_server.url, api_key="not-needed", max_retries=0)
            agent = Agent(
                name="inventory",
                instructions="Check the stock.",
                tools=tools,
                model=OpenAIChatCompletionsModel(model="scripted", openai_client=client),
            )
            result = await Runner.run(agent, "Check all SKUs")
            sent_back = [m["content"] for m in model_server.tool_results()]

    print(f"{result.final_output} {len(sent_back)} tool results; the last: {sent_back[-1]!r}")
    print(
        f"look-ups peaked at {api.stats.peak('slow')} at once (limit 3); the report took {api.stats.count('flaky')} requests"
    )
    assert api.stats.peak("slow") <= 3 and api.stats.count("flaky") == 2


if __name__ == "__main__":
    asyncio.run(main())
