"""Generate penguiflow's Grafana dashboards from the one metric table, ``penguiflow.telemetry.names.METRICS``.

    python dashboards/generate.py          # rewrite the JSON files next to this script
    python dashboards/generate.py --check  # exit 1 if a committed file differs from what this script makes

Every PromQL query is built from a ``MetricSpec``'s ``prometheus_name`` and its attributes' label names, so a
renamed metric or attribute changes the dashboards (and ``tests/test_dashboards.py`` fails until they are
regenerated). Plain dicts, no SDK: the JSON model is small and stable, and this keeps the tool dependency-free.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from penguiflow.telemetry import names

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 11
PROMETHEUS_UID = "prometheus"  # the uids dashboards/provisioning/datasources/datasources.yaml declares
JAEGER_UID = "jaeger"
LEVEL1_LIMITER = "planner"  # ReactPlanner's absolute_max_parallel limiter
LEVEL2_LIMITER = "run"  # one per planner.run() with planning_hints max_parallel
RATE = "$__rate_interval"
SERVICE = 'job=~"$service"'

Panel = dict[str, Any]


# --- names: only ever from the metric table ------------------------------------------------------------------
def metric(name: str, suffix: str = "") -> str:
    """The Prometheus series name of metric ``name`` (``suffix``: ``_bucket``/``_count``/``_sum`` of a histogram)."""
    spec = names.metric(name)
    if suffix and spec.kind != "histogram":
        raise ValueError(f"{name} is a {spec.kind}, it has no {suffix} series")
    return spec.prometheus_name + suffix


def label(attribute: str) -> str:
    """The Prometheus label an OpenTelemetry attribute becomes (the exporter replaces dots with underscores)."""
    return attribute.replace(".", "_").replace("-", "_")


LIMITER = label(names.LIMITER_NAME)
SOURCE = label(names.TOOL_SOURCE)
TOOL = label(names.GEN_AI_TOOL_NAME)
OUTCOME = label(names.OUTCOME)
REASON = label(names.RETRY_REASON)
ERROR = label(names.ERROR_TYPE)
REJECT = label(names.REJECT_REASON)
LIMIT_REASON = label(names.LIMIT_REASON)
STOP = label(names.PLANNER_STOP_REASON)
AGENT = label(names.GEN_AI_AGENT_NAME)
MODEL = label(names.GEN_AI_REQUEST_MODEL)
TOKEN_TYPE = label(names.GEN_AI_TOKEN_TYPE)
FLOW = label(names.LIMITER_FLOW)


def sel(*matchers: str) -> str:
    return "{" + ", ".join((SERVICE, *matchers)) + "}"


def rate(name: str, *matchers: str, suffix: str = "") -> str:
    return f"rate({metric(name, suffix)}{sel(*matchers)}[{RATE}])"


def quantile(q: float, name: str, by: tuple[str, ...], *matchers: str) -> str:
    groups = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({groups}) ({rate(name, *matchers, suffix='_bucket')}))"


# --- panel builders ------------------------------------------------------------------------------------------
def prom_target(expr: str, legend: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref,
        **extra,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    stack: bool = False,
    overrides: list[dict[str, Any]] | None = None,
) -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [prom_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
    }


def dashed(series_regex: str) -> dict[str, Any]:
    """Draw the limit lines dashed, so "in flight vs limit" reads at a glance."""
    return {
        "matcher": {"id": "byRegexp", "options": series_regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def stat(title: str, description: str, expr: str, legend: str, *, unit: str = "short") -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
        "targets": [prom_target(expr, legend, "A", instant=False)],
    }


def heatmap(title: str, description: str, expr: str) -> Panel:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": "s"},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "tooltip": {"mode": "single", "yHistogram": True},
        },
        "targets": [prom_target(expr, "{{le}}", "A", format="heatmap")],
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def in_flight_vs_limit(title: str, description: str, matcher: str, legend: str) -> Panel:
    by = f"sum by ({LIMITER}) "
    return timeseries(
        title,
        description,
        [
            (f"{by}({metric(names.LIMITER_IN_FLIGHT)}{sel(matcher)})", f"{legend} in flight"),
            (f"{by}({metric(names.LIMITER_LIMIT)}{sel(matcher)})", f"{legend} limit"),
            (f"{by}({metric(names.LIMITER_QUEUED)}{sel(matcher)})", f"{legend} queued"),
        ],
        overrides=[dashed(".* limit$")],
    )


def wait_percentiles(title: str, matcher: str, legend: str) -> Panel:
    return timeseries(
        title,
        "Time from arriving at the limiter to holding a slot, of the calls it held up (calls admitted at once "
        "record no wait).",
        [(quantile(q, names.LIMITER_WAIT, (LIMITER,), matcher), f"{legend} p{p}") for q, p in PERCENTILES],
        unit="s",
    )


def adaptive_panels(matcher: str, legend: str) -> list[Panel]:
    """Limit vs in flight vs overload, the estimate's inputs and the changes, for the adaptive limiters.

    ``x and <baseline gauge>`` keeps the limiters that have a baseline (the adaptive ones): the series share
    every label, so no ``on (…)`` is needed."""
    adaptive = f"{metric(names.LIMITER_BASELINE_RTT)}{sel(matcher)}"
    by = f"sum by ({LIMITER}) "
    return [
        timeseries(
            "Adaptive limits — limit vs in flight vs overload",
            "The limit an adaptive limiter chose (dashed), the calls in flight under it, and the 429/503 answers "
            "per second its source gave (retries by reason): the limit should sit where they stay near zero.",
            [
                (f"{by}({metric(names.LIMITER_LIMIT)}{sel(matcher)} and {adaptive})", f"{legend} limit"),
                (
                    f"{by}({metric(names.LIMITER_IN_FLIGHT)}{sel(matcher)} and {adaptive})",
                    f"{legend} in flight",
                ),
                (
                    f"sum by ({SOURCE}) ({rate(names.RETRY_ATTEMPTS, OVERLOAD)})",
                    "{{" + SOURCE + "}} 429/503 per s",
                ),
            ],
            overrides=[dashed(".* limit$")],
        ),
        timeseries(
            "Adaptive limits — RTT vs baseline",
            "The estimate's inputs: the round trip of the last window and the no-queue baseline; the limit is "
            "cut when the RTT rises above baseline × (1 + tolerance).",
            [
                (f"{by}({metric(names.LIMITER_RTT)}{sel(matcher)})", f"{legend} rtt"),
                (f"{by}({adaptive})", f"{legend} baseline"),
            ],
            unit="s",
            overrides=[dashed(".* baseline$")],
        ),
        timeseries(
            "Adaptive limits — changes by reason",
            "Limit changes per second: increase (probing), latency (queueing seen), status_429/503, timeout, "
            "connection (losses).",
            [
                (
                    f"sum by ({LIMITER}, {LIMIT_REASON}) ({rate(names.LIMITER_ADJUSTMENTS, matcher)})",
                    "{{" + LIMITER + "}} {{" + LIMIT_REASON + "}}",
                )
            ],
            unit="ops",
        ),
    ]


def flow_panels() -> list[Panel]:
    """Queue depth and wait per flow at the shared (fair) limiters: the planner's Level 1 between named runs
    (``planner.run(flow=...)``), or any ``ConcurrencyLimit(fairness="fair")`` between ``call.flow`` tenants.
    A limiter names its first ``flow_labels`` flows; the later ones are one series without a flow
    (``otel.metric.overflow``), shown here with an empty flow."""
    by = f"sum by ({LIMITER}, {FLOW}) "
    legend = "{{" + LIMITER + "}} {{" + FLOW + "}}"
    named = f'{FLOW}=~".+"'
    # Over every admitted call of the flow (those admitted at once waited 0), not only those that waited.
    mean = f"{by}({rate(names.LIMITER_WAIT, named, suffix='_sum')}) / {by}({rate(names.LIMITER_ADMITTED, named)})"
    return [
        timeseries(
            "Queue depth per flow (shared limiters)",
            "Calls of each named flow (a tenant, a named planner run) waiting at a fair limiter now; a series "
            "without a flow sums the flows beyond the limiter's flow_labels.",
            [(f"{by}({metric(names.LIMITER_FLOW_QUEUED)}{sel()})", legend)],
        ),
        timeseries(
            "Queue wait per flow (shared limiters)",
            "Time the calls of each named flow waited at a fair limiter: p95 of the calls that waited, and the "
            "mean over all its admitted calls (those that found a slot at once count 0).",
            [
                (quantile(0.95, names.LIMITER_WAIT, (LIMITER, FLOW), named), legend + " p95"),
                (mean, legend + " mean"),
            ],
            unit="s",
        ),
    ]


PERCENTILES = ((0.5, 50), (0.95, 95), (0.99, 99))
LEVEL3 = f'{LIMITER}!~"{LEVEL1_LIMITER}|{LEVEL2_LIMITER}"'
NOT_SUCCESS = f'{OUTCOME}!="success"'
CALLS = "_count"  # calls by outcome: the count of the tool duration histogram
OVERLOAD = f'{REASON}=~"status_429|status_503"'


# --- layout --------------------------------------------------------------------------------------------------
def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels on Grafana's 24-column grid: rows full width, other panels two (stats four) per line."""
    placed: list[Panel] = []
    x = y = 0
    line_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if panel["type"] == "row":
            if x:
                y += line_height
            width, height = 24, 1
            x = 0
        else:
            width, height = (6, 4) if panel["type"] == "stat" else (12, 8)
            if x + width > 24:
                x, y = 0, y + line_height
        panel = {"id": panel_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel}
        placed.append(panel)
        line_height = height
        x += width
        if x >= 24:
            x, y = 0, y + height
    return placed


