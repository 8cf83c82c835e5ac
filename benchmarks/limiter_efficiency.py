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

Run: ``python benchmarks/limiter_efficiency.py`` (``--quick`` for a smoke run). ``--instructions CALLS`` counts
instructions instead (callgrind, ``_instructions.py``; the same on a loaded machine as on a quiet one): per
*hand-off* — ``CALLS`` calls of a zero-length work (``await asyncio.sleep(0)``) started at once behind a limit of
1, so every call but the first is admitted by the release of the one before it — and per *uncontended* call
(``CALLS`` sequential calls, nobody waiting), each less the same work run without a limiter, ours and
``asyncio.Semaphore``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _bench
import _instructions

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


# --- instruction counts (callgrind) ---------------------------------------------------------------------------
_gate: asyncio.Future[None] | None = None  # drain: holds the first call's work until the others are queued


async def _zero_work() -> None:
    if _gate is not None and not _gate.done():
        await _gate
    await asyncio.sleep(0)


def _callers() -> dict[str, Callable[[], Awaitable[Any]]]:
    """The call of each variant: no limiter (the floor), ours, the Semaphore (a limit of 1 each), and ours
    without the limiter (``wrap()`` alone: what of ours is the stack's, not the limiter's)."""
    ours = wrap(_zero_work, ConcurrencyLimit(1, name="bench.handoff"), name="bench.work")
    bare = wrap(_zero_work, name="bench.work")
    semaphore = asyncio.Semaphore(1)

    async def semaphore_call() -> None:
        async with semaphore:
            await _zero_work()

    return {
        "none": _zero_work,
        "ConcurrencyLimit": ours,
        "asyncio.Semaphore": semaphore_call,
        "wrap(), no layer": bare,
    }


Region = Callable[[], None]


def _contended(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[Any]], calls: int) -> Region:
    """All calls started at once: the arrivals (each queues but the first) and the hand-offs."""

    async def run() -> None:
        await asyncio.gather(*[asyncio.create_task(call()) for _ in range(calls)])  # type: ignore[arg-type]

    return lambda: loop.run_until_complete(run())


def _sequential(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[Any]], calls: int) -> Region:
    """One call after the other: nobody ever waits."""

    async def run() -> None:
        for _ in range(calls):
            await call()

    return lambda: loop.run_until_complete(run())


def _drain(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[Any]], calls: int) -> Region:
    """The hand-offs alone, arrivals excluded: outside the region every call starts and all but the first
    queue (the first holds its slot, its work waiting on a gate; without a limiter all of them wait on the
    gate); the region opens the gate and runs the calls to their end, each admitted by its predecessor's
    release (the floor: each woken by the gate instead)."""
    global _gate
    gate = _gate = loop.create_future()
    tasks: list[asyncio.Task[Any]] = [loop.create_task(call()) for _ in range(calls)]  # type: ignore[arg-type]
    for _ in range(2):
        loop.run_until_complete(asyncio.sleep(0))  # every task reaches its wait

    def run() -> None:
        gate.set_result(None)
        loop.run_until_complete(asyncio.gather(*tasks))

    return run


SHAPES: dict[str, Callable[[asyncio.AbstractEventLoop, Callable[[], Awaitable[Any]], int], Region]] = {
    "contended": _contended,
    "sequential": _sequential,
    "drain": _drain,
}
INSTRUCTION_REGIONS = [
    (shape, kind)
    for shape in SHAPES
    for kind in ("none", "ConcurrencyLimit", "asyncio.Semaphore", "wrap(), no layer")
]


def child_instructions(calls: int) -> None:
    """Under callgrind: each (shape, variant) of :data:`INSTRUCTION_REGIONS` in a region of its own, after a
    warm-up outside the regions."""
    global _gate
    loop = asyncio.new_event_loop()
    callers = _callers()
    for shape, kind in INSTRUCTION_REGIONS:
        SHAPES[shape](loop, callers[kind], max(10, calls // 10))()
    gc.collect()
    gc.disable()  # a collection would land in whichever region it happens to fall: count none
    for shape, kind in INSTRUCTION_REGIONS:
        _instructions.region(SHAPES[shape](loop, callers[kind], calls))
        _gate = None
    gc.enable()
    loop.close()
    print(json.dumps(INSTRUCTION_REGIONS))


def instructions_report(calls: int, out: Any) -> None:
    argv = [sys.executable, __file__, "--child-instructions", "--calls", str(calls)]
    counts, done = _instructions.count(argv)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind child failed: exit {done.returncode}: {done.stderr[-800:]}")
    if len(counts) != len(INSTRUCTION_REGIONS):
        raise RuntimeError(f"{len(counts)} regions counted, {len(INSTRUCTION_REGIONS)} expected")
    per_call = dict(zip(INSTRUCTION_REGIONS, _instructions.per_call(counts, calls), strict=True))
    figures: dict[str, dict[str, float]] = {}
    rows = []
    for shape, label in (
        ("contended", "per hand-off (L=1, contended)"),
        ("drain", "per hand-off, arrivals excluded"),
        ("sequential", "per uncontended call"),
    ):
        floor = per_call[(shape, "none")]
        ours = per_call[(shape, "ConcurrencyLimit")] - floor
        base = per_call[(shape, "asyncio.Semaphore")] - floor
        stack = per_call[(shape, "wrap(), no layer")] - floor
        figures[shape] = {
            "floor": floor,
            "ConcurrencyLimit": ours,
            "asyncio.Semaphore": base,
            "wrap(), no layer": stack,
        }
        rows.append([label, floor, ours, base, ours / base, stack, ours - stack])
    columns = [
        "instructions",
        "no limiter (floor)",
        "ours above floor",
        "Semaphore above floor",
        "ours÷sem",
        "wrap() alone",
        "ours less wrap()",
    ]
    print(_bench.table(f"\nInstructions per call ({calls} calls each, callgrind)", columns, rows))
    _bench.write_json(
        "limiter_efficiency_instructions",
        {"calls": calls, "per_call": figures, "counter": _instructions.describe()},
        out,
    )


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "limiter efficiency")
    cli.add_argument("--repetitions", type=int, default=None, help="runs per limiter and case (median)")
    cli.add_argument(
        "--instructions",
        type=int,
        metavar="CALLS",
        help="only count instructions per hand-off and per uncontended call (callgrind), CALLS calls each",
    )
    cli.add_argument("--child-instructions", action="store_true", help=argparse.SUPPRESS)
    cli.add_argument("--calls", type=int, default=2000, help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.child_instructions:
        child_instructions(args.calls)
        return
    if args.instructions:
        instructions_report(args.instructions, args.out)
        return
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
