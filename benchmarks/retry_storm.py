"""Retry storm: every call fails once with a retryable error (503) and then succeeds, behind a limit of 5.

Two stacks with the very same layers, in two orders:

* ours — ``Retry → ConcurrencyLimit(5) → Timeout``: a call sleeping in back-off holds no slot;
* slot held through back-off — ``ConcurrencyLimit(5) → Retry → Timeout``: the retry inside the limit, the
  design of the guide's source library (a semaphore inside the ToolNode around a retried call).

Each attempt takes d (an ``asyncio.sleep``, the server's response time); the first answers 503, the second
succeeds. Back-off before the second attempt is b (``RetryPolicy(wait_exponential_min_s=b, jitter=0)``).
Ideal makespans: ours N·2d/5, slot held N·(2d + b)/5, so the ideal throughput ratio is (2d + b)/2d.
The server side counts how many attempts ran at once, to show the limit held in both. The two stacks
alternate; figures are medians over repetitions.

Run: ``python benchmarks/retry_storm.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from typing import Any

import _bench

from penguiflow.errors import ToolServerError
from penguiflow.middleware import ConcurrencyLimit, Retry, RetryPolicy, Timeout, wrap

LIMIT = 5
STACKS = ("ours: Retry outside the limit", "slot held through back-off")


async def storm(stack: str, calls: int, work_s: float, backoff_s: float) -> dict[str, float]:
    failed: set[int] = set()
    running = 0
    peak = 0

    async def tool(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(work_s)
            if i not in failed:
                failed.add(i)
                raise ToolServerError("bench: 503 Service Unavailable", status_code=503, tool="bench.storm")
            return i
        finally:
            running -= 1

    policy = RetryPolicy(max_attempts=3, wait_exponential_min_s=backoff_s, jitter=0)
    limit = ConcurrencyLimit(LIMIT, name="bench.storm")
    retry, timeout = Retry(policy), Timeout(10)
    layers = (retry, limit, timeout) if stack == STACKS[0] else (limit, retry, timeout)
    call = wrap(tool, *layers, name="bench.storm")

    gc.collect()
    start = time.perf_counter()
    results: list[Any] = await asyncio.gather(*(call(i=i) for i in range(calls)))
    makespan = time.perf_counter() - start
    if sorted(results) != list(range(calls)) or len(failed) != calls:
        raise AssertionError(f"{stack}: not every call failed once and then succeeded")
    if peak > LIMIT:
        raise AssertionError(f"{stack}: {peak} attempts ran at once behind a limit of {LIMIT}")
    return {"makespan_s": makespan, "throughput": calls / makespan, "peak": peak}


async def measure(calls: int, work_s: float, backoffs: list[float], repetitions: int) -> list[dict[str, Any]]:
    cases = []
    for backoff in backoffs:
        runs: dict[str, list[dict[str, float]]] = {stack: [] for stack in STACKS}
        for repetition in range(repetitions):
            for stack in STACKS if repetition % 2 == 0 else tuple(reversed(STACKS)):
                runs[stack].append(await storm(stack, calls, work_s, backoff))
        ratios = [
            ours["throughput"] / held["throughput"]
            for ours, held in zip(runs[STACKS[0]], runs[STACKS[1]], strict=True)
        ]
        cases.append(
            {
                "calls": calls,
                "work_s": work_s,
                "backoff_s": backoff,
                "ideal_ratio": (2 * work_s + backoff) / (2 * work_s),
                "ratio": statistics.median(ratios),
                "ratio_spread": _bench.spread(ratios),
                **{
                    stack: {
                        "throughput": statistics.median(r["throughput"] for r in results),
                        "makespan_s": statistics.median(r["makespan_s"] for r in results),
                        "ideal_makespan_s": calls
                        * (2 * work_s + (0 if stack == STACKS[0] else backoff))
                        / LIMIT,
                        "peak_concurrency": max(r["peak"] for r in results),
                    }
                    for stack, results in runs.items()
                },
            }
        )
    return cases


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "retry storm")
    cli.add_argument("--repetitions", type=int, default=None, help="runs per stack (median)")
    args = cli.parse_args()
    calls = 40 if args.quick else 250
    work_s = 0.002 if args.quick else 0.010
    backoffs = [0.005] if args.quick else [0.010, 0.050]
    repetitions = args.repetitions or (1 if args.quick else 3)
    cases = asyncio.run(measure(calls, work_s, backoffs, repetitions))

    rows = []
    for case in cases:
        ours, held = case[STACKS[0]], case[STACKS[1]]
        rows.append(
            [
                case["calls"],
                case["work_s"] * 1000,
                case["backoff_s"] * 1000,
                ours["throughput"],
                held["throughput"],
                case["ratio"],
                "{:.2f}..{:.2f}".format(*case["ratio_spread"]),
                case["ideal_ratio"],
                f"{ours['peak_concurrency']}/{held['peak_concurrency']}",
            ]
        )
    print(
        _bench.table(
            f"\nRetry storm behind ConcurrencyLimit({LIMIT}): calls/s, median of {repetitions}",
            ["calls", "d ms", "b ms", "ours /s", "held /s", "ours÷held", "spread", "ideal", "peak"],
            rows,
        )
    )
    _bench.write_json("retry_storm", {"limit": LIMIT, "repetitions": repetitions, "cases": cases}, args.out)


if __name__ == "__main__":
    main()
