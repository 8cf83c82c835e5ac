"""Limiter efficiency: makespan ÷ ideal makespan (total work ÷ limit), ConcurrencyLimit against asyncio.Semaphore.

N calls of fixed duration (an ``asyncio.sleep``) are started at once behind a limit L. The ideal makespan is
N·d/L. d is L milliseconds (a call completes every millisecond on average, whatever the limit), so the
ideal makespan is N ms: 1 s for 1,000 calls, 10 s for 10,000. Shorter gaps between completions would measure
the event loop's per-task cost (tens of µs a call) more than the limiter. A sleep of d lasts a little longer than d (the event loop's timers have ~1 ms granularity: epoll rounds
its timeout up to the millisecond), so two ideals are reported:

* ``nominal`` — N·d/L, what the user asked for;
* ``work`` — Σ(measured duration of each call's sleep)/L: the best any limiter can do with these sleeps, so
  ``makespan ÷ work ideal`` is the limiter's own inefficiency (gaps between a release and the next start).

The makespan runs from the first ``create_task`` to the last call's end (task creation and the first pass of
N tasks into the queue included).
Ours (``wrap(work, ConcurrencyLimit(L))``, the user's path through a stack) and the baseline
(``async with asyncio.Semaphore(L)``) alternate, and each figure is the median of several repetitions.
Target: ≤ 1.03.

Run: ``python benchmarks/limiter_efficiency.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _bench

from penguiflow.middleware import ConcurrencyLimit, wrap

TARGET = 1.03


def duration_for(limit: int, interval_s: float) -> float:
    """The per-call sleep at which, ideally, one call completes every ``interval_s``."""
    return limit * interval_s


async def run_case(kind: str, calls: int, limit: int, duration: float) -> dict[str, float]:
    """One run of ``calls`` calls through the limiter ``kind``; returns makespan and measured work (s)."""
    loop = asyncio.get_running_loop()
    work_total = 0.0
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal work_total, running, peak
        running += 1
        peak = max(peak, running)
        start = loop.time()
        await asyncio.sleep(duration)
        work_total += loop.time() - start
        running -= 1

    call: Callable[[], Awaitable[Any]]
    if kind == "ConcurrencyLimit":
        call = wrap(work, ConcurrencyLimit(limit, name=f"bench.efficiency.{limit}"), name="bench.work")
    else:
        semaphore = asyncio.Semaphore(limit)

        async def call() -> None:
            async with semaphore:
                await work()

    gc.collect()
    start = time.perf_counter()
    tasks = [asyncio.create_task(call()) for _ in range(calls)]
    await asyncio.gather(*tasks)
    makespan = time.perf_counter() - start
    if peak > limit:  # a benchmark of a broken limiter would be meaningless
        raise AssertionError(f"{kind}: {peak} calls ran at once behind a limit of {limit}")
    return {"makespan_s": makespan, "work_s": work_total}


async def measure(
    sizes: list[int], limits: list[int], repetitions: int, interval_s: float
) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for calls in sizes:
        for limit in limits:
            duration = duration_for(limit, interval_s)
            runs: dict[str, list[dict[str, float]]] = {"ConcurrencyLimit": [], "asyncio.Semaphore": []}
            for repetition in range(repetitions):
                order = list(runs) if repetition % 2 == 0 else list(reversed(runs))
                for kind in order:
                    runs[kind].append(await run_case(kind, calls, limit, duration))
            nominal = calls * duration / limit
            case: dict[str, Any] = {
                "calls": calls,
                "limit": limit,
                "duration_s": duration,
                "ideal_s": nominal,
            }
            for kind, results in runs.items():
                vs_nominal = [r["makespan_s"] / nominal for r in results]
                vs_work = [r["makespan_s"] / (r["work_s"] / limit) for r in results]
                case[kind] = {
                    "makespan_s": statistics.median(r["makespan_s"] for r in results),
                    "ratio_nominal": statistics.median(vs_nominal),
                    "ratio_nominal_spread": _bench.spread(vs_nominal),
                    "ratio_work": statistics.median(vs_work),
                    "ratio_work_spread": _bench.spread(vs_work),
                }
            cases.append(case)
            print(f"  measured {calls} calls at limit {limit} (d = {duration * 1000:g} ms)", flush=True)
    return cases


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "limiter efficiency")
    cli.add_argument("--repetitions", type=int, default=None, help="runs per limiter and case (median)")
    args = cli.parse_args()
    quick = args.quick
    sizes = [100, 300] if quick else [1000, 10000]
    limits = [1, 10, 50, 100]
    repetitions = args.repetitions or (1 if quick else 2)
    interval_s = 0.0001 if quick else 0.001
    cases = asyncio.run(measure(sizes, limits, repetitions, interval_s))

    rows = []
    for case in cases:
        ours, base = case["ConcurrencyLimit"], case["asyncio.Semaphore"]
        rows.append(
            [
                case["calls"],
                case["limit"],
                case["duration_s"] * 1000,
                case["ideal_s"],
                ours["ratio_nominal"],
                base["ratio_nominal"],
                ours["ratio_work"],
                "{:.3f}..{:.3f}".format(*ours["ratio_work_spread"]),
                base["ratio_work"],
                ours["makespan_s"] / base["makespan_s"],
            ]
        )
    columns = [
        "calls",
        "limit",
        "d ms",
        "ideal s",
        "ours/nominal",
        "sem/nominal",
        "ours/work",
        "ours/work spread",
        "sem/work",
        "ours÷sem",
    ]
    print(
        _bench.table(
            f"\nMakespan ÷ ideal makespan, median of {repetitions} (ours = wrap(..., ConcurrencyLimit))",
            columns,
            rows,
        )
    )
    worst_work = max(c["ConcurrencyLimit"]["ratio_work"] for c in cases)
    worst_nominal = max(c["ConcurrencyLimit"]["ratio_nominal"] for c in cases)
    print(
        f"worst ours/work: {worst_work:.3f}, worst ours/nominal: {worst_nominal:.3f} "
        f"(target ≤ {TARGET}) → work: {_bench.verdict(worst_work <= TARGET)}, "
        f"nominal: {_bench.verdict(worst_nominal <= TARGET)}"
    )
    _bench.write_json(
        "limiter_efficiency",
        {
            "repetitions": repetitions,
            "cases": cases,
            "targets": {
                "ratio_work": {"worst": worst_work, "target": TARGET, "met": worst_work <= TARGET},
                "ratio_nominal": {"worst": worst_nominal, "target": TARGET, "met": worst_nominal <= TARGET},
            },
        },
        args.out,
    )


if __name__ == "__main__":
    main()
