"""``penguiflow.telemetry.configure()`` and the library's hands-off rule, each in a fresh interpreter.

Global providers can be set once per process (and this test session already has its in-memory SDK), so every
case runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

from penguiflow.telemetry import names
from tests.support import otel

# A small workload every case runs: a success, a retried timeout, a queue wait and a rejection.
WORKLOAD = """
import asyncio
from penguiflow import log_flow_events, wrap
from penguiflow.errors import LimiterRejectedError
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout

async def no_sleep(_s):
    await asyncio.sleep(0)

attempts = {"n": 0}

async def work(x):
    attempts["n"] += 1
    if x == "slow" and attempts["n"] == 1:
        await asyncio.sleep(5)
    await asyncio.sleep(0.01)
    return x

async def workload():
    limiter = ConcurrencyLimit(1, name="setup.limit", max_queue=2)
    tool = wrap(work, log_flow_events(), Retry(RetryPolicy(max_attempts=2), sleep=no_sleep), limiter,
                Timeout(0.2), name="setup.tool", source="setup")
    results = await asyncio.gather(*(tool(x) for x in ["slow", "a", "b", "c"]), return_exceptions=True)
    assert results[:3] == ["slow", "a", "b"], results
    assert isinstance(results[3], LimiterRejectedError), results
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    return limiter
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env)
    script = WORKLOAD + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_library_installs_no_provider_and_works_with_telemetry_off() -> None:
    done = run(
        """
        from opentelemetry import metrics, trace
        from penguiflow.telemetry import instruments
        import penguiflow.tools, penguiflow.middleware  # importing everything sets nothing
        asyncio.run(workload())
        print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__)
        print(instruments.current())
        """
    )
    assert done.stdout.split() == ["ProxyTracerProvider", "_ProxyMeterProvider", "None"]


def test_service_name_comes_from_the_environment_and_an_argument_wins() -> None:
    code = """
        from penguiflow.telemetry import configure
        handle = configure({args})
        print(handle.tracer_provider.resource.attributes["service.name"])
        print(handle.meter_provider._sdk_config.resource.attributes["service.name"])
        handle.shutdown()
        """
    done = run(code.format(args=""), OTEL_SERVICE_NAME="from-env")
    assert done.stdout.split() == ["from-env", "from-env"]
    done = run(code.format(args="service_name='from-arg'"), OTEL_SERVICE_NAME="from-env")
    assert done.stdout.split() == ["from-arg", "from-arg"]


def test_otel_sdk_disabled_installs_nothing_and_calls_still_work() -> None:
    done = run(
        """
        from opentelemetry import trace
        from penguiflow.telemetry import configure
        handle = configure(console=True, prometheus_port=0)
        print(handle.tracer_provider, handle.meter_provider, handle.prometheus_port)
        asyncio.run(workload())
        print(type(trace.get_tracer_provider()).__name__)
        """,
        OTEL_SDK_DISABLED="true",
    )
    assert done.stdout.split() == ["None", "None", "None", "ProxyTracerProvider"]


def console_spans(stdout: str) -> list[dict[str, object]]:
    """The JSON documents ConsoleSpanExporter printed (one per span, pretty-printed)."""
    decoder, spans, text = json.JSONDecoder(), [], stdout.strip()
    while text:
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    return spans


def test_console_exporter_prints_spans_from_the_environment_or_the_argument() -> None:
    code = """
        from penguiflow.telemetry import configure
        handle = configure({args})
        asyncio.run(workload())
        handle.shutdown()
        """
    for args, env in [("", {"OTEL_TRACES_EXPORTER": "console"}), ("console=True", {})]:
        spans = console_spans(run(code.format(args=args), **env).stdout)
        by_name: dict[str, int] = {}
        for span in spans:
            by_name[str(span["name"])] = by_name.get(str(span["name"]), 0) + 1
        assert by_name[names.SPAN_EXECUTE_TOOL.format(tool="setup.tool")] == 4
        assert by_name[names.SPAN_ATTEMPT.format(tool="setup.tool")] == 2
        waits = [
            event
            for span in spans
            for event in span["events"]  # type: ignore[attr-defined]
            if event["name"] == names.EVENT_QUEUE_WAIT
        ]
        assert len(waits) >= 2
        assert {event["attributes"][names.LIMITER_NAME] for event in waits} == {"setup.limit"}


