"""Every panel query of every dashboard returns data from a real Prometheus scraping ``penguiflow demo``.

A Debian ``prometheus`` scrapes ``penguiflow demo --metrics-port`` every 200 ms; once the demo's workload is done
(it holds its endpoint open a little longer), each Prometheus query of each dashboard — template variables
expanded to the values Prometheus really has, as Grafana would — is run as a range query over the demo's run.
Each must return at least one series with a finite value. The trace dashboard's Jaeger queries are checked
against real spans in tests/test_otlp_e2e.py's terms (span and attribute names), not here.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.prometheus import Prometheus, free_port
from tests.test_dashboards import DASHBOARDS, generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
JOB = "penguiflow-demo"
# Long enough for a second round to start even under load (a round takes ~8 s on a loaded 2-core machine): each
# round begins with a burst of waits at the planner's Level 1, and a per-flow wait series created in the first
# burst grows in the second, between scrapes, whatever the scrapes missed during the first.
DEMO_SECONDS = 14
HOLD_SECONDS = 25  # upper bound; the test stops the demo as soon as its queries are done


def finite_values(series: list[dict[str, Any]]) -> int:
    return sum(1 for s in series for _t, v in s["values"] if math.isfinite(float(v)))


def expand(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):  # $__range before $__rate_interval's prefix clash
        expr = expr.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def escape(value: str) -> str:
    """Grafana's regex escaping of a variable value (RE2 rejects Python's escape of '-')."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\1", value)


def regex_of(values: list[str]) -> str:
    """A multi-value variable as Grafana formats it for a regex matcher."""
    return "(" + "|".join(escape(value) for value in values) + ")" if len(values) > 1 else escape(values[0])


@pytest.fixture(scope="module")
def scraped() -> Any:
    port = free_port()
    # Scraped every 200 ms: a wait-time series exists only once a call of it waited (a limiter records waits,
    # not admissions), so a burst of waits must span scrapes for rate() to see it grow. Under load, Level 1's
    # whole queue of a round could drain between two successful scrapes (a scrape of the busy demo may also time
    # out): once on 2026-12-02 the per-flow wait panel had no data in a run of one round (DEMO_SECONDS above).
    with Prometheus([f"127.0.0.1:{port}"], job=JOB, interval="200ms") as prom:
        started = time.time()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        demo = subprocess.Popen(
            [sys.executable, "-m", "penguiflow", "demo", "--duration", str(DEMO_SECONDS), "--metrics-port",
             str(port), "--hold", str(HOLD_SECONDS)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        output: list[str] = []
        try:
            assert demo.stdout is not None
            for line in demo.stdout:
                output.append(line)
                if line.startswith("Holding the metrics endpoint"):
                    break
            else:
                pytest.fail(f"demo ended without holding its endpoint:\n{''.join(output[-60:])}")
            time.sleep(3)  # the last scrapes after the workload
            yield prom, started, time.time(), "".join(output)
        finally:
            demo.terminate()
            demo.wait(timeout=15)


def test_every_panel_query_returns_data(scraped: Any) -> None:
    prom, start, end, output = scraped
    assert prom.targets_health() == ["up"]
    services = prom.label_values("job", f"{names_tool_calls()}")
    assert JOB in services
    sources = prom.label_values("penguiflow_tool_source", f'{names_tool_calls()}{{job="{JOB}"}}')
    assert {"github", "stripe", "reports"} <= set(sources), sources
    variables = {
        "service": regex_of([JOB]),
        "source": regex_of(sources),
        "__rate_interval": "4s",
        "__range": f"{math.ceil(end - start)}s",
    }

    panels = queries = 0
    empty: list[str] = []
    for filename in sorted(generate.DASHBOARDS):
        dash = json.loads((DASHBOARDS / filename).read_text())
        for panel in dash["panels"]:
            exprs = [target["expr"] for target in panel.get("targets", []) if "expr" in target]
            if not exprs:
                continue
            panels += 1
            for expr in exprs:
                queries += 1
                result = prom.query_range(expand(expr, variables), start, end, step=1.0)
                if not finite_values(result):
                    empty.append(f"{filename} / {panel['title']}: {expr}")
    report = f"{panels} Prometheus panels, {queries} queries over {len(generate.DASHBOARDS)} dashboards"
    print(f"\n{report}; {len(empty)} without data")
    assert not empty, (
        f"{report}; no data for:\n" + "\n".join(empty) + f"\n--- demo output ---\n{output[-4000:]}"
    )
    assert panels >= 25 and queries >= 45


def test_template_variable_queries_list_real_values(scraped: Any) -> None:
    prom, _start, _end, _output = scraped
    drill = json.loads((DASHBOARDS / "penguiflow-tool-source.json").read_text())
    for variable in drill["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector = match.group(1).replace("$service", JOB)
        assert prom.label_values(match.group(2), selector), variable["definition"]


def test_each_tool_source_alone_has_calls_latency_and_limiter_data(scraped: Any) -> None:
    """The drill-down with one source picked (not "All"): its core panels have data for every external source."""
    prom, start, end, _output = scraped
    drill = json.loads((DASHBOARDS / "penguiflow-tool-source.json").read_text())
    core = {
        "Calls per tool and outcome",
        "Latency p50 / p95 / p99 per tool",
        "In flight vs limit",
        "Queue depth",
    }
    for source in ("github", "stripe", "reports"):
        variables = {"service": JOB, "source": source, "__rate_interval": "4s", "__range": "60s"}
        for panel in drill["panels"]:
            if panel["title"] in core:
                for target in panel["targets"]:
                    result = prom.query_range(expand(target["expr"], variables), start, end)
                    assert finite_values(result), f"{source}: {panel['title']}: {target['expr']}"


def names_tool_calls() -> str:
    from penguiflow.telemetry import names

    return names.metric(names.TOOL_DURATION).prometheus_name + "_count"
