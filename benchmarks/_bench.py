"""What every benchmark script shares: the command line, the machine description, the table and the JSON file.

Each script compares penguiflow against a baseline *in the same run*: the variants are measured in alternating
rounds and each figure is the median over the rounds, so a noisy (shared) machine still gives a fair ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every script takes: ``--quick`` (a smoke run with small N) and ``--out`` (the JSON path)."""
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--quick", action="store_true", help="small N: a smoke run, numbers not meaningful")
    cli.add_argument(
        "--out", type=Path, default=None, help="JSON file to write (default benchmarks/results/)"
    )
    return cli


def machine() -> dict[str, Any]:
    """What the numbers were measured on: enough to judge whether a rerun is comparable."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_avg_1m": round(load, 2),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max) of the rounds: printed next to each median so the reader sees the noise."""
    return min(values), max(values)


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table (the first column left-aligned, the others right-aligned)."""
    cells = [[str(c) for c in columns]] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *(line(r) for r in cells[1:])])


def write_json(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``payload`` (with the machine description added) to ``benchmarks/results/{name}.json``."""
    path = out if out is not None else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    document["machine"] = machine()
    document.update(payload)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {path}")
    return path


def install_sdk() -> tuple[Any, Any]:
    """Install the OpenTelemetry SDK globally, as an application would for "telemetry on".

    Spans go through a ``BatchSpanProcessor`` (the production choice) into an exporter that drops them, so
    the whole export path runs but no network does; metrics go to an ``InMemoryMetricReader`` that nobody
    collects during the run. Returns ``(tracer_provider, meter_provider)``.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"
