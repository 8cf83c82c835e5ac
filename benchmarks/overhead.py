"""Overhead per call of each layer and of the default stack, around a no-op coroutine.

Telemetry off and telemetry on are measured in two separate child processes (an SDK provider, once installed,
cannot be uninstalled). In each process every variant runs a batch of sequential calls per round, the variants
in a new shuffled order each round; a bare ``await noop()`` batch in the same round is the floor subtracted
from every variant of that round, and each figure is the median over the rounds.

* telemetry off — baseline: the hand-written composition a user would write without penguiflow,
  ``tenacity`` retry → ``asyncio.Semaphore`` → ``asyncio.timeout`` (as an ``AsyncRetrying`` loop and as the
  ``@retry`` decorator; the cheaper of the two is the baseline). Target: default stack ≤ 0.3× its overhead.
* telemetry on (SDK ``TracerProvider`` + ``BatchSpanProcessor`` into an exporter that drops spans,
  ``MeterProvider`` + an ``InMemoryMetricReader`` never collected during the run) — baseline: one bare SDK
  span (``start_as_current_span``) plus one histogram record. Target: default stack ≤ 1.25× that cost. And
  against the SDK calls of our own signal set alone (the span with its attributes, made current, and the
  duration histogram; a call admitted at once records no wait sample; no layers): default stack ≤ 1.1× them, i.e. everything the stack does beyond
  the SDK calls its conventions require costs ≤ 10 % of those.

Run: ``python benchmarks/overhead.py`` (``--quick`` for a smoke run). ``--instructions CALLS`` counts
instructions per call instead (callgrind, ``_instructions.py``; the same ratios, independent of the machine's
load): each variant's ``CALLS`` sequential calls in a region of their own, less a bare ``await noop()``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _bench
import _instructions
from tenacity import AsyncRetrying, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from penguiflow.middleware import (
    Call,
    CallerLimits,
    ConcurrencyLimit,
    Retry,
    RetryPolicy,
    Stack,
    Timeout,
    log_flow_events,
    wrap,
)
from penguiflow.middleware.stack import function_handler

Variant = Callable[[], Awaitable[Any]]

TIMEOUT_S = 30.0
LIMIT = 10
DEFAULT_STACK = "default stack (4 layers)"
UNDER_PLANNER = "default stack under Levels 1 & 2 (joint admission)"
TARGET_OFF = 0.30
TARGET_ON = 1.25
TARGET_FLOOR = 1.10  # telemetry on: the stack's cost beyond its own signal set's SDK calls ≤ 10 % of them
SDK_FLOOR = "SDK calls of our stack only (no layers)"


async def noop() -> None:
    return None


# --- the hand-written baseline: what a user writes with tenacity + asyncio alone ---------------------------
def handwritten_variants() -> dict[str, Variant]:
    policy = RetryPolicy()  # the same numbers as our default, spelled in tenacity
    semaphore = asyncio.Semaphore(LIMIT)
    settings: dict[str, Any] = {
        "stop": stop_after_attempt(policy.max_attempts),
        "wait": wait_exponential(
            multiplier=policy.wait_exponential_min_s,
            min=policy.wait_exponential_min_s,
            max=policy.wait_exponential_max_s,
        ),
        "retry": retry_if_exception_type((TimeoutError, ConnectionError)),
        "reraise": True,
    }

    async def handwritten_loop() -> Any:
        async for attempt in AsyncRetrying(**settings):
            with attempt:
                async with semaphore, asyncio.timeout(TIMEOUT_S):
                    return await noop()
        return None  # unreachable: reraise=True

    async def limited() -> Any:
        async with semaphore, asyncio.timeout(TIMEOUT_S):
            return await noop()

    decorate: Callable[[Variant], Variant] = retry(**settings)  # what @retry(...) does to ``limited``
    handwritten_decorator = decorate(limited)

    return {
        "hand-written: AsyncRetrying loop": handwritten_loop,
        "hand-written: @retry decorator": handwritten_decorator,
    }


# --- ours -------------------------------------------------------------------------------------------------
def under_levels_1_and_2() -> Variant:
    """The default stack called as a planner calls it: its run's Level 2 and the planner's fair Level 1 on
    ``call.limits``, admitted with the stack's own limit in one decision (three limiters, one path)."""
    stack = Stack(
        function_handler(noop),
        [
            log_flow_events(),
            Retry(RetryPolicy()),
            ConcurrencyLimit(LIMIT, name="bench.l3"),
            Timeout(TIMEOUT_S),
        ],
    )
    limits = (ConcurrencyLimit(5, name="bench.l2"), ConcurrencyLimit(50, name="bench.l1", fairness="fair"))
    flow = object()

    def call() -> Awaitable[Any]:
        return stack(Call("bench.noop", {}, source="bench", limits=limits, flow=flow))

    return call


