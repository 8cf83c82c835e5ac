"""``penguiflow demo``: it runs offline, finishes by itself, and its output shows what it is meant to show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from penguiflow.cli import build_parser, main
from penguiflow.demo.stats import Collector, Histogram, level_of
from penguiflow.demo.view import findings
from penguiflow.telemetry import names

ROOT = Path(__file__).resolve().parents[1]


# --- the pieces -------------------------------------------------------------------------------------------------
def test_histogram_quantile_interpolates_like_promql() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    histogram = meter.create_histogram("h", explicit_bucket_boundaries_advisory=[1.0, 2.0, 4.0])
    for value in [0.5] * 50 + [1.5] * 40 + [3.0] * 10:
        histogram.record(value)
    data = reader.get_metrics_data()
    assert data is not None
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    h = Histogram()
    h.add(point)  # type: ignore[arg-type]
    assert h.count == 100
    assert h.quantile(0.5) == pytest.approx(1.0)  # rank 50 closes the first bucket
    assert h.quantile(0.95) == pytest.approx(2.0 + (3.0 - 2.0) * 0.5)  # capped at the max seen, 3.0
    assert Histogram().quantile(0.95) is None


def test_levels_are_read_from_limiter_names() -> None:
    assert (level_of("planner"), level_of("run"), level_of("github")) == (1, 2, 3)


def test_collector_reads_the_table_metrics() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter(names.SCOPE)
    durations = meter.create_histogram(names.TOOL_DURATION)
    retries = meter.create_counter(names.RETRY_ATTEMPTS)
    for _ in range(3):
        durations.record(0.1, {names.TOOL_SOURCE: "stripe", names.OUTCOME: "success"})
    durations.record(0.2, {names.TOOL_SOURCE: "", names.OUTCOME: "success"})
    retries.add(2, {names.TOOL_SOURCE: "stripe", names.RETRY_REASON: "status_429"})
    snap = Collector(reader).collect()
    assert snap.calls_of("stripe") == 3 and snap.calls_of("native") == 1
    assert snap.retry_reasons("stripe") == {"status_429": 2}
    assert any(line.startswith("Retries with back-off: 2 (status_429×2)") for line in findings(snap))


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["demo", "--duration", "0"], ["demo", "--metrics-port", "70000"], ["demo", "--hold", "-1"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 2
    assert "--duration: must be > 0" in capsys.readouterr().err


def test_llm_option_needs_a_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["demo", "--llm", "gpt-4o-mini"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


# --- the whole demo, as `make demo` runs it (shorter) -------------------------------------------------------
@pytest.fixture(scope="module")
def demo_run() -> Iterator[tuple[str, float, int]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "penguiflow", "demo", "--duration", "4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    yield result.stdout + result.stderr, time.monotonic() - start, result.returncode


def test_demo_finishes_by_itself(demo_run: tuple[str, float, int]) -> None:
    output, elapsed, returncode = demo_run
    assert returncode == 0, output[-4000:]
    assert elapsed < 45, f"took {elapsed:.1f}s"
    assert "Traceback" not in output, output[-4000:]


def test_demo_shows_the_three_levels_retries_and_timeouts(demo_run: tuple[str, float, int]) -> None:
    output, _elapsed, _returncode = demo_run
    # live lines (stdout is a pipe here: plain periodic lines) with in flight / limit, queued, wait p95 ...
    assert re.search(r"L3 source\s+github\s+in_flight=\d+/10 queued=\d+ wait_p95=", output), output[-3000:]
    # ... and the findings under the summary table
    ceiling = re.search(r"Level 1 ceiling: 'planner' peaked at (\d+)/50 in flight, (\d+) queued", output)
    assert ceiling and int(ceiling.group(1)) == 50 and int(ceiling.group(2)) > 0, output[-3000:]
    github = re.search(r"Level 3 queueing: 'github' ran (\d+)/10 with up to (\d+) queued", output)
    assert github and int(github.group(1)) == 10 and int(github.group(2)) >= 10, output[-3000:]
    # At most max_queue=4 wait through exports (the rest are rejected, below); the ones that arrive while the
    # planner is full are counted where they wait, at Level 1.
    assert re.search(r"Level 3 queueing: 'exports' ran 2/2 with up to [1-4] queued", output), output[-3000:]
    assert re.search(r"Level 2 per-run limit: peaked at [1-5] in flight", output), output[-3000:]
    retries = re.search(r"Retries with back-off: (\d+) \((.*)\)", output)
    assert retries and int(retries.group(1)) > 0 and "status_429" in retries.group(2), output[-3000:]
    assert re.search(r"Timeouts: [1-9]\d* \(.*reports×", output), output[-3000:]
    assert re.search(r"Rejections \(max_queue full\): [1-9]", output), output[-3000:]
    assert re.search(r"retry\s+stripe\.\w+ attempt \d+ failed \(status_\d+\), back-off \d", output), output[
        -3000:
    ]


def test_demo_plans_with_a_real_chat_completions_model_when_given_llm() -> None:
    """``--llm MODEL``: the same workload planned by an OpenAI-compatible model, here a local server speaking
    the Chat Completions wire format (``OPENAI_BASE_URL``), which fans out over the native tools it is offered."""
    from tests.reliability.servers import ChatCompletions, chat_reply, function_call

    def plan(request: dict[str, object]) -> dict[str, object]:
        messages = request["messages"]
        assert isinstance(messages, list)
        if messages[-1]["role"] == "tool":
            return chat_reply("All done.")
        offered = [tool["function"]["name"] for tool in request["tools"]]  # type: ignore[attr-defined]
        summarize = next(name for name in offered if name.startswith("local_summarize"))
        classify = next(name for name in offered if name.startswith("local_classify"))
        return chat_reply(
            tool_calls=[
                function_call(summarize, '{"text": "the quick brown fox"}', "call_1"),
                function_call(classify, '{"text": "card declined"}', "call_2"),
                function_call(classify, '{"text": "crash on start"}', "call_3"),
            ]
        )

    with ChatCompletions(plan) as model:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": model.url,
        }
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        result = subprocess.run(
            [sys.executable, "-m", "penguiflow", "demo", "--duration", "1", "--llm", "test-model"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        bodies, headers = list(model.bodies), list(model.headers)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert bodies and all(body["model"] == "test-model" and body["tools"] for body in bodies)
    assert all(h.get("authorization") == "Bearer sk-local" for h in headers)
    # every run made one fan-out turn and one answering turn; the native calls show in the summary
    fan_outs = sum(1 for body in bodies if body["messages"][-1]["role"] != "tool")
    assert fan_outs >= 1 and len(bodies) == 2 * fan_outs
    native = re.search(r"native\s+no limit\s+(\d+)/0", output)
    assert native is not None and int(native.group(1)) == 3 * fan_outs, output[-3000:]
    assert "failed runs: 0" in output
