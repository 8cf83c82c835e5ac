"""``penguiflow demo``: start the backends, build the tool sources and the planner, run rounds of queries, show it.

Everything runs on this machine: the "github" source is a fastmcp server started as a stdio subprocess, "stripe"
and "reports" are the local HTTP API on 127.0.0.1 (429 with Retry-After above 4 concurrent requests, 503s,
slow endpoints), and two native tools run in-process. A scripted LLM plans (``--llm MODEL`` swaps in a real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from penguiflow.demo import events, workload
from penguiflow.demo.backends import mcp_server
from penguiflow.demo.backends.http_api import HttpApiServer
from penguiflow.demo.planning import make_planner, run_query
from penguiflow.demo.stats import Collector, Snapshot
from penguiflow.demo.view import View
from penguiflow.middleware import RetryPolicy
from penguiflow.registry import ModelRegistry
from penguiflow.telemetry.setup import TelemetryHandle, configure
from penguiflow.tools import AuthType, ExternalToolConfig, ToolEntry, ToolNode, TransportType, tool


@dataclass
class DemoOptions:
    duration: float = 20.0
    metrics_port: int | None = None
    otlp: str | None = None  # None: off (unless OTEL_EXPORTER_OTLP_ENDPOINT), "": default endpoint, else URL
    console: bool = False
    llm: str | None = None
    hold: float = 0.0
    service_name: str = "penguiflow-demo"
    seed: int = 7
    stream: Any = None  # where the view writes (default stdout)


@dataclass
class DemoResult:
    snapshot: Snapshot
    rounds: int
    answers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- telemetry -----------------------------------------------------------------------------------------------
def otlp_endpoint(options: DemoOptions) -> str | None:
    """The OTLP/HTTP base URL the demo exports to, or ``None`` when OTLP is off."""
    if options.otlp:
        return options.otlp
    env = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if options.otlp == "":
        return env or "http://localhost:4318"
    return env or None


def setup_telemetry(options: DemoOptions, reader: InMemoryMetricReader) -> TelemetryHandle:
    endpoint = otlp_endpoint(options)
    return configure(
        service_name=options.service_name,
        otlp=endpoint is not None,
        otlp_endpoint=endpoint,
        console=options.console,
        prometheus_port=options.metrics_port,
        # short, so a collector/Prometheus behind OTLP sees the demo while it runs (the default is 60 s)
        metric_export_interval_s=2.0,
        metric_readers=[reader],
    )


# --- tool sources --------------------------------------------------------------------------------------------
DEMO_TOKEN_VARIABLE = "PENGUIFLOW_DEMO_TOKEN"
DEMO_TOKEN = "sk_test_penguiflow_demo"  # used when the variable is unset; a real key never lives in code


def demo_token() -> str:
    return os.environ.get(DEMO_TOKEN_VARIABLE) or DEMO_TOKEN


def demo_auth() -> dict[str, Any]:
    """Bearer auth as a user configures it: ``${VAR}``, expanded at connect time, never logged or exported.
    The local API insists on it (401 otherwise), so the secret is really in play during the demo."""
    token = f"${{{DEMO_TOKEN_VARIABLE}}}" if os.environ.get(DEMO_TOKEN_VARIABLE) else DEMO_TOKEN
    return {"auth_type": AuthType.BEARER, "auth_config": {"token": token}}


def mcp_env(options: DemoOptions) -> dict[str, str]:
    """The stdio MCP server's environment: its own SDK exports to the same OTLP endpoint, so its spans join."""
    env = {
        "PYTHONUNBUFFERED": "1",
        "PENGUIFLOW_MCP_DELAY_S": str(workload.GITHUB_DELAY_S),
        "GITHUB_TOKEN": demo_token(),  # as the guide's GitHub server gets its token: in env, never logged
    }
    endpoint = otlp_endpoint(options)
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        env["OTEL_SERVICE_NAME"] = f"{options.service_name}-github-mcp"
    return env


def github_config(options: DemoOptions) -> ExternalToolConfig:
    return ExternalToolConfig(
        name="github",
        transport=TransportType.MCP,
        connection=mcp_server.command(),
        env=mcp_env(options),
        max_concurrency=workload.GITHUB_LIMIT,
        timeout_s=10,
        tool_filter=list(workload.GITHUB_TOOLS),
        retry_policy=RetryPolicy(max_attempts=3, wait_exponential_min_s=0.1, wait_exponential_max_s=1.0),
    )


