"""Every example in examples/ runs to completion by itself, against local servers (a few seconds each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The guide's patterns at the top, one example per framework integration in integrations/.
EXAMPLES = sorted(
    path
    for pattern in ("*.py", "integrations/*.py")
    for path in (ROOT / "examples").glob(pattern)
    if not path.name.startswith("_")
)
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


def test_every_integration_has_an_example() -> None:
    modules = {
        p.stem for p in (ROOT / "src/penguiflow/integrations").glob("*.py") if not p.name.startswith("_")
    }
    examples = {path.stem for path in EXAMPLES if path.parent.name == "integrations"}
    assert modules == {"langchain", "pydantic_ai", "openai_agents", "fastmcp"}
    assert {"langchain_agent", "pydantic_ai_toolset", "openai_agents_sdk", "fastmcp_server"} <= examples


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    # The timeout guards against an example that hangs; how long one takes on a loaded machine is no
    # property of the example (each one checks what it shows itself).
    result = subprocess.run(
        [sys.executable, str(example)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert result.stdout.strip(), "an example should say what it showed"
