"""The Redis limits against a real redis-server (fixture) and real worker processes calling a real HTTP server."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support import otel

from penguiflow import wrap
from penguiflow.errors import ConfigurationError
from penguiflow.middleware import Call
from penguiflow_middleware import (
    LimiterUnavailableError,
    RateLimitExceededError,
    RedisConcurrencyLimit,
    RedisRateLimit,
)
from penguiflow_middleware import names as mw
from penguiflow_middleware.redis_limits import SLOT_KEY

WORKER = Path(__file__).with_name("redis_worker.py")
ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A worker process (redis_worker.py): READY once connected, GO on stdin, DONE {json} at the end."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def expect(self, word: str, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"worker exited: {self.process.wait()} {self.process.stderr.read()}")  # type: ignore[union-attr]
            if line.startswith(word):
                return line[len(word) :].strip()
        raise AssertionError(f"worker did not say {word}")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("GO\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def start_workers(count: int, *args: str) -> list[Worker]:
    workers = [Worker(*args) for _ in range(count)]
    for worker in workers:
        worker.expect("READY")
    for worker in workers:
        worker.go()
    return workers


# --- across processes ----------------------------------------------------------------------------------------
async def test_four_processes_never_run_more_than_the_shared_limit(
    redis_server: Any, counting_server: Any
) -> None:
    key = "mw-procs"
    workers = await in_thread(
        start_workers,
        4,
        "concurrency",
        redis_server.url,
        key,
        counting_server.url,
        "--calls",
        "25",
        "--limit",
        "5",
    )
    try:
        results = [json.loads(await in_thread(w.expect, "DONE")) for w in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [r["codes"] for r in results] == [[200] * 25] * 4
    assert len(counting_server.arrivals) == 100
    print(f"4 processes x 25 calls, shared limit 5: peak {counting_server.max_concurrent} at the HTTP server")
    assert counting_server.max_concurrent == 5  # never more, and the limit was actually used
    limiter = RedisConcurrencyLimit(redis_server.url, key, 5)
    assert await limiter.snapshot() == {"holders": 0, "waiting": 0}
    await limiter.aclose()


async def test_kill_9_of_a_worker_holding_slots_frees_them_within_the_lease(
    redis_server: Any, counting_server: Any
) -> None:
    key, lease = "mw-kill", 2.0
    worker = Worker("hold", redis_server.url, key, counting_server.url, "--limit", "2", "--lease", str(lease))
    limiter = RedisConcurrencyLimit(redis_server.url, key, 2, lease_s=lease, poll_s=0.02)
    try:
        await in_thread(worker.expect, "READY")
        worker.go()
        await in_thread(worker.expect, "HOLDING")
        await in_thread(worker.expect, "HOLDING")
        # The worker's leases are renewed while its calls run: still held after more than one lease.
        await asyncio.sleep(lease * 1.25)
        assert (await limiter.snapshot())["holders"] == 2
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.2)
        assert not waiter.done()
        os.kill(worker.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        permit = await asyncio.wait_for(waiter, timeout=lease + 2)
        freed_after = time.monotonic() - killed
    finally:
        worker.kill()
    print(f"kill -9 of a worker holding 2 slots: freed after {freed_after:.2f}s (lease_s={lease:g})")
    assert freed_after <= lease + 0.3, freed_after
    assert freed_after >= lease / 3  # it is the lease running out that freed it, not the kill itself
    await permit.release()
    assert await limiter.snapshot() == {"holders": 0, "waiting": 0}
    await limiter.aclose()


async def test_200_calls_at_50_per_second_across_two_processes_take_4_seconds(
    redis_server: Any, counting_server: Any
) -> None:
    """The schedule is asserted on the moments Redis gave the calls (``SLOT_KEY``): 200 moments never closer
    than 20 ms (burst 1), whichever worker asked — a gap is longer only when no reservation was pending (a
    worker still opening its connection). When each request then *arrives* at the
    HTTP server also depends on how soon a loaded machine wakes the worker after its sleep, which no limiter
    controls: the arrivals are only checked for what lateness cannot produce (every call arrived, and none
    before its moment: the k-th arrival comes no earlier than the k-th moment)."""
    workers = await in_thread(
        start_workers,
        2,
        "rate",
        redis_server.url,
        "mw-rate",
        counting_server.url,
        "--calls",
        "100",
        "--rate",
        "50",
    )
    try:
        done = [json.loads(await in_thread(worker.expect, "DONE")) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    slots = sorted(slot for report in done for slot in report["slots"])
    assert len(slots) == 200
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    # Redis formats the moments in whole µs: no gap is shorter than the 20 ms interval, beyond rounding.
    assert min(gaps) >= 0.020 - 2e-6, min(gaps)
    # Reserving is one round trip per call, all launched at once: idle gaps add up to little.
    assert 3.98 - 1e-5 <= slots[-1] - slots[0] <= 3.98 + 1.0, slots[-1] - slots[0]
    assert all(len(report["slots"]) == 100 for report in done)  # both workers got their turns
    arrivals = sorted(counting_server.arrivals)
    assert len(arrivals) == 200
    assert counting_server.by_worker == {"mw-rate": 200}
    elapsed = arrivals[-1] - arrivals[0]
    print(
        f"200 calls at 50/s over 2 processes on Redis: schedule {slots[-1] - slots[0]:.6f}s, "
        f"arrivals over {elapsed:.3f}s (expected 3.98s)"
    )
    # Redis and this process read the same system clock; 1 ms covers the two clocks' rounding.
    wall = sorted(counting_server.wall_arrivals)
    early = [(arrived, slot) for arrived, slot in zip(wall, slots, strict=True) if arrived < slot - 0.001]
    assert not early, early[:3]


# --- in one process: the semaphore ---------------------------------------------------------------------------
async def test_slots_go_in_arrival_order_across_limiter_instances(redis_server: Any) -> None:
    # Each instance stands for one process; a process queues its own calls locally first, then on Redis.
    # poll_s 0.1: a waiter's ticket lives 2 s between heartbeats, and 9 waiters cost 90 round trips a second,
    # not 900 (on a loaded machine a 10 ms poll could miss its 1 s heartbeat and lose its place).
    limiters = [RedisConcurrencyLimit(redis_server.url, "mw-fifo", 1, poll_s=0.1) for _ in range(10)]
    first = await limiters[0].acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        permit = await limiters[i].acquire()
        order.append(i)
        await asyncio.sleep(0.005)
        await permit.release()

    tasks = []
    for i in range(1, 10):
        tasks.append(asyncio.create_task(take(i)))
        # each has queued its ticket on Redis before the next arrives: arrival order is known, not assumed
        for _ in range(1000):
            if (await limiters[0].snapshot())["waiting"] == i:
                break
            await asyncio.sleep(0.005)
    assert (await limiters[0].snapshot())["waiting"] == 9
    await first.release()
    await asyncio.gather(*tasks)
    assert order == list(range(1, 10))
    for limiter in limiters:
        await limiter.aclose()


async def test_a_busy_process_queues_at_most_its_limit_on_redis(redis_server: Any) -> None:
    # A slot freed by another process reaches the quiet one's waiter at its next poll (up to poll_s later), one
    # freed in the busy process wakes the busy waiters at once: each call holds its slot for many polls, so the
    # order below is the queue's, not a race between a 20 ms call and a poll delayed by a loaded machine.
    busy = RedisConcurrencyLimit(redis_server.url, "mw-busy", 2, poll_s=0.05)
    quiet = RedisConcurrencyLimit(redis_server.url, "mw-busy", 2, poll_s=0.05)
    holder = RedisConcurrencyLimit(redis_server.url, "mw-busy", 2, poll_s=0.05)
    held = [await holder.acquire(), await holder.acquire()]
    order: list[str] = []

    async def take(limiter: RedisConcurrencyLimit, label: str) -> None:
        permit = await limiter.acquire()
        order.append(label)
        await asyncio.sleep(0.3)
        await permit.release()

    async def until_waiting(count: int) -> None:
        # Wait for the tickets on Redis themselves, not for a wall-clock guess of how long queuing takes.
        for _ in range(6000):
            if (await holder.snapshot())["waiting"] >= count:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"fewer than {count} tickets queued on Redis")

    busy_calls = [asyncio.create_task(take(busy, "busy")) for _ in range(10)]
    await until_waiting(2)
    quiet_call = asyncio.create_task(take(quiet, "quiet"))
    await until_waiting(3)
    # Two tickets of the busy process (its limit), then the quiet one's: no more, however long we look.
    await asyncio.sleep(0.2)
    assert (await holder.snapshot())["waiting"] == 3
    assert busy.queued == 10
    for permit in held:
        await permit.release()
    await asyncio.gather(quiet_call, *busy_calls)
    # Served with the first slots freed after the two busy tickets ahead of it, not after all ten busy calls.
    assert order.index("quiet") in (2, 3), order
    for limiter in (busy, quiet, holder):
        await limiter.aclose()


async def test_a_long_call_keeps_its_slot_by_renewing_its_lease(redis_server: Any) -> None:
    long = RedisConcurrencyLimit(redis_server.url, "mw-renew", 1, lease_s=0.6, poll_s=0.02)
    other = RedisConcurrencyLimit(redis_server.url, "mw-renew", 1, lease_s=0.6, poll_s=0.02)
    permit = await long.acquire()
    contender = asyncio.create_task(other.acquire())
    await asyncio.sleep(1.5)  # 2.5 leases
    assert not contender.done()
    await permit.release()
    await (await asyncio.wait_for(contender, 1)).release()
    await long.aclose()
    await other.aclose()


async def test_cancelled_waiters_and_calls_leave_nothing_behind(redis_server: Any) -> None:
    limiter = RedisConcurrencyLimit(redis_server.url, "mw-cancel", 2, poll_s=0.01)
    gate = asyncio.Event()

    async def work() -> None:
        await gate.wait()

    tool = wrap(work, limiter, name="mw-cancel.tool")
    tasks = [asyncio.create_task(tool()) for _ in range(6)]
    await asyncio.sleep(0.2)
    assert await limiter.snapshot() == {"holders": 2, "waiting": 0}  # the others queue in this process
    assert (limiter.in_flight, limiter.queued) == (2, 4)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)  # the shielded releases run in the background
    assert await limiter.snapshot() == {"holders": 0, "waiting": 0}
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    await limiter.aclose()


async def test_core_limiter_gauges_and_round_trips(redis_server: Any) -> None:
    name = "mw-gauges"
    limiter = RedisConcurrencyLimit(redis_server.url, "mw-gauges", 3, name=name)
    gate = asyncio.Event()
    seen: list[float] = []

    async def work() -> None:
        seen.append(otel.value("penguiflow.limiter.in_flight", **{mw.LIMITER_NAME: name}))
        await gate.wait()

    tool = wrap(work, limiter, name="mw-gauges.tool")
    before = limiter.round_trips
    task = asyncio.create_task(tool())
    await asyncio.sleep(0.1)
    assert otel.value("penguiflow.limiter.limit", **{mw.LIMITER_NAME: name}) == 3
    gate.set()
    await task
    await asyncio.sleep(0.05)
    assert seen == [1]
    assert limiter.round_trips - before == 2  # uncontended: acquire + release
    assert otel.value(mw.REDIS_ROUND_TRIPS, **{mw.LIMITER_NAME: name, mw.REDIS_OPERATION: "acquire"}) == 1
    assert otel.histogram_count(mw.REDIS_WAIT, **{mw.LIMITER_NAME: name}) == 1
    await limiter.aclose()


# --- Redis going away ------------------------------------------------------------------------------------------
async def test_redis_stopped_mid_run_fails_closed_without_hanging(
    fresh_redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="penguiflow_middleware.redis")
    name = "mw-down-fail"
    other = RedisConcurrencyLimit(fresh_redis_server.url, "mw-down", 2, name="mw-down-other")
    # A cool-down longer than the test: the degraded gauge read at the end must not depend on how long a loaded
    # machine took to get there (with the default 1 s it had expired and read 0).
    limiter = RedisConcurrencyLimit(
        fresh_redis_server.url, "mw-down", 2, name=name, poll_s=0.02, retry_redis_s=60.0
    )
    started, stopped = asyncio.Event(), asyncio.Event()

    async def work() -> str:
        started.set()
        await stopped.wait()  # still running when Redis goes away, however slow the machine
        return "ok"

    tool = wrap(work, limiter, name="mw-down-fail.tool")
    held = await other.acquire()  # another process holds one of the two slots
    t0 = time.monotonic()
    tasks = [asyncio.create_task(tool()) for _ in range(3)]
    await started.wait()
    # this process: 1 running, 1 polling Redis, 1 in its local queue
    for _ in range(500):
        if (await limiter.snapshot()) == {"holders": 2, "waiting": 1}:
            break
        await asyncio.sleep(0.01)
    assert (await limiter.snapshot()) == {"holders": 2, "waiting": 1}
    await in_thread(fresh_redis_server.stop)
    stopped.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("ok") == 1  # the running call finishes; its release fails quietly (lease expiry)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 2 and all(isinstance(e, LimiterUnavailableError) for e in errors)
    with pytest.raises(LimiterUnavailableError):  # later calls too, at once (cool-down: Redis not retried)
        await tool()
    print(f"Redis stopped mid-run (fail closed): all calls settled in {time.monotonic() - t0:.2f}s")
    assert time.monotonic() - t0 < 2.0
    await held.release()  # fails quietly too
    assert otel.value(mw.REDIS_UNAVAILABLE, **{mw.LIMITER_NAME: name, mw.REDIS_ACTION: "fail"}) == 3
    assert otel.value(mw.REDIS_UNAVAILABLE, **{mw.LIMITER_NAME: name, mw.REDIS_OPERATION: "poll"}) == 1
    assert otel.value(mw.REDIS_DEGRADED, **{mw.LIMITER_NAME: name}) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert any(name in message and "Redis failed" in message for message in warnings)
    assert not any(str(fresh_redis_server.port) in m for m in warnings + [str(e) for e in errors])
    await limiter.aclose()
    await other.aclose()


async def test_redis_stopped_mid_run_falls_back_to_a_local_limit(fresh_redis_server: Any) -> None:
    name = "mw-down-local"
    # A cool-down longer than the test, as above: the degraded gauge is read at the end.
    limiter = RedisConcurrencyLimit(
        fresh_redis_server.url,
        "mw-down",
        2,
        name=name,
        poll_s=0.02,
        on_redis_error="local",
        retry_redis_s=60.0,
    )
    running = peak = 0

    async def work() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1
        return "ok"

    tool = wrap(work, limiter, name="mw-down-local.tool")
    first = [asyncio.create_task(tool()) for _ in range(4)]
    await asyncio.sleep(0.05)
    await in_thread(fresh_redis_server.stop)
    later = [asyncio.create_task(tool()) for _ in range(4)]
    assert await asyncio.gather(*first, *later) == ["ok"] * 8
    assert peak <= 2  # the local fallback keeps this process to the limit
    assert otel.value(mw.REDIS_UNAVAILABLE, **{mw.LIMITER_NAME: name, mw.REDIS_ACTION: "local"}) >= 4
    assert otel.value(mw.REDIS_DEGRADED, **{mw.LIMITER_NAME: name}) == 1
    await limiter.aclose()


async def test_a_hung_redis_is_bounded_by_the_socket_timeout(fresh_redis_server: Any) -> None:
    limiter = RedisConcurrencyLimit(fresh_redis_server.url, "mw-hung", 2, socket_timeout_s=0.3)
    await limiter.ping()
    fresh_redis_server.pause()  # SIGSTOP: the connection stays open, nothing answers
    try:
        t0 = time.monotonic()
        with pytest.raises(LimiterUnavailableError) as caught:
            await limiter.acquire()
        elapsed = time.monotonic() - t0
    finally:
        fresh_redis_server.resume()
    print(f"frozen Redis (SIGSTOP), socket_timeout_s=0.3: acquire failed after {elapsed:.2f}s")
    assert elapsed < 1.5, elapsed
    assert caught.value.reason == "TimeoutError"
    await limiter.aclose()


async def test_redis_rate_limit_down_fails_closed_or_falls_back(fresh_redis_server: Any) -> None:
    closed = RedisRateLimit(fresh_redis_server.url, "mw-rate-down", 100, name="mw-rate-down-fail")
    local = RedisRateLimit(
        fresh_redis_server.url, "mw-rate-down", 100, name="mw-rate-down-local", on_redis_error="local"
    )
    call = Call("t", {})
    assert await closed.acquire(call) == 0.0
    await in_thread(fresh_redis_server.stop)
    with pytest.raises(LimiterUnavailableError):
        await closed.acquire(call)
    await local.acquire(call)
    labels = {mw.REDIS_ACTION: "local"}
    assert otel.value(mw.REDIS_UNAVAILABLE, **{mw.LIMITER_NAME: "mw-rate-down-local"}, **labels) == 1
    await closed.aclose()
    await local.aclose()


# --- in one process: the rate limit ------------------------------------------------------------------------
async def test_redis_rate_limit_paces_and_rejects_beyond_max_wait(redis_server: Any) -> None:
    """50 calls at once at 10/s with ``max_wait_s=0.25``. Which calls are admitted depends on how fast this
    process gets its reservations in (a loaded machine is slower), so the test asserts what holds whatever the
    timing: Redis's slots for the admitted calls are 100 ms apart, no admitted call waits beyond max_wait_s,
    every refused one would have, and the first three (0, 100 and 200 ms away) are always admitted."""
    name = "mw-rate-wait"
    limiter = RedisRateLimit(redis_server.url, "mw-rate-wait", 10, name=name, max_wait_s=0.25)
    calls = [Call("t", {}) for _ in range(50)]
    outcomes = await asyncio.gather(*(limiter.acquire(call) for call in calls), return_exceptions=True)
    admitted = [(call, wait) for call, wait in zip(calls, outcomes, strict=True) if isinstance(wait, float)]
    refused = [error for error in outcomes if isinstance(error, RateLimitExceededError)]
    assert len(admitted) + len(refused) == 50, outcomes
    assert len(admitted) >= 3 and refused
    assert all(wait <= 0.25 for _call, wait in admitted)
    assert all(error.retry_after > 0.25 for error in refused)
    slots = sorted(call.context[SLOT_KEY] for call, _wait in admitted)
    assert all(b - a == pytest.approx(0.1, abs=0.002) for a, b in itertools.pairwise(slots)), slots
    assert otel.value(mw.RATE_LIMIT_REJECTED, **{mw.LIMITER_NAME: name}) == len(refused)
    assert limiter.round_trips == 50  # one per call, refused or not
    await limiter.aclose()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"redis_url": "localhost:6379"}, "redis_url"),
        ({"key": ""}, "key"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"lease_s": 0}, "lease_s"),
        ({"on_redis_error": "open"}, "on_redis_error"),
        ({"poll_s": -1}, "poll_s"),
        ({"socket_timeout_s": 0}, "socket_timeout_s"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "redis_url": "redis://:secret@127.0.0.1:1/0",
        "key": "k",
        "max_concurrency": 1,
    }
    with pytest.raises(ConfigurationError) as caught:
        RedisConcurrencyLimit(**{**arguments, **kwargs})
    assert caught.value.field == field
    assert "secret" not in str(caught.value)
