"""Instruction counts: what a stretch of Python costs, counted by valgrind's callgrind — the same number on a
quiet machine and on one where other processes take most of the CPU, which wall and CPU time are not.

The process to measure marks each stretch with :func:`region`; :func:`count` runs that process under callgrind,
collecting only inside the marks, and returns one count per region, in order. The mark is CPython's own
``functools.reduce`` (C function ``functools_reduce``), called on two items: callgrind toggles collection on its
entry and exit and dumps a profile after each, while Python code outside the regions — start-up, imports, the
warm-up — costs nothing in the counts. :func:`region` has no dependency but the standard library, so a client
running in another project's venv can mark itself with the same three lines.

Under callgrind a process runs ~50× slower and its threads one at a time; what it counts is the measured
process's own instructions (a server in another process is not counted).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

MARK = "functools_reduce"
T = TypeVar("T")


def region(fn: Callable[[], T]) -> T:
    """``fn()``, run inside a region :func:`count` collects (a no-op when not under callgrind)."""
    result: list[T] = []
    functools.reduce(lambda _a, _b: result.append(fn()), (0, 1))
    return result[0]


def available() -> bool:
    return shutil.which("valgrind") is not None


def count(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout_s: float = 3600
) -> tuple[list[int], subprocess.CompletedProcess[str]]:
    """Runs ``argv`` under callgrind; the instructions executed in each of its regions, in order, and the
    finished process (its output, for what else it reports)."""
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "cg.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--toggle-collect={MARK}",
            f"--dump-after={MARK}",
            f"--callgrind-out-file={out}",
            *argv,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        parts = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        counts = [_total(p) for p in parts]
    return counts, done


def _total(path: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
    return int(match.group(1)) if match else 0


def per_call(counts: Sequence[int], calls: int) -> list[float]:
    return [c / calls for c in counts]


def describe() -> dict[str, Any]:
    """What counted the instructions, for the JSON of a benchmark."""
    try:
        version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        version = "absent"
    return {"counter": "valgrind --tool=callgrind", "valgrind": version, "mark": MARK}