def our_variants() -> dict[str, Variant]:
    return {
        "wrap(), no layer": wrap(noop, name="bench.noop"),
        "log_flow_events": wrap(noop, log_flow_events(), name="bench.noop"),
        "Retry(RetryPolicy())": wrap(noop, Retry(RetryPolicy()), name="bench.noop"),
        "CallerLimits (none given)": wrap(noop, CallerLimits(), name="bench.noop"),
        "ConcurrencyLimit": wrap(noop, ConcurrencyLimit(LIMIT, name="bench.one"), name="bench.noop"),
        "Timeout": wrap(noop, Timeout(TIMEOUT_S), name="bench.noop"),
        DEFAULT_STACK: wrap(
            noop,
            log_flow_events(),
            Retry(RetryPolicy()),
            ConcurrencyLimit(LIMIT, name="bench.default"),
            Timeout(TIMEOUT_S),
            name="bench.noop",
            source="bench",
        ),
        UNDER_PLANNER: under_levels_1_and_2(),
        "default stack + CallerLimits (5)": wrap(
            noop,
            log_flow_events(),
            Retry(RetryPolicy()),
            CallerLimits(),
            ConcurrencyLimit(LIMIT, name="bench.default5"),
            Timeout(TIMEOUT_S),
            name="bench.noop",
            source="bench",
        ),
    }


