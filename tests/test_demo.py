"""``penguiflow demo``: it runs offline, finishes by itself, and its output shows what it is meant to show."""

from __future__ import annotations

import os
import re
import socket
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
    assert any(
        line.startswith("Retries with back-off: 2 attempts re-sent (status_429×2)") for line in findings(snap)
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "argument --duration: must be > 0, got 0"),
        (["--duration", "abc"], "argument --duration: must be a number of seconds, got 'abc'"),
        (["--duration", "inf"], "argument --duration: must be a finite number of seconds, got 'inf'"),
        (["--hold", "-1"], "argument --hold: must be >= 0, got -1"),
        (["--metrics-port", "70000"], "argument --metrics-port: must be a port number from 0 to 65535"),
        (["--metrics-port", "http"], "argument --metrics-port: must be a port number from 0 to 65535"),
        (["--otlp", "not-a-url"], "argument --otlp: must be an http(s) URL such as http://localhost:4318"),
        (["--otlp", "localhost:4318"], "argument --otlp: must be an http(s) URL"),
    ],
)
def test_cli_rejects_bad_options_with_a_message_for_people(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["demo", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_busy_metrics_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--duration", "1", "--metrics-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"penguiflow: error: prometheus_port: cannot serve metrics on 127.0.0.1:{port}"
    )


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


def test_duration_is_a_hard_bound_and_the_summary_is_still_printed(demo_run: tuple[str, float, int]) -> None:
    """The audit query cannot finish in 4 s (each of its two hops waits out two 1 s timeouts of its slow report
    call): the first round is cut off at the deadline, not waited for, and the summary follows."""
    output, _elapsed, _returncode = demo_run
    ended = re.search(
        r"1 round\(s\) in 4s; planner runs answered: \d+, failed: 0, cut off at the end of --duration: (\d)",
        output,
    )
    assert ended is not None and int(ended.group(1)) >= 1, output[-3000:]
    assert output.index("Summary per limiter") < ended.start()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_with_an_unreachable_collector_warns_once_per_process_and_is_not_held_up() -> None:
    """``--otlp`` with nothing listening (the demo ran 539 s for 3 s, with 414 github timeouts and 698 exporter
    warnings): the demo and its MCP server subprocess each say it once, and no tool call waits on an exporter."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "penguiflow", "demo", "--duration", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    warnings = [line for line in output.splitlines() if "telemetry export to" in line]
    assert 1 <= len(warnings) <= 2, warnings
    assert "opentelemetry" not in output and "Traceback" not in output, output[-4000:]
    github = re.search(r"L3 github\s+\S+\s+\d+\s+\S+\s+\S+\s+(\d+)/(\d+)\s+(\d+)\s+(\d+)", output)
    assert github is not None, output[-3000:]
    ok, _failed, re_sent, timed_out = (int(group) for group in github.groups())
    # calls cut off by --duration count as failed; none timed out or was retried waiting on its spans' export
    assert ok > 0 and (re_sent, timed_out) == (0, 0), github.group(0)


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
    # (queue depth is sampled every 0.2 s and a short burst's queue can fall between samples; a rejection proves
    # the queue held its max_queue=4)
    exports_queued = re.search(r"Level 3 queueing: 'exports' ran 2/2 with up to [1-4] queued", output)
    exports_rejected = re.search(r"L3 exports\s+2/2\s+\d+\s+\S+\s+\S+\s+\d+/\d+\s+\d+\s+\d+\s+[1-9]", output)
    assert exports_queued or exports_rejected, output[-3000:]
    assert re.search(r"Level 2 per-run limit: peaked at [1-5] in flight", output), output[-3000:]
    retries = re.search(r"Retries with back-off: (\d+) attempts re-sent \((.*)\)", output)
    assert retries and int(retries.group(1)) > 0 and "status_429" in retries.group(2), output[-3000:]
    assert re.search(r"Timeouts: [1-9]\d* attempts timed out \(.*reports×", output), output[-3000:]
    assert re.search(r"Rejections \(max_queue full\): [1-9]", output), output[-3000:]
    # the live view's recent events (the last three of any source when it prints) show a retry's back-off
    assert re.search(r"retry\s+\w+\.\w+ attempt \d+ failed \((status_\d+|timeout)\), back-off \d", output), (
        output[-3000:]
    )


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
        summarize = next(name for name in offered if name == "local--summarize")
        classify = next(name for name in offered if name == "local--classify")
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
    # every run made one fan-out turn, then one answering turn unless --duration cut it off first; the native
    # calls show in the summary (those of the answered turns all succeeded)
    fan_outs = sum(1 for body in bodies if body["messages"][-1]["role"] != "tool")
    answering = len(bodies) - fan_outs
    cut_off = re.search(r"failed: 0, cut off at the end of --duration: (\d+)", output)
    assert cut_off is not None, output[-3000:]
    assert fan_outs >= 1 and fan_outs - int(cut_off.group(1)) <= answering <= fan_outs
    native = re.search(r"native\s+no limit\s+(\d+)/(\d+)", output)
    assert native is not None, output[-3000:]
    ok, failed = int(native.group(1)), int(native.group(2))
    assert ok >= 3 * answering and ok + failed <= 3 * fan_outs, output[-3000:]
