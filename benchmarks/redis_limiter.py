"""Per-call cost of the Redis limits against the local ones, and the Redis round trips each call makes.

Every variant wraps the same no-op coroutine with ``penguiflow.wrap`` (telemetry off: no SDK installed), so the
differences are the limiter's own cost. Variants alternate over several rounds; each figure is the median.

* uncontended: calls one after another — ``RedisConcurrencyLimit`` costs an acquire and a release script,
  ``RedisRateLimit`` one reserve script (its rate set so high that nobody waits);
* contended: 200 calls started at once behind a limit of 5, each holding its slot 10 ms (ideal makespan
  0.4 s), from one process, then split over two limiter instances standing for two processes — there a
  slot freed by one reaches the other's waiters by polling (``poll_s``): the round trips per call and the
  makespan show what polling costs.

Round trips are counted twice: by the limiter (``round_trips``) and by the server (script requests in
``INFO commandstats``), which must agree; the commands those scripts execute inside Redis are shown too. Needs Debian's ``redis-server``; the script
starts its own on 127.0.0.1.

Run: ``python benchmarks/redis_limiter.py`` (``--quick`` for a smoke run). Writes
``benchmarks/results/redis_limiter.json``.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _bench
import redis.asyncio as aioredis

from penguiflow import wrap
from penguiflow.middleware import ConcurrencyLimit
from penguiflow_middleware import RateLimit, RedisConcurrencyLimit, RedisRateLimit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.redis_server: one way to run a throwaway redis-server


class _Pair:
    """Two limiters on one key, standing for two processes; calls alternate between them."""

    def __init__(self, limiters: list[RedisConcurrencyLimit]) -> None:
        self.limiters = limiters

    def tool(self, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        tools = [wrap(fn, limiter, name="bench.hold") for limiter in self.limiters]
        turn = itertools.count()
        return lambda: tools[next(turn) % len(tools)]()

    @property
    def round_trips(self) -> int:
        return sum(limiter.round_trips for limiter in self.limiters)

    async def aclose(self) -> None:
        for limiter in self.limiters:
            await limiter.aclose()


async def noop() -> None:
    return None


async def server_counts(client: aioredis.Redis) -> tuple[int, int]:
    """(requests that ran a script, Redis commands executed) so far, from the server's INFO commandstats."""
    stats = await client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    scripts = sum(n for name, n in calls.items() if name in {"eval", "evalsha", "eval_ro", "evalsha_ro"})
    return scripts, sum(calls.values()) - calls.get("info", 0)


async def uncontended(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Seconds per call, calls one after another."""
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n


async def contended(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Makespan of n calls started at once."""
    start = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(n)))
    return time.perf_counter() - start


