"""One peer, one telemetry mode, one process: the workloads of ``benchmarks/peers.py``, run by the peer's venv.

    <venv>/bin/python peers_client.py PEER MODE --server-python PY [--seq N] [--conc N] [--limit L]

Standard library plus the peer's own packages only: this file runs in venvs where penguiflow is absent (or is
3.11.2). Prints one ``RESULT {json}`` line. Every peer does the same job — at most ``limit`` calls in flight on
one stdio session, a 30 s per-call timeout, 3 attempts — through the knobs it has, and an ``asyncio.Semaphore``
where it has no limit of its own (the concurrent workload needs one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

SERVER = str(Path(__file__).resolve().parent / "peers_server.py")
TIMEOUT_S = 30.0
ATTEMPTS = 3
WARM_UP = 30

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]
Opener = Callable[[list[str], int, str], contextlib.AbstractAsyncContextManager[Call]]
OPENERS: dict[str, Opener] = {}


def peer(name: str) -> Callable[[Callable[..., AsyncIterator[Call]]], Opener]:
    def register(fn: Callable[..., AsyncIterator[Call]]) -> Opener:
        opener = contextlib.asynccontextmanager(fn)
        OPENERS[name] = opener
        return opener

    return register


# --- the peers: each opens one session to the server and yields call(tool, arguments) ------------------------
@peer("ours")
async def _ours(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType

    config = ExternalToolConfig(
        name="peers",
        transport=TransportType.MCP,
        connection=" ".join(argv),
        max_concurrency=limit,
        timeout_s=TIMEOUT_S,
        retry_policy=RetryPolicy(max_attempts=ATTEMPTS),
    )
    async with ToolNode(config) as node:

        def call(tool: str, arguments: dict[str, Any]) -> Awaitable[Any]:
            return node.call(f"peers.{tool}", arguments)

        yield call


@peer("pf311")
async def _pf311(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    from penguiflow.registry import ModelRegistry
    from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType

    config = ExternalToolConfig(
        name="peers",
        transport=TransportType.MCP,
        connection=" ".join(argv),
        max_concurrency=limit,
        timeout_s=TIMEOUT_S,
        retry_policy=RetryPolicy(max_attempts=ATTEMPTS),
    )
    node = ToolNode(config=config, registry=ModelRegistry())
    await node.connect()
    try:

        def call(tool: str, arguments: dict[str, Any]) -> Awaitable[Any]:
            return node.call(f"peers.{tool}", arguments, None)  # 3.11.2's third argument: a ToolContext

        yield call
    finally:
        await node.close()


@peer("bare")
async def _bare(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    """What a user writes without a framework: fastmcp's Client, a Semaphore, asyncio.timeout, tenacity."""
    from fastmcp import Client
    from fastmcp.client.transports import StdioTransport
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

    client = Client(StdioTransport(argv[0], argv[1:], keep_alive=False))
    gate = asyncio.Semaphore(limit)
    retrying = {
        "stop": stop_after_attempt(ATTEMPTS),
        "wait": wait_random_exponential(multiplier=0.1, max=10),
        "retry": retry_if_exception_type((TimeoutError, ConnectionError)),
        "reraise": True,
    }

    async def call(tool: str, arguments: dict[str, Any]) -> Any:
        async for attempt in AsyncRetrying(**retrying):
            with attempt:
                async with gate, asyncio.timeout(TIMEOUT_S):
                    return (await client.call_tool(tool, arguments)).data
        return None

    async with client:
        yield call


