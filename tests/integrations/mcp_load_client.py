"""One client process of the FastMCP server-middleware test: a penguiflow ToolNode over streamable HTTP, its own
OpenTelemetry SDK. It connects, prints ``ready``, waits for a line on stdin, then sends COUNT calls of TOOL at
once and prints one JSON line: the results and the (trace id, span id) of every span it recorded — the server's
spans must be their children.

    python mcp_load_client.py URL TOOL COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType


async def main(url: str, tool: str, count: int) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    config = ExternalToolConfig(
        name="load",
        transport=TransportType.MCP,
        connection=url,
        max_concurrency=count,
        timeout_s=60,
        retry_policy=RetryPolicy(max_attempts=1),
    )
    async with ToolNode(config) as node:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        results = await asyncio.gather(*(node.call(f"load.{tool}", {"i": i}) for i in range(count)))
    spans = [
        [format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"), s.name]
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"results": results, "spans": spans}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