def datasource_variable(kind: str, uid: str, label_text: str) -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": label_text,
        "type": "datasource",
        "query": kind,
        "current": {"text": uid, "value": uid},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def query_variable(
    name: str, label_text: str, metric_name: str, label_name: str, matcher: str = ""
) -> dict[str, Any]:
    query = (
        f"label_values({metric_name}{{{matcher}}}, {label_name})"
        if matcher
        else f"label_values({metric_name}, {label_name})"
    )
    return {
        "name": name,
        "label": label_text,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "regex": "",
        "options": [],
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["penguiflow"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["penguiflow"],
                "asDropdown": True,
                "title": "penguiflow",
                "includeVars": True,
            }
        ],
        "panels": layout(panels),
    }


def service_variable() -> dict[str, Any]:
    # `job` is the scrape job; behind an OpenTelemetry Collector's Prometheus exporter it carries service.name.
    return query_variable("service", "Service", metric(names.TOOL_DURATION, "_count"), "job")


# --- the three dashboards ------------------------------------------------------------------------------------
def overview() -> dict[str, Any]:
    tool_calls = metric(names.TOOL_DURATION, "_count")
    panels: list[Panel] = [
        row("Planner — Level 1 (absolute_max_parallel) and Level 2 (planning_hints max_parallel)"),
        stat(
            "Planner runs",
            "Planner runs that ended in the time range.",
            f"sum(increase({metric(names.PLANNER_RUNS)}{sel()}[$__range]))",
            "runs",
        ),
        stat(
            "Hops",
            "Planner hops (one LLM turn and the tool calls it asked for) in the time range.",
            f"sum(increase({metric(names.PLANNER_HOPS)}{sel()}[$__range]))",
            "hops",
        ),
        stat(
            "Tool calls",
            "Tool calls that ended in the time range.",
            f"sum(increase({tool_calls}{sel()}[$__range]))",
            "calls",
        ),
        stat(
            "Error ratio",
            "Share of tool calls that did not succeed.",
            f"sum({rate(names.TOOL_DURATION, NOT_SUCCESS, suffix=CALLS)}) / sum({rate(names.TOOL_DURATION, suffix=CALLS)})",
            "errors",
            unit="percentunit",
        ),
        timeseries(
            "Planner runs and hops",
            "Runs ending per second by reason, and hops per second.",
            [
                (f"sum by ({STOP}) ({rate(names.PLANNER_RUNS)})", "runs {{" + STOP + "}}"),
                (f"sum({rate(names.PLANNER_HOPS)})", "hops"),
            ],
            unit="ops",
        ),
        timeseries(
            "Fan-out per hop",
            "Tool calls the LLM asked for in one hop (p50, p95, max bucket).",
            [
                (quantile(0.5, names.PLANNER_FANOUT, ()), "p50"),
                (quantile(0.95, names.PLANNER_FANOUT, ()), "p95"),
            ],
        ),
        in_flight_vs_limit(
            "Level 1 — planner: in flight vs limit",
            "All tool calls of the planner hold a slot of this limiter; the dashed line is absolute_max_parallel.",
            f'{LIMITER}="{LEVEL1_LIMITER}"',
            "planner",
        ),
        in_flight_vs_limit(
            "Level 2 — per run: in flight vs limit",
            "Summed over the runs with planning_hints max_parallel; the dashed line is the sum of their limits.",
            f'{LIMITER}="{LEVEL2_LIMITER}"',
            "runs",
        ),
        row("Tool sources — Level 3 (ToolNode max_concurrency)"),
        in_flight_vs_limit(
            "Level 3 — in flight vs limit per tool source",
            "Calls holding a slot of each tool source's limiter; dashed: its max_concurrency.",
            LEVEL3,
            "{{" + LIMITER + "}}",
        ),
        *adaptive_panels(LEVEL3, "{{" + LIMITER + "}}"),
        timeseries(
            "Queue depth per limiter",
            "Calls waiting in each limiter's FIFO queue (all three levels).",
            [(f"sum by ({LIMITER}) ({metric(names.LIMITER_QUEUED)}{sel()})", "{{" + LIMITER + "}}")],
        ),
        wait_percentiles("Queue wait p50 / p95 / p99 per limiter", f'{LIMITER}=~".+"', "{{" + LIMITER + "}}"),
        *flow_panels(),
        timeseries(
            "Rejections",
            "Calls refused at once because a limiter's queue (max_queue) was full.",
            [
                (
                    f"sum by ({LIMITER}, {REJECT}) ({rate(names.LIMITER_REJECTED)})",
                    "{{" + LIMITER + "}} {{" + REJECT + "}}",
                )
            ],
            unit="ops",
        ),
        row("Calls, retries, timeouts"),
        timeseries(
            "Call rate by outcome",
            "Tool calls ending per second: success, error, timeout, rejected, cancelled.",
            [(f"sum by ({OUTCOME}) ({rate(names.TOOL_DURATION, suffix=CALLS)})", "{{" + OUTCOME + "}}")],
            unit="ops",
            stack=True,
        ),
        timeseries(
            "Timeout rate per tool source",
            "Attempts that ran past the Timeout layer, per second.",
            [(f"sum by ({SOURCE}) ({rate(names.TIMEOUTS)})", "{{" + SOURCE + "}}")],
            unit="ops",
        ),
        timeseries(
            "Retry rate by reason",
            "Retries (attempts after the first) per second: status_429, status_503, timeout, connection …",
            [(f"sum by ({REASON}) ({rate(names.RETRY_ATTEMPTS)})", "{{" + REASON + "}}")],
            unit="ops",
        ),
        timeseries(
            "Tool latency p95 per tool source",
            "Whole-call duration (queueing and all attempts included), p95.",
            [(quantile(0.95, names.TOOL_DURATION, (SOURCE,)), "{{" + SOURCE + "}}")],
            unit="s",
        ),
        heatmap(
            "Tool latency heatmap",
            "Distribution of whole-call durations over time (gen_ai.execute_tool.duration).",
            f"sum by (le) ({rate(names.TOOL_DURATION, suffix='_bucket')})",
        ),
        row("LLM"),
        timeseries(
            "LLM call duration p50 / p95",
            "Duration of the planner's LLM calls (gen_ai.client.operation.duration).",
            [
                (quantile(0.5, names.LLM_DURATION, (MODEL,)), "{{" + MODEL + "}} p50"),
                (quantile(0.95, names.LLM_DURATION, (MODEL,)), "{{" + MODEL + "}} p95"),
            ],
            unit="s",
        ),
        timeseries(
            "Agent run duration p50 / p95",
            "Duration of whole planner runs (gen_ai.invoke_agent.duration).",
            [
                (quantile(0.5, names.AGENT_DURATION, (AGENT,)), "{{" + AGENT + "}} p50"),
                (quantile(0.95, names.AGENT_DURATION, (AGENT,)), "{{" + AGENT + "}} p95"),
            ],
            unit="s",
        ),
        timeseries(
            "LLM tokens per second",
            "Tokens the LLM reported (gen_ai.client.token.usage), input and output.",
            [
                (
                    f"sum by ({TOKEN_TYPE}) ({rate(names.LLM_TOKENS, suffix='_sum')})",
                    "{{" + TOKEN_TYPE + "}}",
                )
            ],
        ),
    ]
    return dashboard(
        "penguiflow-overview",
        "penguiflow — overview",
        "The three levels of concurrency limits, queues, waits, retries, timeouts and rejections of penguiflow.",
        [datasource_variable("prometheus", PROMETHEUS_UID, "Prometheus"), service_variable()],
        panels,
    )