async def measure(url: str, calls: int, rounds: int, contended_calls: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url)
    redis_limit = RedisConcurrencyLimit(url, "bench-sem", 5, name="bench.redis_sem")
    redis_rate = RedisRateLimit(url, "bench-rate", 1e9, name="bench.redis_rate")
    uncontended_variants: dict[str, tuple[Callable[[], Awaitable[Any]], Any]] = {
        "no limiter (wrap only)": (wrap(noop, name="bench.noop"), None),
        "ConcurrencyLimit(5)": (
            wrap(noop, ConcurrencyLimit(5, name="bench.local_sem"), name="bench.noop"),
            None,
        ),
        "RedisConcurrencyLimit(5)": (wrap(noop, redis_limit, name="bench.noop"), redis_limit),
        "RateLimit(1e9/s)": (wrap(noop, RateLimit(1e9, name="bench.local_rate"), name="bench.noop"), None),
        "RedisRateLimit(1e9/s)": (wrap(noop, redis_rate, name="bench.noop"), redis_rate),
    }
    for call, _ in uncontended_variants.values():  # warm up: connections, script loading
        await uncontended(call, 20)
    samples: dict[str, list[float]] = {name: [] for name in uncontended_variants}
    trips: dict[str, list[float]] = {name: [] for name in uncontended_variants}
    server_trips: dict[str, list[float]] = {name: [] for name in uncontended_variants}
    server_commands: dict[str, list[float]] = {name: [] for name in uncontended_variants}
    for _ in range(rounds):
        for name, (call, limiter) in uncontended_variants.items():
            before_ours = limiter.round_trips if limiter is not None else 0
            scripts_before, commands_before = await server_counts(client)
            samples[name].append(await uncontended(call, calls))
            scripts_after, commands_after = await server_counts(client)
            trips[name].append(((limiter.round_trips if limiter is not None else 0) - before_ours) / calls)
            server_trips[name].append((scripts_after - scripts_before) / calls)
            server_commands[name].append(
                (commands_after - commands_before - scripts_after + scripts_before) / calls
            )

    async def hold() -> None:
        await asyncio.sleep(0.01)

    one_process = RedisConcurrencyLimit(url, "bench-sem-c", 5, name="bench.redis_sem_c")
    contended_variants: dict[str, tuple[Callable[[], Awaitable[Any]], Any]] = {
        "ConcurrencyLimit(5)": (
            wrap(hold, ConcurrencyLimit(5, name="bench.local_sem_c"), name="bench.hold"),
            None,
        ),
        "RedisConcurrencyLimit(5), 1 process": (wrap(hold, one_process, name="bench.hold"), one_process),
    }
    for poll_ms in (50, 5):
        # Two limiter instances on one key stand for two processes: a slot freed by one reaches the other's
        # waiters only through polling.
        pair = _Pair(
            [
                RedisConcurrencyLimit(
                    url, f"bench-sem-p{poll_ms}", 5, name=f"bench.redis_p{poll_ms}", poll_s=poll_ms / 1000
                )
                for _ in range(2)
            ]
        )
        contended_variants[f"RedisConcurrencyLimit(5), 2 processes, poll {poll_ms} ms"] = (
            pair.tool(hold),
            pair,
        )
    makespans: dict[str, list[float]] = {name: [] for name in contended_variants}
    contended_trips: dict[str, list[float]] = {name: [] for name in contended_variants}
    for _ in range(max(1, rounds // 2)):
        for name, (call, limiter) in contended_variants.items():
            before = limiter.round_trips if limiter is not None else 0
            makespans[name].append(await contended(call, contended_calls))
            contended_trips[name].append(
                ((limiter.round_trips if limiter is not None else 0) - before) / contended_calls
            )

    for _name, (_call, limiter) in list(uncontended_variants.items()) + list(contended_variants.items()):
        if limiter is not None:
            await limiter.aclose()
    await client.aclose()
    return {
        "uncontended": [
            {
                "variant": name,
                "us_per_call": _bench.median(samples[name]) * 1e6,
                "us_per_call_min_max": [v * 1e6 for v in _bench.spread(samples[name])],
                "round_trips_per_call": _bench.median(trips[name]),
                "server_script_requests_per_call": _bench.median(server_trips[name]),
                "redis_commands_in_scripts_per_call": _bench.median(server_commands[name]),
            }
            for name in uncontended_variants
        ],
        "contended": [
            {
                "variant": name,
                "calls": contended_calls,
                "makespan_s": _bench.median(makespans[name]),
                "ideal_s": contended_calls * 0.01 / 5,
                "round_trips_per_call": _bench.median(contended_trips[name]),
            }
            for name in contended_variants
        ],
    }


def main() -> int:
    args = _bench.parser(__doc__.splitlines()[0] if __doc__ else "").parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server not found: install Debian package redis-server: apt-get install redis-server")
        return 1
    from tests.support.redis_server import RedisServer

    calls, rounds, contended_calls = (200, 3, 50) if args.quick else (2000, 7, 200)
    with RedisServer() as server:
        result = asyncio.run(measure(server.url, calls, rounds, contended_calls))
    local = next(r for r in result["uncontended"] if r["variant"] == "ConcurrencyLimit(5)")["us_per_call"]
    print(
        _bench.table(
            f"Redis limiter, uncontended: {calls} sequential calls x {rounds} rounds (median), telemetry off",
            [
                "variant",
                "µs/call",
                "min",
                "max",
                "x local sem",
                "round trips/call",
                "seen by server",
                "cmds in scripts",
            ],
            [
                [
                    r["variant"],
                    r["us_per_call"],
                    r["us_per_call_min_max"][0],
                    r["us_per_call_min_max"][1],
                    r["us_per_call"] / local,
                    r["round_trips_per_call"],
                    r["server_script_requests_per_call"],
                    r["redis_commands_in_scripts_per_call"],
                ]
                for r in result["uncontended"]
            ],
        )
    )
    print()
    print(
        _bench.table(
            f"Redis limiter, contended: {contended_calls} calls at once, limit 5, 10 ms each",
            ["variant", "makespan s", "ideal s", "makespan/ideal", "round trips/call"],
            [
                [
                    r["variant"],
                    r["makespan_s"],
                    r["ideal_s"],
                    r["makespan_s"] / r["ideal_s"],
                    r["round_trips_per_call"],
                ]
                for r in result["contended"]
            ],
        )
    )
    _bench.write_json("redis_limiter", result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
