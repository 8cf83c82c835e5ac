"""The plug-in layers are written the way a user's would be: only penguiflow's public modules, no private names."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "penguiflow_middleware"
PUBLIC_MODULES = {
    "penguiflow",
    "penguiflow.middleware",
    "penguiflow.middleware.validation",  # public argument checks for custom layers
    "penguiflow.telemetry",
    "penguiflow.errors",
}


def is_penguiflow(module: str) -> bool:
    return module.split(".")[0] == "penguiflow"


def penguiflow_imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import of penguiflow (absolute; relative imports stay in the package)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if is_penguiflow(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and is_penguiflow(node.module or ""):
            found.append((node.module or "", [alias.name for alias in node.names]))
    return found


def is_submodule(name: str) -> bool:
    return importlib.util.find_spec(f"penguiflow.{name}") is not None


def violations(source: str) -> list[str]:
    problems = []
    for module, imported in penguiflow_imports(source):
        if any(part.startswith("_") for part in module.split(".")):
            problems.append(f"private module {module}")
        elif module not in PUBLIC_MODULES:
            problems.append(f"non-public module {module}")
        for name in imported:
            if name.startswith("_"):
                problems.append(f"private name {module}.{name}")
            # `from penguiflow import tools`: the imported name is a module of its own.
            elif module == "penguiflow" and is_submodule(name) and f"penguiflow.{name}" not in PUBLIC_MODULES:
                problems.append(f"non-public module penguiflow.{name}")
    return problems


def test_the_scan_catches_private_imports() -> None:
    bad = (
        "from penguiflow.middleware.concurrency import ConcurrencyLimit\n"
        "from penguiflow.telemetry import _cache\n"
        "import penguiflow.telemetry.instruments\n"
        "from penguiflow._internal import x\n"
        "from penguiflow.middleware import Call\n"
        "from penguiflow import tools, wrap\n"
        "from . import sibling\n"
    )
    assert violations(bad) == [
        "non-public module penguiflow.middleware.concurrency",
        "private name penguiflow.telemetry._cache",
        "non-public module penguiflow.telemetry.instruments",
        "private module penguiflow._internal",
        "non-public module penguiflow.tools",
    ]


def test_the_plugin_package_imports_only_public_penguiflow() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert {f.name for f in files} >= {"circuit_breaker.py", "rate_limit.py", "redis_limits.py", "names.py"}
    report = {f.name: violations(f.read_text()) for f in files}
    assert report == {f.name: [] for f in files}
    # And it does use penguiflow (the scan is not vacuous).
    used = {module for f in files for module, _ in penguiflow_imports(f.read_text())}
    assert {"penguiflow.middleware", "penguiflow.telemetry", "penguiflow.errors"} <= used <= PUBLIC_MODULES