# --- telemetry on: the SDK, and the bare span + histogram baseline --------------------------------------
def sdk_variants() -> dict[str, Variant]:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    tracer_provider, meter_provider = _bench.install_sdk()
    tracer = tracer_provider.get_tracer("bench")
    histogram = meter_provider.get_meter("bench").create_histogram("bench.duration", unit="s")
    attributes = {"gen_ai.tool.name": "bench.noop"}

    async def span_and_histogram() -> None:
        start = time.perf_counter()
        with tracer.start_as_current_span("execute_tool bench.noop"):
            await noop()
        histogram.record(time.perf_counter() - start, attributes)

    # The SDK calls our default stack makes on a call's happy path, and nothing else: its span (5 attributes,
    # made current) and the duration histogram (whose count is the calls counter). A call that does not wait
    # records no wait sample (admissions are counted in memory and read on collection). What telemetry on
    # costs us at the very least with today's signal set.
    span_attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "bench.noop",
        "gen_ai.tool.call.id": "call_0",
        "gen_ai.tool.type": "function",
        "penguiflow.tool.source": "bench",
    }
    outcome_attributes = {
        "gen_ai.tool.name": "bench.noop",
        "penguiflow.tool.source": "bench",
        "outcome": "ok",
    }

    async def our_sdk_calls() -> None:
        start = time.perf_counter()
        span = tracer.start_span("execute_tool bench.noop", attributes=span_attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await noop()
        finally:
            otel_context.detach(token)
            span.end()
        histogram.record(time.perf_counter() - start, outcome_attributes)

    handwritten = handwritten_variants()["hand-written: @retry decorator"]

    async def handwritten_traced() -> None:
        start = time.perf_counter()
        with tracer.start_as_current_span("execute_tool bench.noop"):
            await handwritten()
        histogram.record(time.perf_counter() - start, attributes)

    return {
        "bare SDK span + histogram record": span_and_histogram,
        "hand-written (@retry) + span + histogram": handwritten_traced,
        SDK_FLOOR: our_sdk_calls,
    }


# --- measurement ------------------------------------------------------------------------------------------
async def batch(fn: Variant, calls: int) -> float:
    """Nanoseconds per call of ``calls`` sequential awaits."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        await fn()
    elapsed = time.perf_counter_ns() - start
    # A no-op never suspends, so the event loop does not run during a batch; let it run once now, as it would
    # between real calls, to purge the cancelled timer handles the timeouts left in its heap.
    await asyncio.sleep(0)
    return elapsed / calls


async def measure(variants: dict[str, Variant], rounds: int, calls: int) -> dict[str, list[float]]:
    """Per variant, its overhead (ns per call above the same round's floor) in each round."""
    shuffle = random.Random(1234)
    names = list(variants)
    for name in names:  # warm-up: first-call set-up, caches, instruments
        await batch(variants[name], max(10, calls // 10))
    overhead: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        gc.collect()
        shuffle.shuffle(names)
        floor = await batch(noop, calls)
        for name in names:
            overhead[name].append(await batch(variants[name], calls) - floor)
        overhead.setdefault("floor (bare await noop())", []).append(floor)
    return overhead


def all_variants(mode: str) -> dict[str, Variant]:
    variants: dict[str, Variant] = {}
    if mode == "on":
        variants.update(sdk_variants())
    variants.update(handwritten_variants())
    variants.update(our_variants())
    return variants


def child(mode: str, rounds: int, calls: int, out: Path) -> None:
    results = asyncio.run(measure(all_variants(mode), rounds, calls))
    out.write_text(json.dumps(results))


def child_instructions(mode: str, calls: int) -> None:
    """Under callgrind: the floor, then each variant, ``calls`` sequential calls each in a region of its own
    (after a warm-up outside the regions); the parent reads the counts in this order."""
    loop = asyncio.new_event_loop()
    variants = all_variants(mode)
    for fn in variants.values():
        loop.run_until_complete(batch(fn, max(10, calls // 10)))
    gc.collect()
    gc.disable()  # a collection would land in whichever region it happens to fall: count none
    for fn in [noop, *variants.values()]:
        _instructions.region(lambda fn=fn: loop.run_until_complete(batch(fn, calls)))  # type: ignore[misc]
    gc.enable()
    loop.close()
    print(json.dumps(["floor (bare await noop())", *variants]))  # the regions' names, for the parent


def count_instructions(mode: str, calls: int) -> dict[str, float]:
    """Instructions per call above the bare ``await noop()``, per variant, in one callgrind run."""
    argv = [sys.executable, __file__, "--child-instructions", mode, "--calls", str(calls)]
    counts, done = _instructions.count(argv)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind child ({mode}) failed: exit {done.returncode}: {done.stderr[-800:]}")
    names: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    if len(counts) != len(names):
        raise RuntimeError(f"callgrind child ({mode}): {len(counts)} regions counted, {len(names)} expected")
    per_call = _instructions.per_call(counts, calls)
    floor = per_call[0]
    pairs = enumerate(zip(names, per_call, strict=True))
    return {name: value - (floor if i else 0.0) for i, (name, value) in pairs}


def instructions_report(calls: int, out: Path | None) -> None:
    """Both modes under callgrind (they run at once: counts do not depend on load); the same ratios as the
    timed run, from instruction counts."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        off, on = pool.map(lambda mode: count_instructions(mode, calls), ("off", "on"))
    columns = ["variant", "instructions/call above noop", "× baseline"]
    handwritten = min(off["hand-written: AsyncRetrying loop"], off["hand-written: @retry decorator"])
    bare = on["bare SDK span + histogram record"]
    print(
        _bench.table(
            f"\nTelemetry OFF, instructions ({calls} calls each)",
            columns,
            [[k, v, v / handwritten] for k, v in off.items()],
        )
    )
    print(
        _bench.table(
            f"\nTelemetry ON, instructions ({calls} calls each)",
            columns,
            [[k, v, v / bare] for k, v in on.items()],
        )
    )
    targets = {
        "telemetry_off": off[DEFAULT_STACK] / handwritten,
        "telemetry_on_vs_sdk_floor": on[DEFAULT_STACK] / on[SDK_FLOOR],
        "telemetry_on_under_planner_vs_sdk_floor": on[UNDER_PLANNER] / on[SDK_FLOOR],
        "sdk_floor_vs_bare": on[SDK_FLOOR] / bare,
    }
    for name, value in targets.items():
        print(f"{name}: {value:.3f}")
    payload = {"calls": calls, "off": off, "on": on, "ratios": targets, "counter": _instructions.describe()}
    _bench.write_json("overhead_instructions", payload, out)


# --- the parent: run both children, print and save ---------------------------------------------------------
def run_child(mode: str, rounds: int, calls: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{mode}.json"
        command = [sys.executable, __file__, "--child", mode, "--rounds", str(rounds), "--calls", str(calls)]
        subprocess.run([*command, "--child-out", str(out)], check=True)
        results: dict[str, list[float]] = json.loads(out.read_text())
        return results


def summarise(raw: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "median_ns": statistics.median(values),
            "min_ns": min(values),
            "max_ns": max(values),
        }
        for name, values in raw.items()
    }


def report(mode: str, stats: dict[str, dict[str, float]], baseline: str) -> list[list[Any]]:
    base = stats[baseline]["median_ns"]
    bare_stack = stats["wrap(), no layer"]["median_ns"]
    rows: list[list[Any]] = []
    for name, s in stats.items():
        marginal = s["median_ns"] - bare_stack if name in OUR_LAYERS else float("nan")
        rows.append(
            [
                name,
                s["median_ns"] / 1000,
                f"{s['min_ns'] / 1000:.2f}..{s['max_ns'] / 1000:.2f}",
                marginal / 1000,
                s["median_ns"] / base,
            ]
        )
    return rows


OUR_LAYERS = {
    "log_flow_events",
    "Retry(RetryPolicy())",
    "CallerLimits (none given)",
    "ConcurrencyLimit",
    "Timeout",
    DEFAULT_STACK,
    UNDER_PLANNER,
    "default stack + CallerLimits (5)",
}


def main() -> None:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "overhead")
    cli.add_argument("--rounds", type=int, default=None, help="rounds per variant (median over them)")
    cli.add_argument("--calls", type=int, default=None, help="sequential calls per batch")
    cli.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    cli.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    cli.add_argument("--child-instructions", choices=["off", "on"], help=argparse.SUPPRESS)
    cli.add_argument(
        "--instructions",
        type=int,
        metavar="CALLS",
        help="only count instructions per call (callgrind), CALLS sequential calls per variant",
    )
    args = cli.parse_args()
    rounds = args.rounds or (3 if args.quick else 21)
    calls = args.calls or (200 if args.quick else 3000)
    if args.child:
        child(args.child, rounds, calls, args.child_out)
        return
    if args.child_instructions:
        child_instructions(args.child_instructions, calls)
        return
    if args.instructions:
        instructions_report(args.instructions, args.out)
        return

    payload: dict[str, Any] = {"rounds": rounds, "calls_per_batch": calls, "timeout_s": TIMEOUT_S}
    targets: dict[str, Any] = {}
    columns = ["variant", "overhead µs", "spread (min..max)", "vs wrap() µs", "× baseline"]
    for mode in ("off", "on"):
        stats = summarise(run_child(mode, rounds, calls))
        floor = stats.pop("floor (bare await noop())")
        if mode == "off":
            handwritten = min(
                ("hand-written: AsyncRetrying loop", "hand-written: @retry decorator"),
                key=lambda name: stats[name]["median_ns"],
            )
            baseline, target = handwritten, TARGET_OFF
            title = f"\nTelemetry OFF — overhead per call above a bare `await noop()` ({floor['median_ns']:.0f} ns)"
        else:
            baseline, target = "bare SDK span + histogram record", TARGET_ON
            title = f"\nTelemetry ON (SDK, batch span processor) — overhead above `await noop()` ({floor['median_ns']:.0f} ns)"
        print(_bench.table(title + f"; baseline: {baseline}", columns, report(mode, stats, baseline)))
        ratio = stats[DEFAULT_STACK]["median_ns"] / stats[baseline]["median_ns"]
        met = ratio <= target
        print(f"{DEFAULT_STACK} ÷ {baseline}: {ratio:.3f} (target ≤ {target}) → {_bench.verdict(met)}")
        joint = stats[UNDER_PLANNER]["median_ns"] / stats[baseline]["median_ns"]
        print(
            f"{UNDER_PLANNER} ÷ {baseline}: {joint:.3f} (target ≤ {target}) → {_bench.verdict(joint <= target)}"
        )
        targets[f"telemetry_{mode}_under_planner"] = {
            "ratio": joint,
            "target": target,
            "met": joint <= target,
        }
        if mode == "on":
            floor_ratio = stats[SDK_FLOOR]["median_ns"] / stats[baseline]["median_ns"]
            print(f"{SDK_FLOOR} ÷ {baseline}: {floor_ratio:.3f} (the least our signal set can cost)")
            targets["sdk_floor_ratio"] = floor_ratio
            over = stats[DEFAULT_STACK]["median_ns"] / stats[SDK_FLOOR]["median_ns"]
            print(
                f"{DEFAULT_STACK} ÷ {SDK_FLOOR}: {over:.3f} (target ≤ {TARGET_FLOOR}) → "
                f"{_bench.verdict(over <= TARGET_FLOOR)}"
            )
            targets["telemetry_on_vs_sdk_floor"] = {
                "ratio": over,
                "target": TARGET_FLOOR,
                "met": over <= TARGET_FLOOR,
            }
        payload[f"telemetry_{mode}"] = {"floor_ns": floor, "baseline": baseline, "variants": stats}
        targets[f"telemetry_{mode}"] = {"ratio": ratio, "target": target, "met": met}
    payload["targets"] = targets
    _bench.write_json("overhead", payload, args.out)


if __name__ == "__main__":
    main()
