from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support import otel, virtual_time

from penguiflow import wrap
from penguiflow.errors import ConfigurationError
from penguiflow.middleware import Call
from penguiflow_middleware import RateLimit, RateLimitExceededError
from penguiflow_middleware import names as mw


# The timing tests run on a virtual clock (tests/support/virtual_time.py): the limiter's schedule is exact there,
# whatever the machine's load, and each RateLimit reads that clock (``clock=loop.time``).
def clock() -> Any:
    return asyncio.get_running_loop().time


def paced(limiter: RateLimit, tool: str, starts: list[float] | None = None) -> Any:
    async def work(i: int) -> int:
        if starts is not None:
            starts.append(asyncio.get_running_loop().time())
        return i

    return wrap(work, limiter, name=tool)


def test_200_calls_at_50_per_second_take_4_seconds() -> None:
    """From launching all 200 calls at once to the last one finishing. With ``burst=1`` the first call runs at
    once and each next one 20 ms later, so the last starts at 199/50 = 3.98 s."""

    async def scenario() -> None:
        limiter = RateLimit(50, burst=1, name="rl-200", clock=clock())
        starts: list[float] = []
        tool = paced(limiter, "rl-200.tool", starts)
        t0 = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(tool(i) for i in range(200)))
        elapsed = asyncio.get_running_loop().time() - t0
        assert results == list(range(200))
        assert elapsed == pytest.approx(3.98, abs=0.005), elapsed
        # Evenly paced: no second-long window holds more than 50 + 1 calls.
        for i in range(len(starts) - 51):
            assert starts[i + 51] - starts[i] >= 1.0 - 1e-6
        assert all(b - a == pytest.approx(0.02, abs=1e-6) for a, b in itertools.pairwise(starts))

    virtual_time.run(scenario())


def test_a_burst_runs_at_once_and_the_rest_is_paced() -> None:
    async def scenario() -> None:
        limiter = RateLimit(50, burst=10, name="rl-burst", clock=clock())
        starts: list[float] = []
        tool = paced(limiter, "rl-burst.tool", starts)
        t0 = asyncio.get_running_loop().time()
        await asyncio.gather(*(tool(i) for i in range(60)))
        elapsed = asyncio.get_running_loop().time() - t0
        assert starts[9] == t0  # the burst
        assert starts[10] - t0 == pytest.approx(0.02, abs=1e-6)  # then one per 20 ms
        assert elapsed == pytest.approx((60 - 10) / 50, abs=0.005), elapsed

    virtual_time.run(scenario())


async def test_waiters_are_served_in_arrival_order() -> None:
    limiter = RateLimit(200, name="rl-fifo")
    order: list[int] = []

    async def work(i: int) -> None:
        order.append(i)

    tool = wrap(work, limiter, name="rl-fifo.tool")
    tasks = []
    for i in range(30):
        tasks.append(asyncio.create_task(tool(i)))
        await asyncio.sleep(0)  # arrive in this order
    await asyncio.gather(*tasks)
    assert order == list(range(30))


def test_a_waiter_cancelled_in_the_queue_takes_no_token() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimit(10, name="rl-cancel-queued", clock=clock())  # a token every 100 ms
        call = Call("rl-cancel-queued.tool", {})
        await limiter.acquire(call)  # takes the only token
        t0 = loop.time()
        b = asyncio.create_task(limiter.acquire(call))
        c = asyncio.create_task(limiter.acquire(call))
        d = asyncio.create_task(limiter.acquire(call))
        await asyncio.sleep(0.02)
        c.cancel()
        await b
        assert loop.time() - t0 == pytest.approx(0.1, abs=1e-6)
        await d
        # d is second in line after c left: it gets the second token (200 ms), not a third (300 ms).
        assert loop.time() - t0 == pytest.approx(0.2, abs=1e-6)
        assert c.cancelled()
        assert limiter.queued("rl-cancel-queued.tool") == 0

    virtual_time.run(scenario())


def test_a_waiter_cancelled_after_being_handed_a_token_gives_it_to_the_next() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimit(10, name="rl-cancel-granted", clock=clock())
        key = "rl-cancel-granted.tool"
        call = Call(key, {})
        await limiter.acquire(call)
        t0 = loop.time()
        b = asyncio.create_task(limiter.acquire(call))
        c = asyncio.create_task(limiter.acquire(call))
        await asyncio.sleep(0)
        assert limiter.queued(key) == 2
        handed: list[bool] = []

        def cancel_b() -> None:
            # Runs in the same loop turn as the timer that hands b its token (scheduled a hair after it), so
            # b has been handed the token but not resumed to use it yet.
            handed.append(limiter.queued(key) == 1 and not b.done())
            b.cancel()

        loop.call_at(t0 + 0.1 + 1e-12, cancel_b)
        await c
        assert handed == [True]
        assert loop.time() - t0 == pytest.approx(0.1, abs=1e-6)  # c got b's token, not its own at 200 ms
        assert b.cancelled()
        await asyncio.sleep(0.1)
        assert limiter.tokens(key) == pytest.approx(1.0)  # and the bucket is whole again: nothing leaked

    virtual_time.run(scenario())


