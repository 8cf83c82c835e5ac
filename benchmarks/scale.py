"""Scale: memory per queued call and enqueue / hand-off cost with up to 100,000 calls queued on one limiter.

One call holds the only slot; Q tasks then queue behind it. Four kinds of queued call are compared, each with
the same task structure (``create_task`` → wait → release):

* ``floor``: the cheapest FIFO queue one can write — each task parks on its own future in a ``deque`` and the
  releaser wakes the oldest. What *any* queued asyncio task costs: the task, its coroutine, one future.
* ``ConcurrencyLimit``: ``await limiter.acquire(); limiter.release()``.
* ``asyncio.Semaphore``: the baseline, ``async with semaphore``.
* ``wrap(…, ConcurrencyLimit)``: a whole call queued through the user's path (``Call`` object, ``Stack`` and
  layer coroutines, then the limiter).

Memory is measured with ``tracemalloc`` (Python allocations only, exact) and, in a fresh child process per
kind, as the growth of the resident set (VmRSS; includes allocator slack). The limiter's *own* state per
waiter — its waiter future and its ``deque`` slot — is measured on its own, apart from the task and the
coroutine frames that belong to the caller. Costs per operation: enqueue = creating the Q tasks and letting
each run until it is queued, ÷ Q; hand-off = draining the queue (each release wakes the oldest waiter, which
releases in turn), ÷ Q. Kinds alternate, medians over rounds. The cyclic garbage collector is paused while an
operation is timed: with it, creating 100,000 tasks triggers full collections whose cost grows with the number
of live objects — the floor's enqueue cost then grows ~3.7× from 1,000 to 100,000 queued, limiter or not — and
that would hide the limiter's own behaviour. Targets: ≤ 2 KiB per queued call; per-op cost
flat from 1,000 to 100,000 queued.

Run: ``python benchmarks/scale.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import _bench

from penguiflow.middleware import ConcurrencyLimit, wrap

KINDS = ("floor", "ConcurrencyLimit", "asyncio.Semaphore", "wrap(…, ConcurrencyLimit)")
TARGET_BYTES = 2048
FLAT_TOLERANCE = 1.25  # largest ÷ smallest per-op cost across depths that still counts as flat


class Queue:
    """One kind of limiter of limit 1 with its slot taken: ``spawn()`` returns a coroutine that queues."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.release: Callable[[], None]
        if kind == "floor":
            loop = asyncio.get_running_loop()
            waiters: deque[asyncio.Future[None]] = deque()

            async def floor() -> None:
                waiter = loop.create_future()
                waiters.append(waiter)
                await waiter
                wake()

            def wake() -> None:
                if waiters:
                    waiters.popleft().set_result(None)

            self.spawn: Callable[[], Coroutine[Any, Any, Any]] = floor
            self.release = wake
            self.depth: Callable[[], int] = lambda: len(waiters)
        elif kind == "asyncio.Semaphore":
            semaphore = asyncio.Semaphore(1)
            semaphore._value = 0  # the slot is held by the benchmark

            async def sem() -> None:
                async with semaphore:
                    pass

            self.spawn = sem
            self.release = semaphore.release
            self.depth = lambda: len(semaphore._waiters or ())
        else:
            limiter = ConcurrencyLimit(1, name="bench.scale")
            # The slot is held by the benchmark (the same as one acquire, without awaiting).
            limiter._in_flight = 1

            async def limited() -> None:
                await limiter.acquire()
                limiter.release()

            async def noop() -> None:
                return None

            self.spawn = limited if kind == "ConcurrencyLimit" else wrap(noop, limiter, name="bench.scale")
            self.release = limiter.release
            self.depth = lambda: limiter.queued


async def fill(queue: Queue, depth: int) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.create_task(queue.spawn()) for _ in range(depth)]
    await asyncio.sleep(0)  # every task runs once, up to its wait
    if queue.depth() != depth:
        raise AssertionError(f"{queue.kind}: {queue.depth()} queued, expected {depth}")
    return tasks


async def drain(queue: Queue, tasks: list[asyncio.Task[Any]]) -> None:
    queue.release()
    await asyncio.gather(*tasks)


# --- memory -----------------------------------------------------------------------------------------------
async def traced_bytes(kind: str, depth: int) -> float:
    """tracemalloc: bytes allocated per queued call of ``kind`` (the list holding the tasks excluded)."""
    queue = Queue(kind)
    tasks: list[asyncio.Task[Any]] = []
    tasks_list_bytes = sys.getsizeof([None] * depth)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tasks = await fill(queue, depth)
    after = tracemalloc.get_traced_memory()[0]
    await drain(queue, tasks)
    return (after - before - tasks_list_bytes) / depth


def limiter_state_bytes(depth: int) -> float:
    """tracemalloc: what the limiter itself keeps per waiter — one future in a deque slot."""

    async def build() -> float:
        loop = asyncio.get_running_loop()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        waiters: deque[asyncio.Future[None]] = deque()
        for _ in range(depth):
            waiters.append(loop.create_future())
        after = tracemalloc.get_traced_memory()[0]
        return (after - before) / len(waiters)

    return asyncio.run(build())


def vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def rss_child(kind: str, depth: int) -> float:
    """RSS growth per queued call, in a fresh process (run as a child)."""
    warm = Queue(kind)  # first-use allocations (code objects, caches) before the baseline reading
    await drain(warm, await fill(warm, 100))
    queue = Queue(kind)
    gc.collect()
    before = vm_rss()
    tasks = await fill(queue, depth)
    after = vm_rss()
    await drain(queue, tasks)
    return (after - before) / depth