def test_prometheus_port_serves_real_scrape_text_with_penguiflow_metrics() -> None:
    done = run(
        """
        import httpx
        from penguiflow.telemetry import configure
        handle = configure(prometheus_port=0)
        limiter = asyncio.run(workload())
        print(httpx.get(f"http://127.0.0.1:{handle.prometheus_port}/metrics", timeout=10).text)
        handle.shutdown()
        """
    )
    text = done.stdout
    for name in otel.ENGINE_METRICS:
        # The table's Prometheus name is the one the exporter really uses.
        assert f"\n{names.metric(name).prometheus_name}" in text, name

    def samples(metric: str, label: str) -> list[float]:
        return [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(metric + "{") and label in line
        ]

    limiter = 'penguiflow_limiter_name="setup.limit"'
    assert samples("penguiflow_limiter_limit", limiter) == [1.0]
    assert samples("penguiflow_limiter_in_flight", limiter) == [0.0]
    assert samples("penguiflow_limiter_queued", limiter) == [0.0]
    assert samples("penguiflow_limiter_rejected_total", limiter) == [1.0]
    calls = names.metric(names.TOOL_DURATION).prometheus_name + "_count"
    assert samples(calls, 'penguiflow_outcome="success"') == [3.0]
    assert samples(calls, 'penguiflow_outcome="rejected"') == [1.0]
    assert samples("penguiflow_retry_attempts_total", 'penguiflow_retry_reason="timeout"') == [1.0]
    assert sorted(samples("gen_ai_execute_tool_duration_seconds_count", 'gen_ai_tool_name="setup.tool"')) == [
        1.0,
        3.0,
    ]


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_collector_gives_one_warning_line() -> None:
    """5 rounds of the workload and 3,000 spans against a port where nothing listens: the export failures (two
    SDK lines per batch, before) are one line naming the endpoint, and shutting down does not fail."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    done = run(f"""
        import logging
        from opentelemetry import trace
        from penguiflow.telemetry import configure
        logging.basicConfig(level=logging.WARNING, format="LOG %(name)s: %(message)s")
        handle = configure(service_name="unreachable", otlp_endpoint="{endpoint}", metric_export_interval_s=0.2)
        tracer = trace.get_tracer("t")
        for _ in range(5):
            asyncio.run(workload())
        for i in range(3000):
            with tracer.start_as_current_span(f"span {{i}}"):
                pass
        import time
        time.sleep(1.5)  # a few failed batches and metric exports
        handle.shutdown()
        print("DONE")
    """)
    logged = [
        line
        for line in done.stderr.splitlines()
        if line.startswith("LOG ") and not line.startswith("LOG penguiflow.flow:")  # the workload's own
    ]
    assert done.stdout.strip().endswith("DONE")
    assert len(logged) == 1, done.stderr[-3000:]
    assert logged[0].startswith(f"LOG penguiflow.telemetry: telemetry export to {endpoint} failed")
    assert "Traceback" not in done.stderr


def test_a_bad_endpoint_or_busy_port_is_a_configuration_error_naming_it() -> None:
    done = run("""
        import socket
        from penguiflow.errors import ConfigurationError
        from penguiflow.telemetry import configure
        for kwargs in ({"otlp_endpoint": "not-a-url"}, {"otlp_endpoint": "ftp://host:4318"}):
            try:
                configure(**kwargs)
            except ConfigurationError as exc:
                print(exc.field)
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        try:
            configure(prometheus_port=busy.getsockname()[1])
        except ConfigurationError as exc:
            print(exc.field, "in use" in str(exc))
    """)
    assert done.stdout.split("\n")[:3] == ["otlp_endpoint", "otlp_endpoint", "prometheus_port True"]
    env_done = run(
        """
        from penguiflow.errors import ConfigurationError
        from penguiflow.telemetry import configure
        try:
            configure()
        except ConfigurationError as exc:
            print(exc.field)
        """,
        OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318",
    )
    assert env_done.stdout.strip() == "OTEL_EXPORTER_OTLP_ENDPOINT"
