"""The committed dashboards are exactly what the generator makes, and every name they use is in the metric table."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from penguiflow.telemetry import names

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_generate", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = load_generator()


def committed() -> dict[str, dict[str, Any]]:
    return {filename: json.loads((DASHBOARDS / filename).read_text()) for filename in generate.DASHBOARDS}


# Every series name a query may use: the table's Prometheus names, and a histogram's three series.
SERIES = {
    spec.prometheus_name + suffix
    for spec in names.METRICS
    for suffix in (("_bucket", "_count", "_sum") if spec.kind == "histogram" else ("",))
}
LABELS_OF = {
    spec.prometheus_name + suffix: {generate.label(attribute) for attribute in spec.attributes}
    for spec in names.METRICS
    for suffix in (("_bucket", "_count", "_sum") if spec.kind == "histogram" else ("",))
}
SCRAPE_LABELS = {"job", "instance", "le"}  # added by Prometheus at scrape, or the histogram bucket bound
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "label_values", "without", "on", "ignoring",
    "avg", "max", "min", "count", "and", "or", "unless", "bool",
}  # fmt: skip
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def test_committed_json_is_the_generators_output() -> None:
    for filename, build in generate.DASHBOARDS.items():
        assert (DASHBOARDS / filename).read_text() == generate.render(build), (
            f"{filename} is stale: run `python dashboards/generate.py`"
        )
    assert generate.main(["--check"]) == 0


def prometheus_queries() -> list[tuple[str, str, str]]:
    found = []
    for filename, dash in committed().items():
        for title, expr in generate.iter_prometheus_queries(dash):
            found.append((filename, title, expr))
        for variable in dash["templating"]["list"]:
            if variable["type"] == "query":
                found.append((filename, f"${variable['name']}", variable["definition"]))
    return found


def series_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_ranges)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_matchers)
    without_label_values_arg = re.sub(r",\s*[A-Za-z_]+\)", ")", without_groupings)
    return {word for word in IDENTIFIER.findall(without_label_values_arg) if word not in PROMQL_WORDS}


def labels_in(expr: str) -> set[str]:
    used: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"[^"]*"', '""', expr)):
        used |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {part.strip() for part in grouping.split(",") if part.strip()}
    label_values = re.search(r"label_values\(.*,\s*([A-Za-z_]+)\)", expr)
    if label_values:
        used.add(label_values.group(1))
    return used


def test_every_query_uses_only_metrics_of_the_table() -> None:
    queries = prometheus_queries()
    assert len(queries) > 30
    used: set[str] = set()
    for filename, title, expr in queries:
        series = series_in(expr)
        assert series, f"{filename} / {title}: no metric in {expr}"
        unknown = series - SERIES
        assert not unknown, f"{filename} / {title}: {sorted(unknown)} not in names.METRICS"
        used |= series
    # and the dashboards cover the table: every metric is on some panel
    for spec in names.METRICS:
        assert any(name.startswith(spec.prometheus_name) for name in used), f"{spec.name} is on no panel"


def test_every_label_is_an_attribute_of_the_queried_metric() -> None:
    for filename, title, expr in prometheus_queries():
        allowed = set(SCRAPE_LABELS)
        for series in series_in(expr):
            allowed |= LABELS_OF[series]
        unknown = labels_in(expr) - allowed
        assert not unknown, f"{filename} / {title}: labels {sorted(unknown)} are not attributes of the metric"


def test_series_parser_sees_what_it_must() -> None:
    # guard the regexes above: a misspelt metric must be caught
    assert series_in('sum by (le) (rate(penguiflow_tool_callz_total{job=~"$service"}[5m]))') == {
        "penguiflow_tool_callz_total"
    }
    assert labels_in('sum by (a, b) (x{c="1", d=~"$v"})') == {"a", "b", "c", "d"}


def test_overview_has_the_panels_the_issue_lists() -> None:
    overview = committed()["penguiflow-overview.json"]
    exprs = "\n".join(expr for _title, expr in generate.iter_prometheus_queries(overview))
    for needed in (
        names.PLANNER_RUNS,
        names.PLANNER_HOPS,
        names.LIMITER_IN_FLIGHT,
        names.LIMITER_LIMIT,
        names.LIMITER_QUEUED,
        names.TIMEOUTS,
        names.RETRY_ATTEMPTS,
        names.LIMITER_REJECTED,
    ):
        assert names.metric(needed).prometheus_name in exprs
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, penguiflow_limiter_name)" in exprs
    assert f'penguiflow_limiter_name="{generate.LEVEL1_LIMITER}"' in exprs
    assert f'penguiflow_limiter_name="{generate.LEVEL2_LIMITER}"' in exprs
    assert "by (penguiflow_outcome)" in exprs and "by (penguiflow_retry_reason)" in exprs
    assert any(panel["type"] == "heatmap" for panel in overview["panels"])


def test_drill_down_has_datasource_service_and_source_variables() -> None:
    drill = committed()["penguiflow-tool-source.json"]
    variables = {variable["name"]: variable for variable in drill["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert variables["service"]["definition"].endswith(", job)")
    assert "penguiflow_tool_source" in variables["source"]["definition"]
    for _title, expr in generate.iter_prometheus_queries(drill):
        assert "$source" in expr and "$service" in expr


def test_traces_dashboard_queries_jaeger_with_our_span_and_attribute_names() -> None:
    dash = committed()["penguiflow-traces.json"]
    targets = [target for panel in dash["panels"] for target in panel.get("targets", [])]
    assert targets and all(target["datasource"]["type"] == "jaeger" for target in targets)
    operations = [target["operation"] for target in targets if "operation" in target]
    assert operations == [names.SPAN_INVOKE_AGENT.format(agent="$agent")]
    attribute_names = {
        value for name, value in vars(names).items() if name.isupper() and isinstance(value, str)
    }
    for target in targets:
        for tag in filter(None, str(target.get("tags", "")).split()):
            assert tag.split("=")[0] in attribute_names, tag
    assert any(panel["type"] == "traces" for panel in dash["panels"])


def test_grid_positions_do_not_overlap() -> None:
    for filename, dash in committed().items():
        cells: set[tuple[int, int]] = set()
        for panel in dash["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (filename, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, (filename, panel["title"])
                    cells.add((x, y))
        assert len({panel["id"] for panel in dash["panels"]}) == len(dash["panels"])


def test_provisioning_matches_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())[
        "datasources"
    ]
    uids = {source["uid"]: source["type"] for source in datasources}
    assert uids[generate.PROMETHEUS_UID] == "prometheus"
    assert uids[generate.JAEGER_UID] == "jaeger"
    for dash in committed().values():
        datasource = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")
        assert uids[datasource["current"]["value"]] == datasource["query"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())["providers"]
    assert providers and all(provider["type"] == "file" for provider in providers)


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_dashboard_model_basics(filename: str) -> None:
    dash = committed()[filename]
    assert dash["schemaVersion"] == generate.SCHEMA_VERSION
    assert dash["uid"] == filename.removesuffix(".json")
    for panel in dash["panels"]:
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["type"] == "row" or refs, panel["title"]
