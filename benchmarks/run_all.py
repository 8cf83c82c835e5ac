"""Run every benchmark in turn (``make bench``); each writes ``benchmarks/results/<name>.json``.

Each script also runs alone: ``python benchmarks/overhead.py [--quick]``. Scripts run one at a time, in a
child process each, so that one benchmark's allocations and threads cannot disturb the next one's timings.
``--quick`` passes through (a smoke run); ``--only NAME`` runs the named ones.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# In order of cost, cheapest first. redis_limiter is another helper's benchmark: run when present.
SCRIPTS = (
    "import_time",
    "overhead",
    "scale",
    "retry_storm",
    "limiter_efficiency",
    "end_to_end",
    "adaptive",
    "http_real_apis",
    "redis_limiter",
    "peers",  # builds the peers' venvs on first use (PyPI), then minutes per round
)


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    cli.add_argument("--quick", action="store_true", help="small N in every benchmark (a smoke run)")
    cli.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these benchmarks")
    args = cli.parse_args()
    failed: list[str] = []
    for name in args.only or SCRIPTS:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"== {name}: not present, skipped", flush=True)
            continue
        print(f"\n== {name} " + "=" * (70 - len(name)), flush=True)
        start = time.perf_counter()
        command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        code = subprocess.run(command, check=False).returncode
        print(
            f"== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - start:.0f} s"
        )
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    print(f"\nresults in {HERE / 'results'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
