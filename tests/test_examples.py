"""Every example in examples/ runs to completion by itself, against local servers, in a few seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path for path in (ROOT / "examples").glob("*.py") if not path.name.startswith("_"))
# The guide's configuration patterns; each must have its runnable example.
PATTERNS = {
    "high_throughput",
    "rate_limited",
    "sequential_only",
    "mixed_workload",
    "retry_policies",
    "monitoring",
    "debug_mode",
}


def test_every_pattern_of_the_guide_has_an_example() -> None:
    assert {path.stem for path in EXAMPLES} >= PATTERNS


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(example)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert result.stdout.strip(), "an example should say what it showed"
    assert elapsed < 20, f"{example.name} took {elapsed:.1f}s"
