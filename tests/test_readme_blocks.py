"""Every ```python block of README.md runs as pasted, each in a fresh interpreter.

How a block is run is said in the block itself, in a comment a reader sees too (the first such comment counts):

- no mark: the block must run to completion. A top-level ``await`` runs as in ``python -m asyncio``.
- ``# needs …; offline it raises NameA, NameB``: the block needs something this test does not give it (the
  network, an LLM key, a collector). Run offline, it must either succeed or raise one of the named exceptions
  (matched against the class names of the error's MRO, e.g. ``ToolConnectionError``, ``LLMAuthenticationError``)
  — the documented, typed way it fails, never a random crash.
- ``# not runnable: why``: a fragment (a signature, an excerpt); only checked to be marked.

Offline means: no ``OPENAI_API_KEY``, no ``OTEL_*``, and every proxy variable pointing at a closed port on
127.0.0.1, so a block that would reach the internet fails at once, on this machine, without sending anything.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
NEEDS = re.compile(r"^\s*# needs .*?; offline it raises ([\w.]+(?:, [\w.]+)*)\s*$", re.MULTILINE)
NOT_RUNNABLE = re.compile(r"^\s*# not runnable: \S", re.MULTILINE)

# Runs one block: a module-level ``await`` compiles to a coroutine, run on a fresh loop.
DRIVER = """
import ast, asyncio, json, sys, types
source = open(sys.argv[1], encoding="utf-8").read()
code = compile(source, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
module = types.ModuleType("__main__")
sys.modules["__main__"] = module
try:
    if code.co_flags & 0x80:  # CO_COROUTINE
        asyncio.run(eval(code, module.__dict__))
    else:
        exec(code, module.__dict__)
except BaseException as exc:
    print("RAISED " + json.dumps([cls.__name__ for cls in type(exc).__mro__] + [f"{exc}"[:500]]), flush=True)
    sys.exit(3)
"""


def readme_blocks() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env = {
        k: v
        for k, v in env.items()
        if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    nowhere = f"http://127.0.0.1:{_closed_port()}"
    env.update(
        {
            "HTTP_PROXY": nowhere,
            "HTTPS_PROXY": nowhere,
            "ALL_PROXY": nowhere,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env["npm_config_offline"] = "true"  # npx must not fetch a package either
    env["PYTHONUNBUFFERED"] = "1"
    return env


BLOCKS = readme_blocks()


def test_the_readme_has_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_pasted(line: int, code: str, tmp_path: Path) -> None:
    if NOT_RUNNABLE.search(code):
        return
    allowed = NEEDS.search(code)
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(driver), str(script)],
        cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    output = done.stdout + done.stderr
    raised = next(
        (json.loads(row[7:]) for row in done.stdout.splitlines() if row.startswith("RAISED ")), None
    )
    if raised is None:
        assert done.returncode == 0, f"README.md:{line} exited {done.returncode}:\n{output[-3000:]}"
        return
    *classes, message = raised
    assert allowed is not None, f"README.md:{line} raised {classes[0]}: {message}\n{output[-3000:]}"
    names = {name.strip().rsplit(".", 1)[-1] for name in allowed.group(1).split(",")}
    assert names & set(classes), (
        f"README.md:{line} may raise {sorted(names)} offline, raised {classes[0]}: {message}\n{output[-3000:]}"
    )