def stripe_config(api_url: str) -> ExternalToolConfig:
    return ExternalToolConfig(
        **demo_auth(),
        name="stripe",
        transport=TransportType.HTTP,
        connection=api_url,
        max_concurrency=workload.STRIPE_LIMIT,
        timeout_s=5,
        tool_filter=["rate_limited", "flaky"],
        # the guide's "conservative retry for rate limits", with shorter waits so the demo stays short
        retry_policy=RetryPolicy(
            max_attempts=5,
            wait_exponential_min_s=0.2,
            wait_exponential_max_s=2.0,
            retry_on_status=(429, 500, 502, 503, 504),
            max_retry_after_s=2.0,
        ),
    )


def reports_config(api_url: str) -> ExternalToolConfig:
    return ExternalToolConfig(
        **demo_auth(),
        name="reports",
        transport=TransportType.HTTP,
        connection=api_url,
        max_concurrency=workload.REPORTS_LIMIT,
        timeout_s=workload.REPORTS_TIMEOUT_S,
        tool_filter=["slow"],
        retry_policy=RetryPolicy(max_attempts=2, wait_exponential_min_s=0.1, wait_exponential_max_s=0.5),
    )


def inventory_config(api_url: str) -> ExternalToolConfig:
    return ExternalToolConfig(
        **demo_auth(),
        name="inventory",
        transport=TransportType.HTTP,
        connection=api_url,
        max_concurrency=workload.INVENTORY_CEILING,  # the ceiling: the limit itself finds the capacity
        adaptive=True,
        timeout_s=5,
        tool_filter=["capacity"],
        retry_policy=RetryPolicy(max_attempts=4, wait_exponential_min_s=0.1, max_retry_after_s=1.0),
    )


def exports_config(api_url: str) -> ExternalToolConfig:
    return ExternalToolConfig(
        **demo_auth(),
        name="exports",
        transport=TransportType.HTTP,
        connection=api_url,
        max_concurrency=workload.EXPORTS_LIMIT,
        max_queue=workload.EXPORTS_QUEUE,  # a bounded queue: beyond it, calls are rejected at once
        timeout_s=5,
        tool_filter=["slow"],
    )


@tool(name="local.summarize", timeout_s=5)
async def summarize(text: str, max_words: int = 20) -> str:
    """Summarize a text in at most max_words words."""
    await asyncio.sleep(0.05)
    return " ".join(text.split()[:max_words])


@tool(name="local.classify", timeout_s=5)
async def classify(text: str) -> str:
    """Classify a ticket as bug, question or payment."""
    await asyncio.sleep(0.03)
    return ("bug", "question", "payment")[len(text) % 3]


@tool(name="local.crunch", timeout_s=5)
async def crunch(batch: int) -> int:
    """Crunch the numbers of one batch of incidents."""
    await asyncio.sleep(0.8)
    return batch * 7 % 11


NATIVE_TOOLS: tuple[ToolEntry, ...] = (summarize, classify, crunch)


@contextlib.asynccontextmanager
async def tool_sources(
    options: DemoOptions,
) -> AsyncIterator[tuple[list[ToolEntry], list[ToolNode], HttpApiServer]]:
    """Start the backends and connect the tool sources; stop everything on the way out. The planner's catalog
    leaves "inventory" out: the lookups call it directly."""
    registry = ModelRegistry()
    api = HttpApiServer(
        rate_limit_threshold=workload.STRIPE_RATE_LIMIT,
        retry_after_s=1,
        flaky_failures=1,
        bearer_token=demo_token(),
        capacity=workload.INVENTORY_CAPACITY[0],
        capacity_service_s=workload.INVENTORY_SERVICE_S,
    )
    async with api:
        nodes = [
            ToolNode(github_config(options), registry),
            ToolNode(stripe_config(api.url), registry),
            ToolNode(reports_config(api.url), registry),
            ToolNode(exports_config(api.url), registry),
            ToolNode(inventory_config(api.url), registry),
        ]
        try:
            await asyncio.gather(*(node.connect() for node in nodes))
            planned = [node for node in nodes if node.name != "inventory"]
            catalog = [entry for node in planned for entry in node.get_tools()] + list(NATIVE_TOOLS)
            yield catalog, nodes, api
        finally:
            for node in nodes:
                with contextlib.suppress(Exception):
                    await node.close()


