"""Monitoring concurrency (the guide's "Monitoring Concurrency"): the four metrics to watch, and the logging example.

The guide's ``track_latency`` callback warns about slow tool executions; the tool source's metrics — queue depth,
wait time, timeout rate, retry rate — are served on a Prometheus endpoint (``penguiflow.telemetry.configure``)
and read back here the way Prometheus would scrape them. Runs against a local HTTP API in ~3 s.

    python examples/monitoring.py
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import httpx

from penguiflow import log_flow_events
from penguiflow.demo.backends import HttpApiServer
from penguiflow.errors import MissingExtraError
from penguiflow.planner import ReactPlanner, ScriptedLLM
from penguiflow.telemetry import configure
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode, TransportType

logger = logging.getLogger("penguiflow.concurrency")


def track_latency(event_type: str, latency_ms: float, event: Any) -> None:
    if latency_ms > 1000:  # > 1 second
        logger.warning(f"Slow tool execution: {event.node_name} took {latency_ms:.0f}ms")


middleware = log_flow_events(logger, latency_callback=track_latency)

# The four "metrics to watch", by their Prometheus names (see docs/telemetry.md for the whole table).
WATCH = {
    "Queue depth": "penguiflow_limiter_queued",
    "Wait time (s, sum)": "penguiflow_limiter_wait_duration_seconds_sum",
    "Timeouts": "penguiflow_timeouts_total",
    "Retries": "penguiflow_retry_attempts_total",
}


def scrape(port: int, source: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    values: dict[str, float] = {}
    for title, metric in WATCH.items():
        values[title] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(metric + "{") and f'"{source}"' in line
        )
    return values


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    telemetry = configure(service_name="monitoring-example", prometheus_port=0)
    assert telemetry.prometheus_port is not None
    try:
        async with HttpApiServer() as api:
            config = ExternalToolConfig(
                name="reports",
                transport=TransportType.HTTP,
                connection=api.url,
                max_concurrency=2,
                timeout_s=1.5,
                retry_policy=RetryPolicy(
                    max_attempts=2, wait_exponential_min_s=0.1, wait_exponential_max_s=0.2
                ),
            )
            async with ToolNode(config) as reports:
                # the guide's logging middleware, around every tool call the planner makes
                calls = [("reports.slow", {"ms": ms}) for ms in (100, 200, 1200, 300, 2000, 100)]
                planner = ReactPlanner(
                    catalog=reports.get_tools(), llm=ScriptedLLM([calls, "done"]), middleware=[middleware]
                )
                await planner.run("Build the weekly reports")
                for title, value in scrape(telemetry.prometheus_port, "reports").items():
                    print(f"{title:<20} {value:g}")
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except MissingExtraError as missing:  # configure() needs the SDK and the Prometheus exporter
        print(MissingExtraError("examples/monitoring.py", "demo", missing.name), file=sys.stderr)
        raise SystemExit(2) from None
