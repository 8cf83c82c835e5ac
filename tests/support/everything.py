"""The MCP reference server ``@modelcontextprotocol/server-everything`` (npm, pinned in ``.ci/npm/package.json``),
over stdio (a command line for a ``ToolNode``) and over streamable HTTP (a server process on 127.0.0.1), run by
the Node 22 the same file pins."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.npm import require_npm_bin, require_npm_package

PACKAGE = "@modelcontextprotocol/server-everything"


def _entry() -> tuple[str, str]:
    node = require_npm_bin("node", "node")
    package = require_npm_package(PACKAGE)
    return str(node), str(package / "dist" / "index.js")


def stdio_command() -> str:
    """The command line that starts server-everything over stdio."""
    node, script = _entry()
    return f"{shlex.quote(node)} {shlex.quote(script)} stdio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server() -> Iterator[str]:
    """server-everything over streamable HTTP; yields its ``/mcp`` URL on 127.0.0.1."""
    node, script = _entry()
    port = free_port()
    process = subprocess.Popen(
        [node, script, "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "server-everything exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server-everything did not start listening"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