@peer("pyai")
async def _pyai(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    """Pydantic AI's MCP toolset, each call holding a slot of its own ConcurrencyLimiter."""
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.concurrency import ConcurrencyLimiter
    from pydantic_ai.mcp import MCPToolset

    if mode == "on":
        from pydantic_ai import Agent

        Agent.instrument_all()  # its telemetry switch (agent runs; a direct call records what it records)
    toolset = MCPToolset(
        StdioTransport(argv[0], argv[1:], keep_alive=False),
        tool_error_behavior="error",
        read_timeout=TIMEOUT_S,
    )
    limiter = ConcurrencyLimiter(limit, name="peers")

    async def call(tool: str, arguments: dict[str, Any]) -> Any:
        await limiter.acquire("peers")
        try:
            return await toolset.direct_call_tool(tool, arguments)
        finally:
            limiter.release()

    async with toolset:
        yield call


@peer("oai")
async def _oai(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    """The OpenAI Agents SDK's MCP server class (it drives the mcp SDK's ClientSession itself)."""
    from agents import set_tracing_disabled
    from agents.mcp import MCPServerStdio

    set_tracing_disabled(True)  # its own tracing exports to OpenAI, not OpenTelemetry
    server = MCPServerStdio(
        params={"command": argv[0], "args": argv[1:]},
        name="peers",
        cache_tools_list=True,
        client_session_timeout_seconds=TIMEOUT_S,
        max_retry_attempts=ATTEMPTS - 1,
    )
    gate = asyncio.Semaphore(limit)
    async with server:
        await server.list_tools()  # what an agent run does before its first call

        async def call(tool: str, arguments: dict[str, Any]) -> Any:
            async with gate:
                result = await server.call_tool(tool, arguments)
            if result.is_error:
                raise RuntimeError(f"{tool} failed")
            return result

        yield call


@peer("lc")
async def _lc(argv: list[str], limit: int, mode: str) -> AsyncIterator[Call]:
    """LangChain's MCP adapters on one persistent session, called as LangGraph's ToolNode calls a tool."""
    from datetime import timedelta

    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.tools import load_mcp_tools

    connection = {
        "transport": "stdio",
        "command": argv[0],
        "args": argv[1:],
        "session_kwargs": {"read_timeout_seconds": timedelta(seconds=TIMEOUT_S)},
    }
    gate = asyncio.Semaphore(limit)
    ids = iter(range(1, 1 << 62))
    async with MultiServerMCPClient({"peers": connection}).session("peers") as session:
        tools = {tool.name: tool for tool in await load_mcp_tools(session, server_name="peers")}

        async def call(tool: str, arguments: dict[str, Any]) -> Any:
            request = {"type": "tool_call", "name": tool, "args": arguments, "id": f"call_{next(ids)}"}
            async with gate:
                message = await tools[tool].ainvoke(request)
            if getattr(message, "status", "success") == "error":
                raise RuntimeError(f"{tool} failed")
            return message

        yield call


# --- telemetry on: the SDK as an application installs it ----------------------------------------------------
class Ledger:
    """The OpenTelemetry SDK installed globally (batch span processor, in-memory metric reader), every
    exported span kept as (trace id, span id, parent id, scope, name) so the workloads' traces can be read."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        spans: list[tuple[int, int, int | None, str, str]] = []

        class Keep(SpanExporter):
            def export(self, batch: Any) -> Any:
                for span in batch:
                    scope = span.instrumentation_scope.name if span.instrumentation_scope else "?"
                    parent = span.parent.span_id if span.parent else None
                    spans.append((span.context.trace_id, span.context.span_id, parent, scope, span.name))
                return SpanExportResult.SUCCESS

        self.spans = spans
        self.tracer_provider = TracerProvider()
        # Large enough that no span is dropped: the counts must be exact.
        self.tracer_provider.add_span_processor(BatchSpanProcessor(Keep(), max_queue_size=1 << 15))
        self.reader = InMemoryMetricReader()
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))

    def mark(self) -> int:
        self.tracer_provider.force_flush()
        return len(self.spans)

    def shape(self, start: int, calls: int) -> dict[str, Any]:
        """The spans exported since ``start`` for ``calls`` calls: per call by scope, and how they form traces
        (a root is a span whose parent is not among them)."""
        window = self.spans[start : self.mark()]
        ids = {span_id for _t, span_id, _p, _s, _n in window}
        by_scope: Counter[str] = Counter()
        roots: Counter[str] = Counter()
        children: Counter[str] = Counter()
        for _trace, _span, parent, scope, name in window:
            by_scope[scope] += 1
            label = f"{scope}: {' '.join(name.split()[:-1]) or name}"  # the tool's name left out
            (roots if parent is None or parent not in ids else children)[label] += 1
        return {
            "spans_per_call": {scope: round(n / calls, 3) for scope, n in sorted(by_scope.items())},
            "roots_per_call": {label: round(n / calls, 3) for label, n in sorted(roots.items())},
            "children_per_call": {label: round(n / calls, 3) for label, n in sorted(children.items())},
        }

    def instruments(self) -> dict[str, list[str]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[str]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                found.setdefault(scope.scope.name, []).extend(sorted(m.name for m in scope.metrics))
        return found


# --- the workloads ------------------------------------------------------------------------------------------
class Stretches:
    """Where the measured stretches of the workloads begin and end. By default nothing happens there; with
    ``--mark`` the process runs under callgrind (``_instructions.py``) and each stretch runs in a region of its
    own: the workload task stops at :meth:`begin`, and the main thread resumes the loop inside the region until
    :meth:`end` — the same task, the same session, nothing rebuilt."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self.waiting: asyncio.Future[asyncio.Future[None]] | None = loop.create_future() if loop else None
        self.running: asyncio.Future[None] | None = None

    async def begin(self) -> None:
        if self.loop is None or self.waiting is None:
            return
        go = self.loop.create_future()
        self.waiting.set_result(go)
        await go

    def end(self) -> None:
        if self.running is not None:
            self.running.set_result(None)

    def drive(self, task: asyncio.Task[Any]) -> list[Any]:
        """Runs ``task`` to its end, each stretch inside a region; returns what each region returned."""
        assert self.loop is not None and self.waiting is not None
        loop = self.loop

        def until(future: asyncio.Future[Any]) -> None:
            loop.run_until_complete(asyncio.wait([future, task], return_when=asyncio.FIRST_COMPLETED))

        marked = []
        while True:
            until(self.waiting)
            if task.done():
                return marked
            go = self.waiting.result()
            self.waiting, self.running = loop.create_future(), loop.create_future()
            go.set_result(None)
            marked.append(_region(lambda: until(self.running)))  # type: ignore[arg-type]


def _region(fn: Callable[[], Any]) -> Any:
    """``_instructions.region``, inlined: this file must run where the benchmarks package is not importable."""
    import functools

    result: list[Any] = []
    functools.reduce(lambda _a, _b: result.append(fn()), (0, 1))
    return result[0]


def read_json(path: str) -> dict[str, Any]:
    """The server's stats file: a few bytes, read between the measured stretches."""
    with open(path) as file:
        report: dict[str, Any] = json.load(file)
    return report


async def workloads(args: argparse.Namespace, stretches: Stretches | None = None) -> dict[str, Any]:
    stretches = stretches or Stretches()
    ledger = Ledger() if args.mode == "on" else None
    descriptor, stats_path = tempfile.mkstemp(prefix="peers-stats-", suffix=".json")
    os.close(descriptor)

    async def server_stats(call: Call) -> dict[str, Any]:
        await call("stats", {})
        return read_json(stats_path)

    out: dict[str, Any] = {"peer": args.peer, "mode": args.mode, "pid": os.getpid()}
    started = time.perf_counter()
    try:
        async with OPENERS[args.peer](
            [args.server_python, SERVER, stats_path], args.limit, args.mode
        ) as call:
            out["connect_s"] = round(time.perf_counter() - started, 3)
            for i in range(WARM_UP):
                await call("echo", {"text": f"warm-up {i}"})
            await asyncio.gather(*(call("sleep", {"ms": 0}) for _ in range(2 * args.limit)))
            await server_stats(call)
            mark = ledger.mark() if ledger else 0

            # 1. sequential echo calls: latency, and the client's CPU per call
            gc.collect()
            latencies: list[float] = []
            await stretches.begin()
            cpu = time.process_time()
            for i in range(args.seq):
                t = time.perf_counter()
                await call("echo", {"text": f"hello {i}"})
                latencies.append(time.perf_counter() - t)
            cpu = time.process_time() - cpu
            stretches.end()
            server = await server_stats(call)
            out["seq"] = {
                "calls": server["calls"],
                "median_us": statistics.median(latencies) * 1e6,
                "p90_us": sorted(latencies)[int(0.9 * (len(latencies) - 1))] * 1e6,
                "cpu_us_per_call": cpu / args.seq * 1e6,
                "server_cpu_us_per_call": server["cpu_s"] / args.seq * 1e6,
            }
            if ledger:
                out["seq"]["telemetry"] = ledger.shape(mark, args.seq + 1)  # + the stats call
                mark = ledger.mark()

            # 2. concurrent sleep(d) calls under the limit: makespan against the ideal conc * d / limit
            makespans, cpus, peaks = [], [], []
            for _ in range(args.reps):
                gc.collect()
                await stretches.begin()
                cpu, t = time.process_time(), time.perf_counter()
                await asyncio.gather(*(call("sleep", {"ms": args.sleep_ms}) for _ in range(args.conc)))
                makespans.append(time.perf_counter() - t)
                cpus.append(time.process_time() - cpu)
                stretches.end()
                server = await server_stats(call)
                peaks.append(server["peak"])
                if server["calls"] != args.conc:
                    raise RuntimeError(f"the server saw {server['calls']} calls, not {args.conc}")
            ideal = args.conc * args.sleep_ms / 1000 / args.limit
            out["conc"] = {
                "makespan_s": statistics.median(makespans),
                "makespans_s": makespans,
                "ideal_s": ideal,
                "makespan_over_ideal": statistics.median(makespans) / ideal,
                "cpu_us_per_call": statistics.median(cpus) / args.conc * 1e6,
                "server_peak": max(peaks),
            }
            if ledger:
                out["conc"]["telemetry"] = ledger.shape(mark, (args.conc + 1) * args.reps)
    finally:
        os.remove(stats_path)
    if ledger:
        out["instruments"] = ledger.instruments()
        ledger.tracer_provider.shutdown()
    return out


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("peer", choices=sorted(OPENERS))
    cli.add_argument("mode", choices=["off", "on"])
    cli.add_argument("--server-python", default=sys.executable)
    cli.add_argument("--seq", type=int, default=200)
    cli.add_argument("--conc", type=int, default=200)
    cli.add_argument("--limit", type=int, default=10)
    cli.add_argument("--sleep-ms", type=int, default=20)
    cli.add_argument("--reps", type=int, default=3, help="repetitions of the concurrent workload")
    cli.add_argument("--mark", action="store_true", help="each measured stretch in a callgrind region")
    args = cli.parse_args()
    if not args.mark:
        result = asyncio.run(workloads(args))
    else:
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            stretches = Stretches(loop)
            task = loop.create_task(workloads(args, stretches))
            stretches.drive(task)
            result = task.result()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
