"""What ``import penguiflow`` costs: a fresh interpreter per round, against an empty interpreter in the same run.

Each round starts ``python -c "<statement>"`` for every statement, in alternating order, and takes the wall
time of the whole process; the cost of a statement is its median minus the median of ``python -c "pass"``
(the interpreter's own start-up). The target: ``import penguiflow`` ≤ 0.15 s on the project's 2-core machine.
``-X importtime`` of one more run lists the modules that cost most, for the reader to see where time goes.

    python benchmarks/import_time.py [--quick] [--out FILE]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import median, parser, spread, table, verdict, write_json

TARGET_S = 0.15
STATEMENTS = {
    "python (empty)": "pass",
    "import penguiflow": "import penguiflow",
    "from penguiflow import wrap": "from penguiflow import wrap",
    "from penguiflow import tool": "from penguiflow import tool",
    "from penguiflow.planner import ReactPlanner": "from penguiflow.planner import ReactPlanner",
}


def once(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def heaviest(statement: str, count: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time (-X importtime), in seconds."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((name.rstrip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda row: row[1], reverse=True)[:count]


def main() -> int:
    args = parser(__doc__.splitlines()[0] if __doc__ else "").parse_args()
    rounds = 3 if args.quick else 30
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for i in range(rounds):
        names = list(STATEMENTS) if i % 2 == 0 else list(reversed(STATEMENTS))
        for name in names:
            times[name].append(once(STATEMENTS[name]))
    base = median(times["python (empty)"])
    rows = []
    results = {}
    for name, values in times.items():
        low, high = spread(values)
        cost = median(values) - base
        rows.append([name, median(values), low, high, cost if name != "python (empty)" else 0.0])
        results[name] = {"median_s": median(values), "min_s": low, "max_s": high, "cost_s": cost}
    print(
        table(
            f"Import cost ({rounds} rounds, fresh interpreter each)",
            ["statement", "median s", "min s", "max s", "cost s"],
            rows,
        )
    )
    cost = results["import penguiflow"]["cost_s"]
    print(
        f"\nimport penguiflow: {cost:.3f} s over an empty interpreter (target <= {TARGET_S} s): {verdict(cost <= TARGET_S)}"
    )
    top = heaviest("from penguiflow import wrap, tool")
    print(
        "\n"
        + table(
            "Heaviest modules of 'from penguiflow import wrap, tool' (-X importtime, one run)",
            ["module", "cumulative s"],
            top,
        )
    )
    write_json(
        "import_time",
        {
            "rounds": rounds,
            "statements": results,
            "targets": {"import penguiflow": {"target_s": TARGET_S, "cost_s": cost, "met": cost <= TARGET_S}},
            "heaviest": top,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
