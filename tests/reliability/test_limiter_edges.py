"""The limiter at its edges: dead waiters leave nothing behind, and a wrong event loop is an error, not a hang.

Before: 100,000 waiters that timed out behind a stuck holder left 100,000 dead futures (15 MB) in the limiter's
deque, unbounded by ``max_queue``, and the next ``release()`` blocked the loop 23 ms skipping them; a limiter used
from a closed event loop kept its slots and the next loop's calls queued forever.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import types

import pytest

from penguiflow.errors import LimiterLoopError
from penguiflow.middleware import ConcurrencyLimit
from tests.support.virtual_time import run as run_virtual

WAITERS = 100_000


def retained_bytes(limiter: ConcurrencyLimit) -> int:
    """Bytes of every object the limiter keeps reachable, its event loop and shared objects (modules, classes,
    functions) excepted: what the limiter itself holds on to."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [limiter]
    skip = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, asyncio.AbstractEventLoop)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def test_waiters_that_time_out_behind_a_stuck_holder_leave_nothing_behind() -> None:
    """What the limiter holds after 100k dead waiters < 1 MB, and one release() then costs microseconds of CPU."""

    async def main() -> tuple[int, int, float]:
        limiter = ConcurrencyLimit(1, name="edges.dead")
        await limiter.acquire()  # the stuck holder
        idle = retained_bytes(limiter)

        async def waits() -> None:
            async with asyncio.timeout(0.01):
                await limiter.acquire()

        async def flood() -> None:
            tasks = [asyncio.create_task(waits()) for _ in range(WAITERS)]
            await asyncio.sleep(0)
            assert (limiter.queued, limiter.waiting) == (WAITERS, WAITERS)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(result, TimeoutError) for result in results)

        gc.disable()  # 100k live tasks make every automatic collection a full scan; nothing here needs one
        try:
            await flood()
        finally:
            gc.enable()
        after = retained_bytes(limiter)
        # CPU time of this thread, not wall time: what the release itself costs, whatever else runs.
        cpu = time.thread_time()
        limiter.release()
        cost = time.thread_time() - cpu
        assert (limiter.in_flight, limiter.queued, limiter.waiting) == (0, 0, 0)
        assert not limiter._groups and not limiter._parking
        return idle, after, cost

    idle, after, cost = run_virtual(main())
    assert after - idle < 1_000_000, f"{after - idle} bytes kept by the limiter after {WAITERS} dead waiters"
    assert cost < 0.001, f"release() took {cost * 1000:.2f} ms of CPU"


def test_cancelled_waiters_in_random_order_leave_only_the_live_ones() -> None:
    """Waiters leave in any order in O(1): the queue keeps exactly the live ones, in their order."""

    async def main() -> None:
        limiter = ConcurrencyLimit(1, name="edges.random")
        await limiter.acquire()
        order: list[int] = []

        async def waits(i: int) -> None:
            await limiter.acquire()
            order.append(i)
            limiter.release()

        tasks = [asyncio.create_task(waits(i)) for i in range(2000)]
        await asyncio.sleep(0)
        keep = set(range(0, 2000, 7))
        for i, task in enumerate(tasks):
            if i not in keep:
                task.cancel()
        await asyncio.sleep(0)
        assert (limiter.queued, limiter.waiting) == (len(keep), len(keep))
        limiter.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert order == sorted(keep)
        assert (limiter.in_flight, limiter.queued) == (0, 0)

    run_virtual(main())


def test_a_limiter_whose_loop_closed_with_slots_held_is_a_clear_error_not_a_hang() -> None:
    limiter = ConcurrencyLimit(1, name="edges.closed")
    old = asyncio.new_event_loop()

    async def hold() -> None:
        await limiter.acquire()
        await asyncio.sleep(3600)

    held = [old.create_task(hold()) for _ in range(3)]  # one holds the slot, two wait
    old.run_until_complete(asyncio.sleep(0.01))
    assert (limiter.in_flight, limiter.queued) == (1, 2)
    old.close()  # without cancelling them: their slots can never be given back
    del held

    async def next_loop() -> None:
        async with asyncio.timeout(2):  # before: queued forever
            await limiter.acquire()

    with pytest.raises(LimiterLoopError) as info:
        asyncio.run(next_loop())
    assert info.value.closed and (info.value.held, info.value.waiting) == (1, 2)
    assert "edges.closed" in str(info.value) and "closed event loop" in str(info.value)
    with pytest.raises(LimiterLoopError):
        limiter.release()  # waking its waiters would need the closed loop


def test_a_limiter_in_use_by_another_running_loop_is_a_clear_error() -> None:
    limiter = ConcurrencyLimit(1, name="edges.other")
    holding = threading.Event()
    done = threading.Event()

    async def other_thread() -> None:
        await limiter.acquire()
        holding.set()
        while not done.is_set():  # noqa: ASYNC110 - a threading.Event set by the other thread
            await asyncio.sleep(0.01)
        limiter.release()

    thread = threading.Thread(target=asyncio.run, args=(other_thread(),))
    thread.start()
    try:
        assert holding.wait(10)

        async def here() -> None:
            async with asyncio.timeout(2):
                await limiter.acquire()

        with pytest.raises(LimiterLoopError) as info:
            asyncio.run(here())
        assert not info.value.closed and info.value.held == 1
        assert "another event loop" in str(info.value)
    finally:
        done.set()
        thread.join(10)
    assert (limiter.in_flight, limiter.queued) == (0, 0)


def test_an_idle_limiter_serves_successive_event_loops() -> None:
    """A planner or node built at import time keeps working across ``asyncio.run()`` calls."""
    limiter = ConcurrencyLimit(2, name="edges.idle")

    async def use() -> int:
        async def one() -> None:
            await limiter.acquire()
            await asyncio.sleep(0.001)
            limiter.release()

        await asyncio.gather(*(one() for _ in range(6)))
        return limiter.in_flight

    assert [asyncio.run(use()) for _ in range(3)] == [0, 0, 0]