def tool_source() -> dict[str, Any]:
    src = f'{SOURCE}=~"$source"'
    lim = f'{LIMITER}=~"$source"'
    panels: list[Panel] = [
        row("Calls of $source"),
        timeseries(
            "Calls per tool and outcome",
            "Tool calls ending per second.",
            [
                (
                    f"sum by ({TOOL}, {OUTCOME}) ({rate(names.TOOL_DURATION, src, suffix=CALLS)})",
                    "{{" + TOOL + "}} {{" + OUTCOME + "}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Latency p50 / p95 / p99 per tool",
            "Whole-call duration per tool, queueing and retries included.",
            [
                (quantile(q, names.TOOL_DURATION, (TOOL,), src), "{{" + TOOL + "}} p" + str(p))
                for q, p in PERCENTILES
            ],
            unit="s",
        ),
        timeseries(
            "Failures by error type",
            "Calls that did not succeed, per second, by error.type.",
            [
                (
                    f"sum by ({ERROR}) ({rate(names.TOOL_DURATION, src, NOT_SUCCESS, suffix=CALLS)})",
                    "{{" + ERROR + "}}",
                )
            ],
            unit="ops",
        ),
        heatmap(
            "Latency heatmap",
            "Distribution of whole-call durations of the selected sources.",
            f"sum by (le) ({rate(names.TOOL_DURATION, src, suffix='_bucket')})",
        ),
        row("Limiter of $source"),
        in_flight_vs_limit(
            "In flight vs limit",
            "Calls holding a slot of the source's limiter; dashed: max_concurrency.",
            lim,
            "{{" + LIMITER + "}}",
        ),
        timeseries(
            "Queue depth",
            "Calls waiting for a slot of the source's limiter.",
            [(f"sum by ({LIMITER}) ({metric(names.LIMITER_QUEUED)}{sel(lim)})", "{{" + LIMITER + "}}")],
        ),
        wait_percentiles("Queue wait p50 / p95 / p99", lim, "{{" + LIMITER + "}}"),
        timeseries(
            "Adaptive limit — RTT vs baseline",
            "If the source's limit is adaptive (gradient): the last window's round trip and the no-queue "
            "baseline it is judged against; empty for a static limit.",
            [
                (f"sum by ({LIMITER}) ({metric(names.LIMITER_RTT)}{sel(lim)})", "{{" + LIMITER + "}} rtt"),
                (
                    f"sum by ({LIMITER}) ({metric(names.LIMITER_BASELINE_RTT)}{sel(lim)})",
                    "{{" + LIMITER + "}} baseline",
                ),
            ],
            unit="s",
            overrides=[dashed(".* baseline$")],
        ),
        timeseries(
            "Calls that queued",
            "Share of calls that had to wait for a slot.",
            [
                (
                    f"sum by ({LIMITER}) ({rate(names.LIMITER_WAIT, lim, suffix='_count')})"
                    f" / sum by ({LIMITER}) ({rate(names.LIMITER_ADMITTED, lim)})",
                    "{{" + LIMITER + "}}",
                )
            ],
            unit="percentunit",
        ),
        row("Retries and timeouts of $source"),
        timeseries(
            "Retries by tool and reason",
            "Retries per second; a 429 with Retry-After shows as status_429.",
            [
                (
                    f"sum by ({TOOL}, {REASON}) ({rate(names.RETRY_ATTEMPTS, src)})",
                    "{{" + TOOL + "}} {{" + REASON + "}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Timeouts by tool",
            "Attempts that ran past timeout_s, per second.",
            [(f"sum by ({TOOL}) ({rate(names.TIMEOUTS, src)})", "{{" + TOOL + "}}")],
            unit="ops",
        ),
    ]
    return dashboard(
        "penguiflow-tool-source",
        "penguiflow — tool source",
        "One tool source (ToolNode) in detail: its calls, limiter, queue, retries and timeouts.",
        [
            datasource_variable("prometheus", PROMETHEUS_UID, "Prometheus"),
            service_variable(),
            query_variable("source", "Tool source", metric(names.TOOL_DURATION, "_count"), SOURCE, SERVICE),
        ],
        panels,
    )


def jaeger_target(ref: str, **query: Any) -> dict[str, Any]:
    return {"datasource": {"type": "jaeger", "uid": "${datasource}"}, "refId": ref, **query}


def trace_table(title: str, description: str, **query: Any) -> Panel:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": {"type": "jaeger", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "footer": {"show": False}},
        "targets": [jaeger_target("A", queryType="search", service="$service", limit=20, **query)],
    }


def traces() -> dict[str, Any]:
    agent_operation = names.SPAN_INVOKE_AGENT.format(agent="$agent")
    panels: list[Panel] = [
        row("Find traces"),
        trace_table(
            "Agent runs",
            "Recent planner runs (invoke_agent spans); open one to see its execute_tool and attempt spans "
            "(a call's queue wait is an event on its execute_tool span).",
            operation=agent_operation,
        ),
        trace_table(
            "Timed-out tool calls",
            "execute_tool spans whose outcome was a timeout.",
            tags=f"{names.OUTCOME}=timeout",
        ),
        trace_table(
            "Rejected tool calls",
            "execute_tool spans refused by a full limiter queue.",
            tags=f"{names.OUTCOME}=rejected",
        ),
        trace_table(
            "Slow tool calls (> 1 s)",
            "Tool calls that took longer than a second, queueing and retries included.",
            tags=f"{names.GEN_AI_OPERATION_NAME}={names.OPERATION_EXECUTE_TOOL}",
            minDuration="1s",
        ),
        row("Trace"),
        {
            "type": "traces",
            "title": "Trace $trace_id",
            "description": "invoke_agent → execute_tool (queue_wait events) → attempt → the MCP server's own spans.",
            "datasource": {"type": "jaeger", "uid": "${datasource}"},
            "options": {},
            "targets": [jaeger_target("A", query="$trace_id")],
        },
    ]
    # The trace panel is full width: the layout gives it two columns' worth.
    dash = dashboard(
        "penguiflow-traces",
        "penguiflow — traces",
        "penguiflow's spans in Jaeger: agent runs, timed-out and rejected calls, and one trace in full.",
        [
            datasource_variable("jaeger", JAEGER_UID, "Jaeger"),
            {
                "name": "service",
                "label": "Service",
                "type": "textbox",
                "query": "penguiflow-demo",
                "current": {"text": "penguiflow-demo", "value": "penguiflow-demo"},
                "hide": 0,
            },
            {
                "name": "agent",
                "label": "Agent",
                "type": "textbox",
                "query": "demo",
                "current": {"text": "demo", "value": "demo"},
                "hide": 0,
            },
            {
                "name": "trace_id",
                "label": "Trace ID",
                "type": "textbox",
                "query": "",
                "current": {"text": "", "value": ""},
                "hide": 0,
            },
        ],
        panels,
    )
    dash["panels"][-1]["gridPos"].update({"w": 24, "h": 16, "x": 0})
    return dash


DASHBOARDS = {
    "penguiflow-overview.json": overview,
    "penguiflow-tool-source.json": tool_source,
    "penguiflow-traces.json": traces,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def iter_prometheus_queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every Prometheus query of a dashboard (shared with the tests)."""
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            if "expr" in target:
                yield panel["title"], target["expr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: dashboards/)")
    args = parser.parse_args(argv)
    stale = []
    for filename, build in DASHBOARDS.items():
        path = args.out / filename
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(filename)
            continue
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date, run `python dashboards/generate.py`: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