def rss_bytes(kind: str, depth: int) -> float:
    command = [sys.executable, __file__, "--rss-child", kind, "--depth", str(depth)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(json.loads(output.strip().splitlines()[-1]))


# --- time ------------------------------------------------------------------------------------------------
async def timed(kind: str, depth: int) -> tuple[float, float]:
    """(enqueue, hand-off) nanoseconds per queued call."""
    queue = Queue(kind)
    gc.collect()
    gc.disable()  # see the module docstring: the collector's cost grows with every live object, limiter or not
    try:
        start = time.perf_counter_ns()
        tasks = await fill(queue, depth)
        filled = time.perf_counter_ns()
        await drain(queue, tasks)
        drained = time.perf_counter_ns()
    finally:
        gc.enable()
    return (filled - start) / depth, (drained - filled) / depth


async def timings(depths: list[int], rounds: int) -> dict[int, dict[str, dict[str, Any]]]:
    results: dict[int, dict[str, dict[str, list[float]]]] = {
        d: {k: {"enqueue": [], "handoff": []} for k in KINDS} for d in depths
    }
    for kind in KINDS:  # warm-up
        await timed(kind, 1000)
    for round_ in range(rounds):
        for depth in depths:
            kinds = KINDS if round_ % 2 == 0 else tuple(reversed(KINDS))
            for kind in kinds:
                enqueue, handoff = await timed(kind, depth)
                results[depth][kind]["enqueue"].append(enqueue)
                results[depth][kind]["handoff"].append(handoff)
    return {
        d: {
            k: {
                "enqueue_ns": statistics.median(v["enqueue"]),
                "enqueue_spread_ns": _bench.spread(v["enqueue"]),
                "handoff_ns": statistics.median(v["handoff"]),
                "handoff_spread_ns": _bench.spread(v["handoff"]),
            }
            for k, v in per_kind.items()
        }
        for d, per_kind in results.items()
    }


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "scale")
    cli.add_argument("--rounds", type=int, default=None, help="timing rounds (median)")
    cli.add_argument("--rss-child", choices=KINDS, help=argparse.SUPPRESS)
    cli.add_argument("--depth", type=int, default=0, help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.rss_child:
        print(json.dumps(asyncio.run(rss_child(args.rss_child, args.depth))))
        return
    depths = [1000, 5000] if args.quick else [1000, 10000, 100000]
    rounds = args.rounds or (1 if args.quick else 5)
    big = depths[-1]

    tracemalloc.start()
    memory = {kind: asyncio.run(traced_bytes(kind, big)) for kind in KINDS}
    own = limiter_state_bytes(big)
    tracemalloc.stop()
    rss = {kind: rss_bytes(kind, big) for kind in KINDS}
    times = asyncio.run(timings(depths, rounds))

    floor = memory["floor"]
    rows = [[kind, memory[kind], rss[kind], memory[kind] - floor] for kind in KINDS]
    rows.append(["limiter's own state (waiter future + deque slot)", own, float("nan"), float("nan")])
    print(
        _bench.table(
            f"\nMemory per queued call, {big:,} queued on one limiter (bytes)",
            ["queued call", "tracemalloc", "RSS", "above floor"],
            rows,
        )
    )
    whole = memory["wrap(…, ConcurrencyLimit)"]
    print(
        f"whole queued call through wrap(): {whole:.0f} B, of which the limiter's own state {own:.0f} B "
        f"(target ≤ {TARGET_BYTES} B) → {_bench.verdict(whole <= TARGET_BYTES)}"
    )

    rows = []
    for depth in depths:
        for kind in KINDS:
            t = times[depth][kind]
            rows.append([depth, kind, t["enqueue_ns"] / 1000, t["handoff_ns"] / 1000])
    print(
        _bench.table(
            f"\nCost per operation (µs per queued call, median of {rounds}; task creation and wake-up included)",
            ["queued", "kind", "enqueue µs", "hand-off µs"],
            rows,
        )
    )
    flatness: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        flatness[kind] = {}
        for op in ("enqueue_ns", "handoff_ns"):
            values = [times[d][kind][op] for d in depths]
            flatness[kind][op] = max(values) / min(values)
    ours = flatness["ConcurrencyLimit"]
    flat = max(ours.values()) <= FLAT_TOLERANCE
    print(
        f"ConcurrencyLimit per-op cost, largest ÷ smallest across {depths}: enqueue "
        f"{ours['enqueue_ns']:.2f}, hand-off {ours['handoff_ns']:.2f} (floor: "
        f"{flatness['floor']['enqueue_ns']:.2f}, {flatness['floor']['handoff_ns']:.2f}) → flat (≤ "
        f"{FLAT_TOLERANCE}): {_bench.verdict(flat)}"
    )
    _bench.write_json(
        "scale",
        {
            "queued": big,
            "rounds": rounds,
            "memory_bytes_per_queued_call": {"tracemalloc": memory, "rss": rss, "limiter_own_state": own},
            "per_op": {str(d): v for d, v in times.items()},
            "flatness": flatness,
            "targets": {
                "bytes_per_queued_call": {
                    "measured": whole,
                    "target": TARGET_BYTES,
                    "met": whole <= TARGET_BYTES,
                },
                "flat_per_op": {"measured": max(ours.values()), "target": FLAT_TOLERANCE, "met": flat},
            },
        },
        args.out,
    )


if __name__ == "__main__":
    main()