def test_max_wait_rejects_at_once_when_the_turn_is_too_far(spans: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        name = "rl-maxwait"
        limiter = RateLimit(10, name=name, max_wait_s=0.25, clock=clock())
        tool = paced(limiter, f"{name}.tool")
        first = [asyncio.create_task(tool(i)) for i in range(3)]  # now, +100 ms, +200 ms
        await asyncio.sleep(0)
        t0 = loop.time()
        with pytest.raises(RateLimitExceededError) as caught:
            await tool(3)  # would wait 300 ms
        assert loop.time() == t0  # refused without waiting
        assert caught.value.retryable is False
        assert caught.value.retry_after == pytest.approx(0.3, abs=1e-6)
        assert await asyncio.gather(*first) == [0, 1, 2]
        assert (
            otel.value(mw.RATE_LIMIT_REJECTED, **{mw.LIMITER_NAME: name, mw.REJECT_REASON: "max_wait"}) == 1
        )
        assert (
            otel.histogram_count(
                "gen_ai.execute_tool.duration",
                **{"gen_ai.tool.name": f"{name}.tool", "penguiflow.outcome": "rejected"},
            )
            == 1
        )

    virtual_time.run(scenario())


def test_one_bucket_per_key_by_default_source_then_tool() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimit(2, name="rl-keys", clock=clock())  # 500 ms per token
        a = wrap(paced(limiter, "x").__wrapped__, limiter, name="rl-keys.a", source="src-a")
        b = wrap(paced(limiter, "x").__wrapped__, limiter, name="rl-keys.b", source="src-b")
        t0 = loop.time()
        await asyncio.gather(a(1), b(2))
        assert loop.time() == t0  # separate buckets: both ran at once
        assert limiter.tokens("src-a") < 0.5 and limiter.tokens("src-b") < 0.5
        custom = RateLimit(2, name="rl-keys-custom", key=lambda call: call.arguments["user"], clock=clock())
        assert await custom.acquire(Call("t", {"user": "u1"})) == 0.0
        assert await custom.acquire(Call("t", {"user": "u2"})) == 0.0

    virtual_time.run(scenario())


def test_telemetry_tokens_queue_depth_and_wait_time(spans: Any) -> None:
    async def scenario() -> None:
        name = "rl-telemetry"
        limiter = RateLimit(20, burst=5, name=name, clock=clock())
        tool = paced(limiter, f"{name}.tool")
        labels = {mw.LIMITER_NAME: name, mw.RATE_LIMIT_KEY: f"{name}.tool"}
        tasks = [asyncio.create_task(tool(i)) for i in range(12)]
        await asyncio.sleep(0.01)  # before the first refill (50 ms)
        assert otel.value(mw.RATE_LIMIT_QUEUED, **labels) == 7  # 5 ran on the burst
        assert otel.value(mw.RATE_LIMIT_TOKENS, **labels) < 1
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.3)
        assert otel.value(mw.RATE_LIMIT_QUEUED, **labels) == 0
        assert otel.value(mw.RATE_LIMIT_TOKENS, **labels) == pytest.approx(5, abs=1e-6)
        waits = {mw.LIMITER_NAME: name}
        assert otel.histogram_count(mw.RATE_LIMIT_WAIT, **waits, **{mw.LIMITER_WAITED: False}) == 5
        assert otel.histogram_count(mw.RATE_LIMIT_WAIT, **waits, **{mw.LIMITER_WAITED: True}) == 7
        assert len(otel.spans(f"rate_limit_wait {name}")) == 7

    virtual_time.run(scenario())


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0,), {}, "rate"),
        ((10, -1), {}, "per"),
        ((10,), {"burst": 0}, "burst"),
        ((10,), {"burst": 1.5}, "burst"),
        ((10,), {"max_wait_s": 0}, "max_wait_s"),
        ((10,), {"name": ""}, "name"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_the_field(
    args: tuple[Any, ...], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RateLimit(*args, **kwargs)
    assert caught.value.field == field


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cancels=st.lists(st.tuples(st.integers(0, 39), st.floats(0, 0.03)), max_size=15),
    burst=st.integers(1, 4),
)
def test_random_cancellations_keep_order_rate_and_tokens(
    cancels: list[tuple[int, float]], burst: int
) -> None:
    """40 calls at 500/s (on the virtual clock), some cancelled at random moments: the survivors run in arrival order, never faster
    than the rate allows, and afterwards nobody waits and the bucket refills to ``burst``."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimit(500, burst=burst, name="rl-property", clock=loop.time)
        call = Call("rl-property.tool", {})
        granted: list[tuple[int, float]] = []

        async def one(i: int) -> None:
            await limiter.acquire(call)
            granted.append((i, loop.time()))

        t0 = loop.time()
        tasks = [asyncio.create_task(one(i)) for i in range(40)]
        for index, at in sorted(cancels, key=lambda c: c[1]):
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            tasks[index].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        survivors = [i for i, task in enumerate(tasks) if not task.cancelled()]
        assert [i for i, _ in granted] == survivors  # FIFO among those who stayed
        times = [t for _, t in granted]
        for k in range(burst, len(times)):  # the k-th grant needs k - burst + 1 refills of 2 ms
            assert times[k] - t0 >= (k - burst + 1) * 0.002 - 1e-9
        assert limiter.queued("rl-property.tool") == 0
        await asyncio.sleep(burst * 0.002 + 0.01)
        assert limiter.tokens("rl-property.tool") == pytest.approx(burst)

    virtual_time.run(scenario())
