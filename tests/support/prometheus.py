"""A real Prometheus (Debian's ``prometheus`` package) for tests: foreground process on 127.0.0.1, temp storage.

    with Prometheus(targets=["127.0.0.1:9464"], job="penguiflow-demo") as prom:
        prom.wait_for("penguiflow_limiter_in_flight")
        result = prom.query_range('sum(penguiflow_limiter_in_flight)', start, end)

It scrapes its targets every second. The first sample is queryable about 6 s after start (Prometheus waits for
its first scrape and the head block), so poll with :meth:`wait_for` rather than sleep.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import require_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """One Prometheus server scraping ``targets`` (``host:port``) under job name ``job`` every ``interval``."""

    def __init__(self, targets: list[str], *, job: str = "penguiflow", interval: str = "1s") -> None:
        self.binary = require_binary("prometheus", "prometheus")
        self.targets = targets
        self.job = job
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="penguiflow-prometheus-")
        self._process: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(base_url=self.url, timeout=10)

    def config(self) -> str:
        targets = ", ".join(f'"{target}"' for target in self.targets)
        return (
            "global:\n"
            f"  scrape_interval: {self.interval}\n"
            f"  scrape_timeout: {self.interval}\n"  # the default, 10 s, may not exceed a shorter interval
            f"  evaluation_interval: {self.interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {self.job}\n"
            f"    scrape_interval: {self.interval}\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> Prometheus:
        directory = Path(self._dir.name)
        config = directory / "prometheus.yml"
        config.write_text(self.config())
        self._log = (directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self._process.returncode}: {self.log()[-2000:]}"
                )
            try:
                if self._client.get("/-/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {timeout}s: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._client.close()
        if hasattr(self, "_log"):
            self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        path = Path(self._dir.name) / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- HTTP API ----------------------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any]) -> Any:
        response = self._client.get(path, params=params)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return list(self._get("/api/v1/query", params)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        """What a Grafana panel asks for: the series of ``expr`` over ``[start, end]``."""
        data = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return list(data["result"])

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params: dict[str, Any] = {"match[]": match} if match else {}
        return list(self._get(f"/api/v1/label/{label}/values", params))

    def targets_health(self) -> list[str]:
        return [target["health"] for target in self._get("/api/v1/targets", {})["activeTargets"]]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until the instant query ``expr`` returns something (the first scrape landed)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"no data for {expr} after {timeout}s; targets: {self.targets_health()}"
                )
            time.sleep(0.5)
