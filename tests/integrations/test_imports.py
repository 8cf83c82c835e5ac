"""Importing penguiflow or its integrations package imports no framework: each module brings its own, when used."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("langchain", "langchain_core", "langgraph", "pydantic_ai", "agents", "fastmcp", "openai")


def test_the_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, penguiflow, penguiflow.integrations\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
