from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support import otel

from penguiflow import wrap
from penguiflow.errors import ConfigurationError
from penguiflow.middleware import Call
from penguiflow_middleware import RateLimit, RateLimitExceededError
from penguiflow_middleware import names as mw


def paced(limiter: RateLimit, tool: str, starts: list[float] | None = None) -> Any:
    async def work(i: int) -> int:
        if starts is not None:
            starts.append(time.monotonic())
        return i

    return wrap(work, limiter, name=tool)


async def test_200_calls_at_50_per_second_take_4_seconds() -> None:
    """Measured: wall time from launching all 200 calls at once to the last one finishing. With ``burst=1`` the
    first call runs at once and each next one 20 ms later, so the last starts at 199/50 = 3.98 s."""
    limiter = RateLimit(50, burst=1, name="rl-200")
    starts: list[float] = []
    tool = paced(limiter, "rl-200.tool", starts)
    t0 = time.monotonic()
    results = await asyncio.gather(*(tool(i) for i in range(200)))
    elapsed = time.monotonic() - t0
    assert results == list(range(200))
    assert 4.0 * 0.95 <= elapsed <= 4.0 * 1.05, elapsed
    # Evenly paced: no second-long window holds more than 50 + 1 calls.
    for i in range(len(starts) - 51):
        assert starts[i + 51] - starts[i] >= 1.0 - 0.02
    print(f"200 calls at 50/s, burst 1: {elapsed:.3f}s (expected 3.98s)")


async def test_a_burst_runs_at_once_and_the_rest_is_paced() -> None:
    limiter = RateLimit(50, burst=10, name="rl-burst")
    starts: list[float] = []
    tool = paced(limiter, "rl-burst.tool", starts)
    t0 = time.monotonic()
    await asyncio.gather(*(tool(i) for i in range(60)))
    elapsed = time.monotonic() - t0
    assert starts[9] - t0 < 0.05  # the burst
    assert (60 - 10) / 50 * 0.93 <= elapsed <= (60 - 10) / 50 * 1.1, elapsed


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


async def test_a_waiter_cancelled_in_the_queue_takes_no_token() -> None:
    limiter = RateLimit(10, name="rl-cancel-queued")  # a token every 100 ms
    call = Call("rl-cancel-queued.tool", {})
    await limiter.acquire(call)  # takes the only token
    t0 = time.monotonic()
    b = asyncio.create_task(limiter.acquire(call))
    c = asyncio.create_task(limiter.acquire(call))
    d = asyncio.create_task(limiter.acquire(call))
    await asyncio.sleep(0.02)
    c.cancel()
    await b
    await d
    # d is second in line after c left: it gets the second token (200 ms), not a third (300 ms).
    assert 0.17 <= time.monotonic() - t0 <= 0.27
    assert c.cancelled()
    assert limiter.queued("rl-cancel-queued.tool") == 0


async def test_a_waiter_cancelled_after_being_handed_a_token_gives_it_to_the_next() -> None:
    limiter = RateLimit(10, name="rl-cancel-granted")
    key = "rl-cancel-granted.tool"
    call = Call(key, {})
    await limiter.acquire(call)
    t0 = time.monotonic()
    b = asyncio.create_task(limiter.acquire(call))
    c = asyncio.create_task(limiter.acquire(call))
    await asyncio.sleep(0)
    assert limiter.queued(key) == 2
    while limiter.queued(key) == 2:  # noqa: ASYNC110 -- wait for the timer to hand b its token...
        await asyncio.sleep(0)  # (one loop turn at a time: b must not have resumed yet)
    assert not b.done()  # ...and cancel b before it resumed to use it
    b.cancel()
    await c
    assert time.monotonic() - t0 < 0.15  # c got b's token at ~100 ms instead of waiting for its own at 200 ms
    assert b.cancelled()
    await asyncio.sleep(0.1)
    assert limiter.tokens(key) == pytest.approx(1.0)  # and the bucket is whole again: nothing leaked


