"""The limiter's admitted counter (read on collection) and its wait histogram (calls that waited only), through a
real OpenTelemetry SDK reader: exact counts, one wait sample per limiter that held a call up, and a counter that
never goes down when limiters stop reporting (a finished run's Level 2 limiter, a collected limiter)."""

from __future__ import annotations

import asyncio
import gc

from penguiflow.middleware import Call, ConcurrencyLimit
from penguiflow.middleware.concurrency import acquire_path
from penguiflow.telemetry import names, register_limiter, unregister_limiter
from tests.support import otel


def admitted(name: str) -> float:
    return otel.value(names.LIMITER_ADMITTED, **{names.LIMITER_NAME: name})


def waits(name: str) -> int:
    return otel.histogram_count(names.LIMITER_WAIT, **{names.LIMITER_NAME: name})


async def until(condition: object) -> None:
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def test_a_joint_admission_counts_at_every_limiter_and_waits_only_where_held_up() -> None:
    """A call whose path is (source, shared) waits for ``source`` only: it is admitted at both, and records one
    wait sample, at ``source``; a call admitted at once records no wait at all."""
    source, shared = otel.unique("src"), otel.unique("shared")

    async def main() -> None:
        a = ConcurrencyLimit(1, name=source)
        b = ConcurrencyLimit(5, name=shared)
        await a.acquire(Call("hold", {}))
        waiter = asyncio.create_task(acquire_path((a, b), Call("w", {})))
        await until(lambda: a.queued == 1)
        assert (admitted(source), admitted(shared), waits(source), waits(shared)) == (1, 0, 0, 0)
        a.release()
        assert await waiter > 0.0
        a.release()
        b.release()

    asyncio.run(main())
    assert (admitted(source), admitted(shared)) == (2, 1)
    assert (waits(source), waits(shared)) == (1, 0)


def test_admissions_stay_counted_after_a_limiter_stops_reporting() -> None:
    """Same-named limiters add up; one unregistered (as a planner does with a finished run's Level 2 limiter) or
    garbage-collected keeps its admissions in the total, and one registered again does not count them twice."""
    name = otel.unique("run")

    async def admit(limiter: ConcurrencyLimit, times: int) -> None:
        for _ in range(times):
            await limiter.acquire()
            limiter.release()

    async def main() -> None:
        first = ConcurrencyLimit(2, name=name)
        await admit(first, 3)
        assert admitted(name) == 3
        unregister_limiter(first)
        assert admitted(name) == 3
        second = ConcurrencyLimit(2, name=name)
        await admit(second, 2)
        assert admitted(name) == 5
        del second
        gc.collect()
        assert admitted(name) == 5
        register_limiter(first)
        await admit(first, 1)
        assert admitted(name) == 6
        unregister_limiter(first)
        unregister_limiter(first)  # twice: nothing retired twice
        assert admitted(name) == 6

    asyncio.run(main())


def test_the_demo_summary_keeps_a_finished_limiter_none_of_whose_calls_waited() -> None:
    """A finished run's Level 2 limiter reports no gauges and, if none of its calls waited, no wait sample: its
    admissions keep its row in the demo's summary (its peak was sampled while it ran)."""
    from penguiflow.demo.stats import Collector

    name = otel.unique("run")

    async def main() -> None:
        limiter = ConcurrencyLimit(5, name=name)
        await limiter.acquire()
        limiter.release()
        unregister_limiter(limiter)

    asyncio.run(main())
    rows = Collector(otel.READER).collect().limiters
    assert rows[name].admitted == 1 and not rows[name].wait.counts
