"""What importing penguiflow loads, as a list of modules (not a time: timings on a shared machine are noise;
``benchmarks/import_time.py`` measures the time, see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Heavy or optional dependencies, and the parts of penguiflow that pull them in.
HEAVY = (
    "pydantic", "tenacity", "jsonschema", "referencing", "httpx", "fastmcp", "mcp", "yaml", "structlog",
    "rich", "starlette", "uvicorn", "opentelemetry.sdk", "penguiflow.middleware", "penguiflow.tools",
    "penguiflow.planner", "penguiflow.registry",
)  # fmt: skip


def imported(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


def heavy(modules: set[str]) -> set[str]:
    return {name for name in HEAVY if name in modules}


def test_import_penguiflow_loads_none_of_the_heavy_modules() -> None:
    modules = imported("import penguiflow")
    assert heavy(modules) == set()
    assert {name for name in modules if name.startswith("penguiflow")} == {"penguiflow"}


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ("from penguiflow import wrap, log_flow_events", {"pydantic", "penguiflow.middleware"}),
        (
            "from penguiflow import tool",
            {"pydantic", "penguiflow.middleware", "penguiflow.tools", "penguiflow.registry"},
        ),
    ],
)
def test_the_names_load_what_they_need_and_no_more(statement: str, allowed: set[str]) -> None:
    """tenacity loads with the first retry, jsonschema with the first JSON-schema tool."""
    assert heavy(imported(statement)) <= allowed


def test_tenacity_loads_at_the_first_retry() -> None:
    code = """
import asyncio, sys
from penguiflow import wrap
from penguiflow.errors import ToolServerError
from penguiflow.middleware import Retry, RetryPolicy

attempts = []

async def flaky():
    attempts.append(1)
    if len(attempts) == 1:
        raise ToolServerError("busy", status_code=503)
    return "ok"

async def no_sleep(_s):
    pass

tool = wrap(flaky, Retry(RetryPolicy(max_attempts=2, retry_on_status=[503]), sleep=no_sleep))
print("tenacity" in sys.modules, asyncio.run(tool()), "tenacity" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "ok", "True"]
