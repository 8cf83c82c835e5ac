"""Tests that need a Debian server binary: skip with the install command on a user's machine, fail in CI.

``.ci/run`` installs the servers and sets ``PENGUIFLOW_REQUIRE_SERVERS=1``; there a missing binary is a failure,
so a broken install can never turn into a green run of skipped tests.
"""

from __future__ import annotations

import os
import shutil

import pytest


def servers_required() -> bool:
    return os.environ.get("PENGUIFLOW_REQUIRE_SERVERS", "").strip() not in {"", "0", "false", "no"}


def require_binary(name: str, debian_package: str) -> str:
    """The path of executable ``name``; skip the test (or fail, when servers are required) if it is missing."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"install Debian package {debian_package}: apt-get install {debian_package}"
    if servers_required():
        pytest.fail(f"{name} not found and PENGUIFLOW_REQUIRE_SERVERS=1: {message}")
    pytest.skip(message)
