"""A plain ``pip install`` (no extras): every feature that needs an extra says which, in one line, with exit 2.

The venv is real — ``pip install <repo>`` into a fresh venv, so it has exactly the base dependencies that
``pyproject.toml`` declares — and kept under ``.venv/plain-install`` until the base dependencies change (building it
takes a minute; reusing it a second). The code under test is this checkout's ``src`` (on ``PYTHONPATH``), so the
venv's own copy of penguiflow going stale between rebuilds does not matter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

# A hang guard: building a venv and installing into it takes ~18 s here quiet, minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "plain-install"
EXTRA_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter", "prometheus_client", "redis", "utcp")


def _stamp() -> str:
    """What the venv depends on: the base dependencies and the interpreter (not the rest of pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    key = json.dumps([sys.version, project["requires-python"], sorted(project["dependencies"])])
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="session")
def plain_python() -> Iterator[Path]:
    python = VENV / "bin" / "python"
    stamp = VENV / "pyproject.sha256"
    if not (python.exists() and stamp.exists() and stamp.read_text() == _stamp()):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert install.returncode == 0, install.stderr[-3000:]
        stamp.write_text(_stamp())
    yield python


def run(python: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [str(python), *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_plain_install_really_lacks_every_extra(plain_python: Path) -> None:
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m.split('.')[0]) and u.find_spec(m)])"
    done = run(plain_python, "-c", probe % (EXTRA_MODULES,))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "penguiflow", "demo"],
        ["-m", "penguiflow", "demo", "--otlp"],
        ["-m", "penguiflow", "demo", "--metrics-port", "0"],
        ["examples/monitoring.py"],
    ],
    ids=["demo", "demo --otlp", "demo --metrics-port", "examples/monitoring.py"],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(plain_python: Path, argv: list[str]) -> None:
    done = run(plain_python, *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'penguiflow[demo]'" in lines[0]


def test_configure_raises_a_typed_error_naming_the_otel_extra(plain_python: Path) -> None:
    code = """
from penguiflow.errors import MissingExtraError
from penguiflow.telemetry import configure  # importable without the SDK
try:
    configure(service_name="x")
except MissingExtraError as exc:
    print(exc.extra, isinstance(exc, ImportError))
    print(exc)
"""
    done = run(plain_python, "-c", code)
    assert done.returncode == 0, done.stderr
    extra, message = done.stdout.splitlines()
    assert extra == "otel True"
    assert "pip install 'penguiflow[otel]'" in message


def test_the_library_itself_works_without_extras(plain_python: Path) -> None:
    """A wrapped function with every layer, telemetry off: the core needs no extra."""
    code = """
import asyncio
from penguiflow import log_flow_events, wrap
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout

async def double(x: int) -> int:
    return 2 * x

tool = wrap(double, log_flow_events(), Retry(RetryPolicy()), ConcurrencyLimit(2, name="c"), Timeout(1))
print(asyncio.run(tool(x=21)))
"""
    done = run(plain_python, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