async def test_max_wait_rejects_at_once_when_the_turn_is_too_far(spans: Any) -> None:
    name = "rl-maxwait"
    limiter = RateLimit(10, name=name, max_wait_s=0.25)
    tool = paced(limiter, f"{name}.tool")
    first = [asyncio.create_task(tool(i)) for i in range(3)]  # now, +100 ms, +200 ms
    await asyncio.sleep(0)
    t0 = time.monotonic()
    with pytest.raises(RateLimitExceededError) as caught:
        await tool(3)  # would wait 300 ms
    assert time.monotonic() - t0 < 0.05
    assert caught.value.retryable is False
    assert caught.value.retry_after == pytest.approx(0.3, abs=0.02)
    assert await asyncio.gather(*first) == [0, 1, 2]
    assert otel.value(mw.RATE_LIMIT_REJECTED, **{mw.LIMITER_NAME: name, mw.REJECT_REASON: "max_wait"}) == 1
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration",
            **{"gen_ai.tool.name": f"{name}.tool", "penguiflow.outcome": "rejected"},
        )
        == 1
    )


async def test_one_bucket_per_key_by_default_source_then_tool() -> None:
    limiter = RateLimit(2, name="rl-keys")  # 500 ms per token
    a = wrap(paced(limiter, "x").__wrapped__, limiter, name="rl-keys.a", source="src-a")
    b = wrap(paced(limiter, "x").__wrapped__, limiter, name="rl-keys.b", source="src-b")
    t0 = time.monotonic()
    await asyncio.gather(a(1), b(2))
    assert time.monotonic() - t0 < 0.1  # separate buckets: both ran at once
    assert limiter.tokens("src-a") < 0.5 and limiter.tokens("src-b") < 0.5
    custom = RateLimit(2, name="rl-keys-custom", key=lambda call: call.arguments["user"])
    assert await custom.acquire(Call("t", {"user": "u1"})) == 0.0
    assert await custom.acquire(Call("t", {"user": "u2"})) == 0.0


async def test_telemetry_tokens_queue_depth_and_wait_time(spans: Any) -> None:
    name = "rl-telemetry"
    limiter = RateLimit(20, burst=5, name=name)
    tool = paced(limiter, f"{name}.tool")
    labels = {mw.LIMITER_NAME: name, mw.RATE_LIMIT_KEY: f"{name}.tool"}
    tasks = [asyncio.create_task(tool(i)) for i in range(12)]
    await asyncio.sleep(0.01)
    assert otel.value(mw.RATE_LIMIT_QUEUED, **labels) == 7  # 5 ran on the burst
    assert otel.value(mw.RATE_LIMIT_TOKENS, **labels) < 1
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.3)
    assert otel.value(mw.RATE_LIMIT_QUEUED, **labels) == 0
    assert otel.value(mw.RATE_LIMIT_TOKENS, **labels) == pytest.approx(5, abs=0.05)
    waits = {mw.LIMITER_NAME: name}
    assert otel.histogram_count(mw.RATE_LIMIT_WAIT, **waits, **{mw.LIMITER_WAITED: False}) == 5
    assert otel.histogram_count(mw.RATE_LIMIT_WAIT, **waits, **{mw.LIMITER_WAITED: True}) == 7
    assert len(otel.spans(f"rate_limit_wait {name}")) == 7


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
    """40 calls at 500/s, some cancelled at random moments: the survivors run in arrival order, never faster
    than the rate allows, and afterwards nobody waits and the bucket refills to ``burst``."""

    async def scenario() -> None:
        limiter = RateLimit(500, burst=burst, name="rl-property")
        call = Call("rl-property.tool", {})
        granted: list[tuple[int, float]] = []

        async def one(i: int) -> None:
            await limiter.acquire(call)
            granted.append((i, time.monotonic()))

        t0 = time.monotonic()
        tasks = [asyncio.create_task(one(i)) for i in range(40)]
        for index, at in sorted(cancels, key=lambda c: c[1]):
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            tasks[index].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        survivors = [i for i, task in enumerate(tasks) if not task.cancelled()]
        assert [i for i, _ in granted] == survivors  # FIFO among those who stayed
        times = [t for _, t in granted]
        for k in range(burst, len(times)):  # the k-th grant needs k - burst + 1 refills of 2 ms
            assert times[k] - t0 >= (k - burst + 1) * 0.002 - 0.0005
        assert limiter.queued("rl-property.tool") == 0
        await asyncio.sleep(burst * 0.002 + 0.01)
        assert limiter.tokens("rl-property.tool") == pytest.approx(burst)

    asyncio.run(scenario())
