"""examples/observability-stack holds together: every mounted file exists, ports and names agree across the compose
file, the collector, Prometheus and Grafana's provisioning, and Prometheus's own checker accepts its config.

There is no Docker engine here to run the stack; these checks catch what breaks it in practice (a renamed file,
a port changed on one side only, a datasource pointing at a service that is not there).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.support.servers import require_binary

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "examples" / "observability-stack"
COMPOSE = STACK / "compose.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load(COMPOSE)
    return data


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    data: dict[str, Any] = load(STACK / "otel-collector.yaml")
    return data


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    data: dict[str, Any] = load(STACK / "prometheus.yml")
    return data


def mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    found = []
    for volume in service.get("volumes", []):
        source, target, *_mode = volume.split(":")
        found.append(((STACK / source).resolve(), target))
    return found


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}


def host_port(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        for source, target in mounts(service):
            assert source.exists(), f"{name} mounts {source}, which does not exist"
            if target.endswith((".json", ".yaml", ".yml")):
                assert source.is_file(), f"{name}: {source} should be a file (mounted at {target})"
            checked += 1
    assert checked >= 7


def test_services_are_the_four_of_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"otel-collector", "jaeger", "prometheus", "grafana"}
    for name, service in compose["services"].items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin the image"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"]


def test_collector_config_matches_compose(compose: dict[str, Any], collector: dict[str, Any]) -> None:
    service = compose["services"]["otel-collector"]
    config_mount = dict((target, source) for source, target in mounts(service))
    command = " ".join(service["command"])
    config_path = command.split("--config=")[1].split()[0]
    assert config_mount[config_path] == (STACK / "otel-collector.yaml").resolve()

    protocols = collector["receivers"]["otlp"]["protocols"]
    published = container_ports(service)
    for protocol in ("grpc", "http"):
        _host, port = host_port(protocols[protocol]["endpoint"])
        assert port in published, f"OTLP {protocol} port {port} is not published by the compose file"
    assert {4317, 4318} <= published

    # every exporter and receiver a pipeline names is defined
    for pipeline in collector["service"]["pipelines"].values():
        for receiver in pipeline["receivers"]:
            assert receiver in collector["receivers"]
        for processor in pipeline.get("processors", []):
            assert processor in collector["processors"]
        for exporter in pipeline["exporters"]:
            assert exporter in collector["exporters"]

    # traces go to the jaeger service, on the OTLP port jaeger listens on when OTLP is enabled
    jaeger_host, jaeger_port = host_port(collector["exporters"]["otlp/jaeger"]["endpoint"])
    assert jaeger_host in compose["services"] and jaeger_port == 4317
    assert compose["services"][jaeger_host]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert "prometheus" in collector["service"]["pipelines"]["metrics"]["exporters"]


def test_prometheus_scrapes_the_collector_exporter(
    compose: dict[str, Any], collector: dict[str, Any], prometheus: dict[str, Any]
) -> None:
    service = compose["services"]["prometheus"]
    config_mount = dict((target, source) for source, target in mounts(service))
    config_flag = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    assert config_mount[config_flag.split("=", 1)[1]] == (STACK / "prometheus.yml").resolve()

    _host, exporter_port = host_port(collector["exporters"]["prometheus"]["endpoint"])
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    targets = [target for config in jobs["otel-collector"]["static_configs"] for target in config["targets"]]
    assert targets == [f"otel-collector:{exporter_port}"]
    assert jobs["otel-collector"]["honor_labels"] is True  # keep the collector's job=service.name
    demo_targets = [
        target for config in jobs["penguiflow-demo"]["static_configs"] for target in config["targets"]
    ]
    host, _port = host_port(demo_targets[0])
    assert any(entry.startswith(f"{host}:") for entry in service.get("extra_hosts", []))


def test_grafana_provisioning_matches_compose(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    by_target = {target: source for source, target in mounts(service)}
    datasources_dir = by_target["/etc/grafana/provisioning/datasources"]
    dashboards_dir = by_target["/etc/grafana/provisioning/dashboards"]

    for path in datasources_dir.glob("*.yaml"):
        for source in load(path)["datasources"]:
            url = urlparse(source["url"])
            assert url.hostname in compose["services"], (
                f"datasource {source['name']} points at {url.hostname}"
            )
            assert url.port in container_ports(compose["services"][url.hostname]) or (
                url.hostname == "prometheus" and url.port == 9090
            ), f"{source['name']}: nothing listens on {url.hostname}:{url.port}"

    providers = [provider for path in dashboards_dir.glob("*.yaml") for provider in load(path)["providers"]]
    assert providers
    for provider in providers:
        folder = provider["options"]["path"]
        mounted = [target for target in by_target if target.startswith(folder + "/")]
        assert mounted, f"provider path {folder} has no dashboards mounted"
        for target in mounted:
            dashboard = json.loads(by_target[target].read_text())
            assert dashboard["uid"] and dashboard["panels"]
    # every generated dashboard is mounted
    generated = sorted(path.name for path in (ROOT / "dashboards").glob("*.json"))
    mounted_names = sorted(Path(target).name for target in by_target if target.endswith(".json"))
    assert mounted_names == generated
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in by_target


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = require_binary("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(STACK / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_readme_names_the_commands() -> None:
    readme = (STACK / "README.md").read_text()
    assert "docker compose up -d" in readme
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in readme
    assert "penguiflow demo" in readme
