"""Every benchmark script runs with ``--quick``, prints its table and writes valid JSON. No timing asserted:
the numbers of a smoke run on a shared machine mean nothing, only that the scripts work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# A hang guard, not a speed claim: the adaptive smoke run takes ~22 s quiet, several times that under load.
pytestmark = pytest.mark.timeout(300)

# script → text its table prints, and a key its JSON holds
EXPECTED = {
    "overhead": (["Telemetry OFF", "Telemetry ON", "default stack (4 layers)"], "targets"),
    "limiter_efficiency": (["Makespan ÷ ideal makespan"], "cases"),
    "scale": (["Memory per queued call", "Cost per operation"], "memory_bytes_per_queued_call"),
    "retry_storm": (["Retry storm behind ConcurrencyLimit(5)"], "cases"),
    "end_to_end": (["End to end"], "cases"),
    "import_time": (["Import cost", "import penguiflow:"], "statements"),
    "adaptive": (["Adaptive concurrency: median over"], "summary"),
    "http_real_apis": (["connect() on the real documents", "Per-call client overhead"], "connect"),
    # --quick: ours alone (the peers' venvs would need PyPI), its spans counted with telemetry on
    "peers": (["Peers, telemetry off", "Peers, telemetry on", "one_span_per_call"], "results"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_runs_quick(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,  # a hang guard, not a speed claim: two processes each start an MCP server
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    texts, key = EXPECTED[name]
    for text in texts:
        assert text in done.stdout
    document = json.loads(out.read_text())
    assert document["benchmark"] == name
    assert document["machine"]["nproc"] >= 1
    assert document["machine"]["python"]
    assert document[key]


@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind not installed (apt-get install valgrind)"
)
def test_overhead_counts_instructions(tmp_path: Path) -> None:
    out = tmp_path / "overhead_instructions.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--instructions", "20", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: under callgrind a process runs ~50x slower
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert (
        payload["on"]["default stack (4 layers)"]
        > payload["on"]["SDK calls of our stack only (no layers)"]
        > 0
    )
    assert payload["off"]["default stack (4 layers)"] > payload["off"]["wrap(), no layer"] > 0
    assert "telemetry_on_vs_sdk_floor" in payload["ratios"]


@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind not installed (apt-get install valgrind)"
)
def test_limiter_efficiency_counts_instructions(tmp_path: Path) -> None:
    out = tmp_path / "limiter_efficiency_instructions.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "limiter_efficiency.py"),
            "--instructions",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: under callgrind a process runs ~50x slower
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "per hand-off" in done.stdout
    per_call = json.loads(out.read_text())["per_call"]
    for shape in ("contended", "drain", "sequential"):
        figures = per_call[shape]
        assert figures["floor"] > 0
        # Above the same work without a limiter, every limiter costs something; ours includes the stack's cost
        # (in a drain, wrap() alone is only the resumption of one frame more: ~1,000 instructions, not checked).
        assert figures["ConcurrencyLimit"] > figures["wrap(), no layer"]
        assert figures["asyncio.Semaphore"] > 0
        if shape != "drain":
            assert figures["wrap(), no layer"] > 0
    # A hand-off (a waiter queued, then woken by a release) costs more than a call that never waits.
    assert per_call["contended"]["ConcurrencyLimit"] > per_call["sequential"]["ConcurrencyLimit"]
