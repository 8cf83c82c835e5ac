"""Tests that need an npm tool (a validating mock server, the MCP conformance suite, reference MCP servers).

The tools are declared with exact versions in ``.ci/npm/package.json`` and installed by ``make tools`` (which
``.ci/run`` calls) into ``.ci/npm/node_modules``. ``PENGUIFLOW_NPM_DIR`` points elsewhere (a shared install).
On a user's machine without them a test skips with the command that installs them; with
``PENGUIFLOW_REQUIRE_SERVERS=1`` (CI) a missing tool is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.servers import servers_required

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "make tools  (npm install --prefix .ci/npm; needs Node.js and npm)"


def npm_dir() -> Path:
    """The ``node_modules`` directory the tools are looked up in."""
    configured = os.environ.get("PENGUIFLOW_NPM_DIR", "").strip()
    return Path(configured) if configured else ROOT / ".ci" / "npm" / "node_modules"


def require_npm_bin(name: str, package: str) -> Path:
    """The path of ``node_modules/.bin/<name>`` (from npm package ``package``); skip, or fail in CI, if missing."""
    path = npm_dir() / ".bin" / name
    if path.exists():
        return path
    message = f"{name} (npm {package}) not installed: {INSTALL}"
    if servers_required():
        pytest.fail(f"{message}; PENGUIFLOW_REQUIRE_SERVERS=1")
    pytest.skip(message)


def require_npm_package(package: str) -> Path:
    """The installed directory of npm ``package`` (``node_modules/<package>``); skip, or fail in CI, if missing."""
    path = npm_dir() / package
    if path.is_dir():
        return path
    message = f"npm {package} not installed: {INSTALL}"
    if servers_required():
        pytest.fail(f"{message}; PENGUIFLOW_REQUIRE_SERVERS=1")
    pytest.skip(message)
