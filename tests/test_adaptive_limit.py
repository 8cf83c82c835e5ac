"""``AdaptiveConcurrencyLimit``: the real layer, admission and backend model, run in virtual time.

A backend with a hidden capacity (``CapacityGate``: up to C served at once in a fixed time, queueing above,
429 above 2·C) changes its capacity from 8 to 3 and back; closed-loop callers go through ``Retry`` and the
adaptive limit. Virtual time makes every run the same and a minute of load take a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.demo.backends.capacity import CapacityGate
from penguiflow.errors import ConfigurationError, ToolStatusError
from penguiflow.middleware import AdaptiveConcurrencyLimit, AdaptivePolicy, Retry, RetryPolicy, wrap
from penguiflow.middleware.adaptive import Aimd, Sample
from penguiflow.telemetry import names
from tests.support import otel
from tests.support.virtual_time import run

SERVICE_S = 0.1
PHASES = ((0.0, 8), (20.0, 3), (40.0, 8))
END_S = 60.0


@dataclass
class Run:
    limits: list[tuple[float, int, int]] = field(default_factory=list)  # (t, limit, capacity), every 0.1 s
    ok: int = 0
    failed: int = 0
    refused: int = 0
    served: int = 0
    peak_present: int = 0
    limiter: Any = None


async def closed_loop(algorithm: str, workers: int = 32) -> Run:
    loop = asyncio.get_running_loop()
    gate = CapacityGate(PHASES[0][1], SERVICE_S)
    limiter = AdaptiveConcurrencyLimit(
        name=otel.unique("adaptive"), max_limit=50, algorithm=algorithm, clock=loop.time
    )

    async def backend() -> str:
        if not await gate.serve():
            raise ToolStatusError("busy", status_code=429, retry_after=1.0)
        return "ok"

    call = wrap(backend, Retry(RetryPolicy(max_attempts=5, wait_exponential_min_s=0.1)), limiter)
    result = Run(limiter=limiter)
    stop = False

    async def worker() -> None:
        while not stop:
            try:
                await call()
                result.ok += 1
            except ToolStatusError:
                result.failed += 1

    async def schedule() -> None:
        for at, capacity in PHASES:
            await asyncio.sleep(max(0.0, at - loop.time()))
            gate.set_capacity(capacity)

    async def record() -> None:
        while not stop:
            result.limits.append((loop.time(), limiter.limit, gate.capacity))
            await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    tasks += [asyncio.create_task(schedule()), asyncio.create_task(record())]
    await asyncio.sleep(END_S)
    stop = True
    await asyncio.gather(*tasks)
    result.refused, result.served, result.peak_present = gate.refused, gate.served, gate.peak_present
    return result


def in_band(limit: int, capacity: int) -> bool:
    return abs(limit - capacity) <= 0.3 * capacity


def phase_limits(result: Run, start: float, end: float) -> list[int]:
    return [limit for t, limit, _capacity in result.limits if start <= t < end]


def test_gradient_follows_the_capacity_down_and_up() -> None:
    result = run(closed_loop("gradient"))
    # in C ± 30 % within 5 s of each change, and mostly there until the next
    for (start, capacity), end in zip(PHASES, [*(p[0] for p in PHASES[1:]), END_S], strict=True):
        assert any(in_band(limit, capacity) for limit in phase_limits(result, start, start + 5.0)), capacity
        settled = phase_limits(result, start + 5.0, end)
        assert statistics.median(settled) == pytest.approx(capacity, rel=0.3)
        share = sum(in_band(limit, capacity) for limit in settled) / len(settled)
        assert share >= 0.7, (capacity, share)  # probing one above a small capacity costs the rest
    assert result.refused <= 0.01 * (result.served + result.refused)
    assert result.failed == 0
    limiter = result.limiter
    assert limiter.in_flight == 0 and limiter.queued == 0


def test_aimd_backs_off_on_429s_and_keeps_them_rare() -> None:
    result = run(closed_loop("aimd"))
    assert result.refused <= 0.01 * (result.served + result.refused)
    for (start, capacity), end in zip(PHASES, [*(p[0] for p in PHASES[1:]), END_S], strict=True):
        settled = phase_limits(result, start + 5.0, end)
        # loss-based: it finds where the backend refuses (2·C), backs off below it, never sits far under C
        assert min(settled) >= capacity and max(settled) <= 2 * capacity + 1, (capacity, settled)


def test_a_static_limit_above_the_capacity_is_what_it_saves_us_from() -> None:
    # the same workload through a ConcurrencyLimit(50): the comparison the adaptive targets are about
    async def main() -> int:
        gate = CapacityGate(3, SERVICE_S)
        from penguiflow.middleware import ConcurrencyLimit

        async def backend() -> str:
            if not await gate.serve():
                raise ToolStatusError("busy", status_code=429, retry_after=1.0)
            return "ok"

        call = wrap(backend, Retry(RetryPolicy(max_attempts=1)), ConcurrencyLimit(50, name=otel.unique("s")))
        await asyncio.gather(*(call() for _ in range(32)), return_exceptions=True)
        return gate.refused

    assert run(main()) == 32 - 6


# --- exact accounting ---------------------------------------------------------------------------------------------
def test_every_change_is_one_event_one_log_record_and_one_count(caplog: pytest.LogCaptureFixture) -> None:
    otel.install()
    otel.SPANS.clear()
    caplog.set_level(logging.INFO, logger="penguiflow.middleware.adaptive")
    name = otel.unique("adaptive")
    changes: list[tuple[int, int]] = []

    async def main() -> AdaptiveConcurrencyLimit:
        loop = asyncio.get_running_loop()
        gate = CapacityGate(6, 0.05)
        limiter = AdaptiveConcurrencyLimit(name=name, max_limit=20, clock=loop.time)
        original = limiter.set_limit

        def tracking(limit: int) -> None:
            changes.append((limiter.limit, limit))
            original(limit)

        limiter.set_limit = tracking  # type: ignore[method-assign]

        async def backend(i: int) -> str:
            if not await gate.serve():
                raise ToolStatusError("busy", status_code=503)
            if i % 17 == 0:
                raise ToolStatusError("missing", status_code=404)  # tells nothing: ignored
            return "ok"

        call = wrap(backend, limiter, name=otel.unique("adaptive.tool"))

        async def worker(k: int) -> None:
            for i in range(60):
                with contextlib.suppress(ToolStatusError):
                    await call(k * 100 + i)
                if i == 30:
                    gate.set_capacity(2)

        await asyncio.gather(*(worker(k) for k in range(12)))
        return limiter

    limiter = run(main())
    assert len(changes) >= 4 and all(before != after for before, after in changes)
    events = [
        event
        for span in otel.spans()
        for event in span.events
        if event.name == names.EVENT_LIMIT_CHANGED and event.attributes[names.LIMITER_NAME] == name
    ]
    assert [(e.attributes[names.LIMIT_PREVIOUS], e.attributes[names.LIMIT_NEW]) for e in events] == changes
    reasons = [str(e.attributes[names.LIMIT_REASON]) for e in events]
    assert set(reasons) <= {"increase", "latency", "status_503"} and "status_503" in reasons
    records = [r for r in caplog.records if getattr(r, "limiter", None) == name]
    assert [(r.limit_before, r.limit) for r in records] == changes  # type: ignore[attr-defined]
    for reason in set(reasons):
        counted = otel.value(
            names.LIMITER_ADJUSTMENTS, **{names.LIMITER_NAME: name, names.LIMIT_REASON: reason}
        )
        assert counted == reasons.count(reason)
    assert otel.value(names.LIMITER_LIMIT, **{names.LIMITER_NAME: name}) == limiter.limit
    assert otel.value(names.LIMITER_IN_FLIGHT, **{names.LIMITER_NAME: name}) == 0
    assert otel.value(names.LIMITER_BASELINE_RTT, **{names.LIMITER_NAME: name}) == pytest.approx(
        limiter.baseline_s
    )
    assert otel.value(names.LIMITER_RTT, **{names.LIMITER_NAME: name}) == pytest.approx(limiter.rtt_s)


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["ok", "429", "timeout", "404", "cancel"]), st.floats(0.001, 0.5)),
        min_size=1,
        max_size=60,
    ),
    algorithm=st.sampled_from(["gradient", "aimd"]),
)
def test_slots_and_gauges_stay_exact_whatever_the_calls_do(
    plan: list[tuple[str, float]], algorithm: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        limiter = AdaptiveConcurrencyLimit(
            name=otel.unique("adaptive"), max_limit=6, min_limit=1, algorithm=algorithm, clock=loop.time
        )
        peak = 0

        async def backend(kind: str, seconds: float) -> str:
            nonlocal peak
            peak = max(peak, limiter.in_flight)
            assert limiter.in_flight <= max(limiter.limit, peak)
            await asyncio.sleep(seconds)
            if kind == "429":
                raise ToolStatusError("busy", status_code=429, retry_after=0.5)
            if kind == "timeout":
                raise TimeoutError
            if kind == "404":
                raise ToolStatusError("missing", status_code=404)
            return kind

        call = wrap(backend, limiter)
        tasks = [asyncio.create_task(call(kind, seconds)) for kind, seconds in plan]
        await asyncio.sleep(0.01)
        for task, (kind, _seconds) in zip(tasks, plan, strict=True):
            if kind == "cancel":
                task.cancel()  # queued or running: either way its slot must come back
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert [r for r in results if r == "ok"] == [k for k, _ in plan if k == "ok"]
        assert limiter.in_flight == 0 and limiter.queued == 0
        assert limiter.min_limit <= limiter.limit <= limiter.max_limit
        assert peak <= limiter.max_limit
        # admission still works at the final limit
        limit = limiter.limit
        assert await asyncio.gather(*(call("ok", 0.01) for _ in range(limit))) == ["ok"] * limit

    run(main())


# --- construction -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"algorithm": "gradient"}, "max_limit"),
        ({"max_limit": 10, "algorithm": "vegas"}, "algorithm"),
        ({"max_limit": 10, "initial": 11}, "initial"),
        ({"max_limit": 10, "min_limit": 0}, "min_limit"),
        ({"max_limit": 10, "algorithm": AdaptivePolicy(), "initial": 3}, "initial"),
        ({"max_limit": 10, "algorithm": Aimd(max_limit=5)}, "max_limit"),
        ({"max_limit": 10, "algorithm": object()}, "algorithm"),
        ({"max_limit": 10, "max_queue": -1}, "max_queue"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        AdaptiveConcurrencyLimit(name="x", **kwargs)
    assert exc.value.field == field


def test_an_algorithm_object_brings_its_own_bounds() -> None:
    class Fixed:
        limit = min_limit = max_limit = 3
        rtt_s = baseline_s = None

        def __init__(self) -> None:
            self.seen: list[Sample] = []

        def update(self, sample: Sample) -> str | None:
            self.seen.append(sample)
            return None

    algorithm = Fixed()

    async def main() -> AdaptiveConcurrencyLimit:
        limiter = AdaptiveConcurrencyLimit(
            name=otel.unique("custom"), algorithm=algorithm, clock=asyncio.get_running_loop().time
        )
        call = wrap(asyncio.sleep, limiter)
        await asyncio.gather(*(call(0.1) for _ in range(5)))
        return limiter

    limiter = run(main())
    assert limiter.limit == 3 and limiter.policy is None
    assert [s.in_flight for s in algorithm.seen] == [1, 2, 3, 3, 3]
    assert [(s.signal, round(s.rtt, 6)) for s in algorithm.seen] == [("ok", 0.1)] * 5


def test_the_policy_picks_the_algorithm_and_its_parameters() -> None:
    limiter = AdaptiveConcurrencyLimit(
        name=otel.unique("p"),
        max_limit=30,
        algorithm=AdaptivePolicy(algorithm="aimd", backoff=0.8, initial=7),
    )
    assert isinstance(limiter.algorithm, Aimd) and limiter.limit == 7 and limiter.algorithm.backoff == 0.8
    assert limiter.max_limit == 30 and limiter.rtt_s is None


# --- from a tool source's config ------------------------------------------------------------------------------
def test_a_source_switches_to_an_adaptive_limit_in_its_config() -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    base = {"name": "api", "transport": TransportType.HTTP, "connection": "http://127.0.0.1:1"}
    static = ToolNode(ExternalToolConfig(**base, max_concurrency=50))
    assert type(static.limiter).__name__ == "ConcurrencyLimit"
    node = ToolNode(ExternalToolConfig(**base, max_concurrency=50, adaptive=True, max_queue=7))
    limiter = node.limiter
    assert isinstance(limiter, AdaptiveConcurrencyLimit)
    assert (limiter.name, limiter.max_limit, limiter.limit, limiter.max_queue) == ("api", 50, 4, 7)
    aimd = ToolNode(ExternalToolConfig(**base, max_concurrency=20, adaptive="aimd")).limiter
    assert isinstance(aimd, AdaptiveConcurrencyLimit) and isinstance(aimd.algorithm, Aimd)
    tuned = ExternalToolConfig.model_validate(
        {**base, "max_concurrency": 20, "adaptive": {"algorithm": "gradient", "tolerance": 0.5, "initial": 6}}
    )
    assert tuned.adaptive_policy == AdaptivePolicy(tolerance=0.5, initial=6)


@pytest.mark.parametrize(
    ("adaptive", "where"),
    [
        ({"initial": 60}, "adaptive.initial"),
        ({"min_limit": 51}, "adaptive.min_limit"),
        ({"algorithm": "aimd", "tolerance": 0.3}, "tolerance"),
        ({"backoff": 1.5}, "backoff"),
        ({"algorithm": "vegas"}, "algorithm"),
        ("bbr", "algorithm"),
    ],
)
def test_a_bad_adaptive_config_fails_at_construction_naming_the_field(adaptive: Any, where: str) -> None:
    from pydantic import ValidationError

    from penguiflow.tools import ExternalToolConfig, TransportType

    with pytest.raises(ValidationError) as exc:
        ExternalToolConfig(
            name="api",
            transport=TransportType.HTTP,
            connection="http://x",
            max_concurrency=50,
            adaptive=adaptive,
        )
    assert where in str(exc.value)
