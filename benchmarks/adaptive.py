"""Adaptive concurrency against a backend with a hidden capacity that changes: static limits vs adaptive ones.

The backend is the demo HTTP API's ``capacity`` operation (``CapacityGate``), served by uvicorn in a separate
process (so the client's event loop has a core of its own): up to C requests at once are answered in 100 ms,
more wait their turn (latency grows with the excess), and a request arriving when 2·C are present is answered
429 with ``Retry-After: 1``. C is 8, drops to 3 a third into the run and recovers to 8 two thirds in.

Each run runs every variant in turn (the order rotated from run to run, so none always goes first on a
machine whose load drifts), each on a lane of its own (a backend of its own with the same capacity schedule),
as a ToolNode over real HTTP with the default stack (Retry with ``max_attempts=5`` honouring Retry-After, the
limit, Timeout 10 s), doing the same workload: ``WORKERS`` callers calling back to back. One at a time because
the client is one event loop: five variants at once saturated it on a loaded 2-core machine, and a saturated
loop inflates every measured round trip (the gradient algorithm then rightly, but uselessly, cuts).

* ``static 2``, ``static 50``: a fixed ``max_concurrency``;
* ``oracle``: a fixed limit set to the true C at each change (what a perfect guess would do);
* ``aimd``, ``gradient``: ``adaptive=AdaptivePolicy(algorithm=...)``, ceiling 50, defaults otherwise.

Per variant: goodput (successful calls per second over the whole run), p99 latency of all calls (whole call,
queueing and retries included; failed calls too), the share of attempts the backend answered 429 (its own
count), and how the limit tracked C: the first moment it entered C ± 30 % after each change, whether it was in
that band 5 s after the change, and the share of the rest of the phase it spent there.

Run: ``python benchmarks/adaptive.py [--runs 3]`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import statistics
from dataclasses import dataclass, field
from typing import Any

import _bench
import httpx

from penguiflow.middleware import AdaptivePolicy, RetryPolicy
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

SERVICE_S = 0.1
CAPACITIES = (8, 3, 8)
CEILING = 50
WORKERS = 32
VARIANTS = ("static 2", "oracle", "static 50", "aimd", "gradient")
BAND = 0.3
SETTLE_S = 5.0


def serve(port_out: Any, stop: Any) -> None:
    """The backend process: the demo API on a free port, until ``stop`` is set."""
    from penguiflow.demo.backends.http_api import HttpApiServer

    with HttpApiServer(capacity=CAPACITIES[0], capacity_service_s=SERVICE_S, retry_after_s=1) as api:
        port_out.send(api.url)
        stop.wait()


def config(variant: str, url: str) -> ExternalToolConfig:
    static = {"static 2": 2, "static 50": 50, "oracle": CAPACITIES[0]}
    return ExternalToolConfig(
        name=variant.replace(" ", "_"),
        transport=TransportType.HTTP,
        connection=url,
        tool_filter=["capacity"],
        max_concurrency=static.get(variant, CEILING),
        adaptive=False if variant in static else AdaptivePolicy(algorithm=variant),  # type: ignore[arg-type]
        timeout_s=10,
        retry_policy=RetryPolicy(max_attempts=5, wait_exponential_min_s=0.1, max_retry_after_s=2.0),
    )


@dataclass
class Lane:
    variant: str
    node: ToolNode
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    limits: list[tuple[float, int]] = field(default_factory=list)  # (seconds into the run, limit)


async def one_run(url: str, phase_s: float, variants: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    lanes = [Lane(variant, ToolNode(config(variant, url))) for variant in variants]
    for lane in lanes:
        await lane.node.connect()
    async with httpx.AsyncClient() as control:
        await control.post(f"{url}/capacity", params={"capacity": CAPACITIES[0]})
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + phase_s * len(CAPACITIES)

        async def worker(lane: Lane) -> None:
            arguments = {"lane": lane.variant}
            tool = f"{lane.node.name}.capacity"
            while loop.time() < end:
                began = loop.time()
                try:
                    await lane.node.call(tool, arguments)
                    lane.ok += 1
                except Exception:
                    lane.failed += 1
                lane.latencies.append(loop.time() - began)

        async def schedule() -> None:
            for i, capacity in enumerate(CAPACITIES):
                await asyncio.sleep(max(0.0, start + i * phase_s - loop.time()))
                await control.post(f"{url}/capacity", params={"capacity": capacity})
                for lane in lanes:
                    if lane.variant == "oracle":
                        assert lane.node.limiter is not None
                        lane.node.limiter.set_limit(capacity)

        async def sample() -> None:
            while loop.time() < end:
                for lane in lanes:
                    limiter = lane.node.limiter
                    assert limiter is not None
                    lane.limits.append((loop.time() - start, limiter.limit))
                await asyncio.sleep(0.1)

        tasks = [worker(lane) for lane in lanes for _ in range(WORKERS)]
        await asyncio.gather(schedule(), sample(), *tasks)
        elapsed = loop.time() - start
        server = (await control.get(f"{url}/capacity/stats")).json()
        await control.post(f"{url}/capacity", params={"capacity": CAPACITIES[0]})
    results = {}
    for lane in lanes:
        await lane.node.close()
        results[lane.variant] = {
            "goodput": lane.ok / elapsed,
            "p99_s": _quantile(lane.latencies, 0.99),
            "failed": lane.failed,
            "tracking": _tracking(lane.limits, phase_s),
            # the lanes' backends live on in the server process: main() takes the difference per run
            "server": server.get(lane.variant, {"served": 0, "refused": 0}),
        }
    return results


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _tracking(limits: list[tuple[float, int]], phase_s: float) -> list[dict[str, Any]]:
    phases = []
    for i, capacity in enumerate(CAPACITIES):
        start, end = i * phase_s, (i + 1) * phase_s
        during = [(t, limit) for t, limit in limits if start <= t < end]
        inside = [abs(limit - capacity) <= BAND * capacity for _t, limit in during]
        entry = next((t - start for (t, _limit), ok in zip(during, inside, strict=True) if ok), None)
        settled = [ok for (t, _limit), ok in zip(during, inside, strict=True) if t >= start + SETTLE_S]
        at_settle = next(
            (limit for t, limit in during if t >= start + SETTLE_S), during[-1][1] if during else None
        )
        phases.append(
            {
                "capacity": capacity,
                "entry_s": entry,
                "limit_at_5s": at_settle,
                "in_band_at_5s": at_settle is not None and abs(at_settle - capacity) <= BAND * capacity,
                "in_band_share_after_5s": sum(settled) / len(settled) if settled else float("nan"),
                "median_limit_after_5s": statistics.median(
                    [limit for t, limit in during if t >= start + SETTLE_S] or [0]
                ),
            }
        )
    return phases


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in ("served", "refused")}


def main() -> int:
    cli = _bench.parser(__doc__.splitlines()[0] if __doc__ else "")
    cli.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    cli.add_argument("--phase-s", type=float, default=12.0, help="seconds per capacity phase (default 12)")
    args = cli.parse_args()
    runs, phase_s = (1, 1.0) if args.quick else (args.runs, args.phase_s)
    logging.getLogger("penguiflow.flow").setLevel(logging.CRITICAL)  # calls are counted, not printed
    context = multiprocessing.get_context("spawn")
    port_out, port_in = context.Pipe()
    stop = context.Event()
    backend = context.Process(target=serve, args=(port_in, stop), daemon=True)
    backend.start()
    url = port_out.recv()
    per_run: list[dict[str, dict[str, Any]]] = []
    previous: dict[str, dict[str, int]] = {}
    try:
        for run in range(runs):
            print(
                f"run {run + 1}/{runs}: {len(VARIANTS)} variants × {phase_s * len(CAPACITIES):.0f} s, load {_bench.machine()['load_avg_1m']}",
                flush=True,
            )
            order = VARIANTS[run % len(VARIANTS) :] + VARIANTS[: run % len(VARIANTS)]
            result: dict[str, dict[str, Any]] = {}
            for variant in order:  # one at a time, the order rotated each run: the client has the core alone
                result.update(asyncio.run(one_run(url, phase_s, (variant,))))
            result = {variant: result[variant] for variant in VARIANTS}
            for variant, row in result.items():  # server counts are cumulative across runs
                counts = delta(row["server"], previous.get(variant, {}))
                previous[variant] = row["server"]
                attempts = counts["served"] + counts["refused"]
                row["share_429"] = counts["refused"] / attempts if attempts else 0.0
                row["server"] = counts
            per_run.append(result)
            print(run_table(result, run + 1), flush=True)
    finally:
        stop.set()
        backend.join(10)
        with contextlib.suppress(Exception):
            backend.kill()
    summary = summarize(per_run)
    print()
    print(summary_table(summary, runs))
    _bench.write_json(
        "adaptive",
        {
            "conditions": {
                "service_s": SERVICE_S,
                "capacities": CAPACITIES,
                "phase_s": phase_s,
                "workers": WORKERS,
                "ceiling": CEILING,
                "runs": runs,
            },
            "runs": per_run,
            "summary": summary,
        },
        args.out,
    )
    return 0


def run_table(result: dict[str, dict[str, Any]], number: int) -> str:
    oracle = result["oracle"]
    rows = []
    for variant, row in result.items():
        tracking = "  ".join(
            f"C={p['capacity']}: {_s(p['entry_s'])}/{p['limit_at_5s']}/{p['in_band_share_after_5s']:.0%}"
            for p in row["tracking"]
        )
        rows.append(
            [
                variant,
                row["goodput"],
                row["goodput"] / oracle["goodput"],
                row["p99_s"],
                row["p99_s"] / oracle["p99_s"],
                f"{row['share_429']:.2%}",
                row["failed"],
                tracking,
            ]
        )
    return _bench.table(
        f"Run {number}: goodput, p99, 429s, limit tracking (entry into C±30% / limit 5 s after / share in band after)",
        ["variant", "goodput/s", "÷ oracle", "p99 s", "÷ oracle", "429s", "failed", "tracking"],
        rows,
    )


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


def summarize(per_run: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        goodput = [run[variant]["goodput"] / run["oracle"]["goodput"] for run in per_run]
        p99 = [run[variant]["p99_s"] / run["oracle"]["p99_s"] for run in per_run]
        share = [run[variant]["share_429"] for run in per_run]
        phases = [p for run in per_run for p in run[variant]["tracking"]]
        summary[variant] = {
            "goodput_vs_oracle": (_bench.median(goodput), *_bench.spread(goodput)),
            "p99_vs_oracle": (_bench.median(p99), *_bench.spread(p99)),
            "share_429": (_bench.median(share), *_bench.spread(share)),
            "entered_within_5s": sum(p["entry_s"] is not None and p["entry_s"] <= SETTLE_S for p in phases)
            / len(phases),
            "in_band_at_5s": sum(p["in_band_at_5s"] for p in phases) / len(phases),
            "in_band_share_after_5s": _bench.median([p["in_band_share_after_5s"] for p in phases]),
        }
        if variant in ("aimd", "gradient"):
            row = summary[variant]
            row["targets"] = {
                "goodput >= 0.9x oracle": row["goodput_vs_oracle"][0] >= 0.9,
                "p99 <= 1.5x oracle": row["p99_vs_oracle"][0] <= 1.5,
                "429s <= 1%": row["share_429"][0] <= 0.01,
                "limit in C±30% within 5 s of each change": row["entered_within_5s"] == 1.0,
            }
    return summary


def summary_table(summary: dict[str, dict[str, Any]], runs: int) -> str:
    rows = []
    for variant, row in summary.items():
        targets = row.get("targets")
        rows.append(
            [
                variant,
                _ranged(row["goodput_vs_oracle"], "{:.2f}"),
                _ranged(row["p99_vs_oracle"], "{:.2f}"),
                _ranged(row["share_429"], "{:.2%}"),
                f"{row['entered_within_5s']:.0%}",
                f"{row['in_band_at_5s']:.0%}",
                f"{row['in_band_share_after_5s']:.0%}",
                "-" if targets is None else ", ".join(_bench.verdict(ok) for ok in targets.values()),
            ]
        )
    return _bench.table(
        f"Adaptive concurrency: median over {runs} run(s) (min..max); C = 8 -> 3 -> 8, targets: goodput >= 0.9, "
        "p99 <= 1.5, 429s <= 1 %, in C±30 % within 5 s of each change",
        [
            "variant",
            "goodput ÷ oracle",
            "p99 ÷ oracle",
            "429s of attempts",
            "in band ≤ 5 s",
            "in band at +5 s",
            "in band after",
            "targets",
        ],
        rows,
    )


def _ranged(values: tuple[float, float, float], pattern: str) -> str:
    median, low, high = values
    return f"{pattern.format(median)} ({pattern.format(low)}..{pattern.format(high)})"


if __name__ == "__main__":
    raise SystemExit(main())