# --- the run -------------------------------------------------------------------------------------------------
async def lookups(node: ToolNode, api: HttpApiServer, duration: float) -> int:
    """Steady lookups against "inventory" for ``duration`` seconds while its backend's capacity changes by thirds
    (``workload.INVENTORY_CAPACITY``); returns the calls that succeeded."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    done = 0

    async def caller() -> None:
        nonlocal done
        while loop.time() < end:
            with contextlib.suppress(Exception):  # failures are counted by the telemetry the view reads
                await node.call("inventory.capacity", {})
                done += 1

    async def capacity_changes() -> None:
        for third, capacity in enumerate(workload.INVENTORY_CAPACITY):
            await asyncio.sleep(max(0.0, end - duration + third * duration / 3 - loop.time()))
            api.set_capacity(capacity)

    await asyncio.gather(capacity_changes(), *(caller() for _ in range(workload.LOOKUP_CALLERS)))
    return done


async def run_rounds(
    planner: Any, options: DemoOptions, view: View, deadline: float
) -> tuple[int, list[str], list[str], int]:
    """Run rounds of the queries side by side until ``deadline``, a hard bound: the runs of the round still
    going then are cancelled (their calls and slots released) and counted as cut off."""
    rng = random.Random(options.seed)
    answers: list[str] = []
    errors: list[str] = []
    rounds = cut_off = 0
    while time.monotonic() < deadline:
        rounds += 1
        queries = workload.round_queries(rng, rounds)
        tasks = [asyncio.create_task(run_query(planner, query, options)) for query in queries]
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cut_off += len(pending)
        for query, task in zip(queries, tasks, strict=True):
            if task in pending or task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                errors.append(f"{query.kind}: {type(error).__name__}: {error}")
            else:
                answers.append(task.result())
    return rounds, answers, errors, cut_off


async def run_demo(options: DemoOptions) -> int:
    reader = InMemoryMetricReader()
    handle = setup_telemetry(options, reader)
    recent = events.capture()
    view = View(Collector(reader), options.duration, stream=options.stream, recent=recent)
    try:
        if handle.prometheus_port is not None:
            view.print(f"Prometheus metrics on http://127.0.0.1:{handle.prometheus_port}/metrics")
        endpoint = otlp_endpoint(options)
        if endpoint is not None:
            view.print(f"OTLP export to {endpoint} (service.name={options.service_name})")
        view.print(
            "Starting backends: github = fastmcp stdio server (max_concurrency 10), "
            "stripe = HTTP API with 429/503 (max_concurrency 5), reports = slow HTTP endpoint "
            "(max_concurrency 2, timeout 1 s), exports (max_concurrency 2, max_queue 4), native tools, "
            f"inventory = adaptive limit (ceiling {workload.INVENTORY_CEILING}) on a backend whose capacity goes "
            + " -> ".join(map(str, workload.INVENTORY_CAPACITY))
            + f" by thirds of the run, {workload.LOOKUP_CALLERS} callers"
        )
        async with tool_sources(options) as (catalog, nodes, api):
            planner = make_planner(catalog, options)
            view.print(
                f"Planner: absolute_max_parallel={workload.ABSOLUTE_MAX_PARALLEL}; queries per round: triage "
                "(30 github / 15 stripe / 5 native per hop), followup (20 github / 40 native), audit (max_parallel=5), "
                "burst (10 reports)"
            )
            deadline = time.monotonic() + options.duration
            try:
                inventory = next(node for node in nodes if node.name == "inventory")
                async with view.running():
                    (rounds, answers, errors, cut_off), _looked_up = await asyncio.gather(
                        run_rounds(planner, options, view, deadline),
                        lookups(inventory, api, options.duration),
                    )
            finally:
                await planner.aclose()  # a real LLM's HTTP client
        result = DemoResult(view.summary(), rounds, answers, errors)
        view.print(
            f"{rounds} round(s) in {options.duration:g}s; planner runs answered: {len(answers)}, failed: "
            f"{len(errors)}, cut off at the end of --duration: {cut_off}"
        )
        for error in errors[:5]:
            view.print(f"  failed run: {error}")
        if options.hold > 0:
            view.print(f"Holding the metrics endpoint for {options.hold:g}s")
            handle.force_flush()
            await asyncio.sleep(options.hold)
        return 1 if result.errors and not result.answers else 0
    finally:
        events.release(recent)
        handle.shutdown()
