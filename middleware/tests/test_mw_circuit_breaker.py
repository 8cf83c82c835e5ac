from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support import otel

from penguiflow import wrap
from penguiflow.errors import ConfigurationError, PenguiflowError, ToolClientError, ToolServerError
from penguiflow.middleware import Retry, RetryPolicy
from penguiflow_middleware import CircuitBreaker, CircuitOpenError
from penguiflow_middleware import names as mw


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """A tool that fails while ``failing`` is set, counting the calls that reached it."""

    def __init__(self) -> None:
        self.failing = True
        self.calls = 0
        self.release: asyncio.Event | None = None

    async def run(self) -> str:
        self.calls += 1
        if self.release is not None:
            await self.release.wait()
        if self.failing:
            raise ToolServerError("boom", status_code=503)
        return "ok"


def breaker_tool(name: str, **kwargs: Any) -> tuple[Any, CircuitBreaker, Backend, Clock]:
    clock = Clock()
    backend = Backend()
    breaker = CircuitBreaker(name=name, clock=clock, **kwargs)
    return wrap(backend.run, breaker, name=f"{name}.tool"), breaker, backend, clock


async def fail_n(tool: Any, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ToolServerError):
            await tool()


async def test_opens_after_threshold_and_rejects_without_calling_the_backend() -> None:
    tool, breaker, backend, clock = breaker_tool("cb-open", failure_threshold=3, recovery_s=10)
    await fail_n(tool, 3)
    assert breaker.state == "open"
    clock.now += 4
    with pytest.raises(CircuitOpenError) as caught:
        await tool()
    assert backend.calls == 3
    error = caught.value
    assert isinstance(error, PenguiflowError) and error.retryable is False
    assert error.retry_after == pytest.approx(6.0)
    assert "cb-open" in str(error) and "open" in str(error)


async def test_a_success_resets_the_consecutive_count() -> None:
    tool, breaker, backend, _clock = breaker_tool("cb-reset", failure_threshold=3)
    await fail_n(tool, 2)
    backend.failing = False
    assert await tool() == "ok"
    backend.failing = True
    await fail_n(tool, 2)
    assert breaker.state == "closed" and breaker.failures == 2


async def test_half_open_admits_one_probe_then_closes_on_success() -> None:
    tool, breaker, backend, clock = breaker_tool("cb-probe", failure_threshold=1, recovery_s=5)
    await fail_n(tool, 1)
    clock.now += 5
    assert breaker.state == "half_open"
    backend.failing = False
    backend.release = asyncio.Event()
    probe = asyncio.create_task(tool())
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError) as caught:  # the probe is busy: others are refused
        await tool()
    assert caught.value.state == "half_open"
    backend.release.set()
    assert await probe == "ok"
    assert breaker.state == "closed"
    backend.release = None
    assert await tool() == "ok"


async def test_a_failed_probe_opens_again_for_a_full_recovery_period() -> None:
    tool, breaker, backend, clock = breaker_tool("cb-reopen", failure_threshold=1, recovery_s=5)
    await fail_n(tool, 1)
    clock.now += 5
    await fail_n(tool, 1)
    assert breaker.state == "open"
    clock.now += 4.9
    with pytest.raises(CircuitOpenError):
        await tool()
    assert backend.calls == 2


async def test_half_open_max_calls_probes_must_all_succeed() -> None:
    tool, breaker, backend, clock = breaker_tool(
        "cb-two", failure_threshold=1, recovery_s=1, half_open_max_calls=2
    )
    await fail_n(tool, 1)
    clock.now += 1
    backend.failing = False
    assert await tool() == "ok"
    assert breaker.state == "half_open"
    assert await tool() == "ok"
    assert breaker.state == "closed"


async def test_a_cancelled_probe_gives_its_place_back_without_a_verdict() -> None:
    tool, breaker, backend, clock = breaker_tool("cb-cancel", failure_threshold=1, recovery_s=1)
    await fail_n(tool, 1)
    clock.now += 1
    backend.release = asyncio.Event()
    probe = asyncio.create_task(tool())
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half_open"
    backend.release = None
    backend.failing = False
    assert await tool() == "ok"  # the next probe is admitted
    assert breaker.state == "closed"


async def test_outcomes_of_calls_admitted_before_a_transition_are_ignored() -> None:
    tool, breaker, backend, clock = breaker_tool("cb-stale", failure_threshold=1, recovery_s=1)
    backend.release = asyncio.Event()
    slow = asyncio.create_task(tool())  # admitted while closed
    await asyncio.sleep(0)
    backend.release.set()
    backend.release = None
    await fail_n(tool, 1)  # opens the circuit
    clock.now += 1
    backend.failing = False
    assert await tool() == "ok"  # probe closes it
    with pytest.raises(ToolServerError):  # the slow call was set to fail when it started
        backend.failing = True
        await slow
    assert breaker.state == "closed"  # its late failure did not count against the new state


async def test_client_errors_are_not_failures_by_default_and_failure_if_overrides() -> None:
    clock = Clock()

    async def bad_request() -> None:
        raise ToolClientError("bad request", status_code=400)

    breaker = CircuitBreaker(1, name="cb-client", clock=clock)
    tool = wrap(bad_request, breaker, name="cb-client.tool")
    for _ in range(3):
        with pytest.raises(ToolClientError):
            await tool()
    assert breaker.state == "closed"

    strict = CircuitBreaker(1, name="cb-client-strict", clock=clock, failure_if=lambda exc: True)
    tool = wrap(bad_request, strict, name="cb-client-strict.tool")
    with pytest.raises(ToolClientError):
        await tool()
    assert strict.state == "open"


async def test_an_open_circuit_stops_retries_at_once() -> None:
    clock = Clock()
    backend = Backend()
    breaker = CircuitBreaker(2, name="cb-retry", clock=clock)

    async def no_sleep(_seconds: float) -> None:
        pass

    tool = wrap(
        backend.run,
        Retry(RetryPolicy(max_attempts=10, wait_exponential_min_s=0.01), sleep=no_sleep),
        breaker,
        name="cb-retry.tool",
    )
    with pytest.raises(CircuitOpenError):
        await tool()
    assert backend.calls == 2  # two attempts opened it; the third attempt was refused, and not retried


async def test_telemetry_state_gauge_transitions_rejections_and_span_events(spans: Any) -> None:
    name = "cb-telemetry"
    tool, _breaker, backend, clock = breaker_tool(name, failure_threshold=2, recovery_s=3)
    assert otel.value(mw.CIRCUIT_STATE_GAUGE, **{mw.CIRCUIT_NAME: name}) == 0
    await fail_n(tool, 2)
    assert otel.value(mw.CIRCUIT_STATE_GAUGE, **{mw.CIRCUIT_NAME: name}) == 2
    with pytest.raises(CircuitOpenError):
        await tool()
    clock.now += 3
    assert otel.value(mw.CIRCUIT_STATE_GAUGE, **{mw.CIRCUIT_NAME: name}) == 1
    backend.failing = False
    await tool()
    assert otel.value(mw.CIRCUIT_STATE_GAUGE, **{mw.CIRCUIT_NAME: name}) == 0

    def transitions(source: str, to: str) -> float:
        return otel.value(
            mw.CIRCUIT_TRANSITIONS,
            **{mw.CIRCUIT_NAME: name, mw.CIRCUIT_FROM_STATE: source, mw.CIRCUIT_STATE: to},
        )

    assert (
        transitions("closed", "open"),
        transitions("open", "half_open"),
        transitions("half_open", "closed"),
    ) == (
        1,
        1,
        1,
    )
    assert otel.value(mw.CIRCUIT_REJECTED, **{mw.CIRCUIT_NAME: name, mw.CIRCUIT_STATE: "open"}) == 1
    # The refused call is counted by the stack as rejected, not as an error of the tool.
    assert (
        otel.histogram_count(
            "gen_ai.execute_tool.duration",
            **{"gen_ai.tool.name": f"{name}.tool", "penguiflow.outcome": "rejected"},
        )
        == 1
    )

    events = [
        (event.name, dict(event.attributes or {}))
        for span in otel.spans(f"execute_tool {name}.tool")
        for event in span.events
    ]
    assert [(e, a.get(mw.CIRCUIT_STATE)) for e, a in events] == [
        (mw.EVENT_CIRCUIT_TRANSITION, "open"),
        (mw.EVENT_CIRCUIT_REJECTED, "open"),
        (mw.EVENT_CIRCUIT_TRANSITION, "half_open"),
        (mw.EVENT_CIRCUIT_TRANSITION, "closed"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_s": -1}, "recovery_s"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_arguments_fail_at_construction_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CircuitBreaker(**{"name": "cb-bad", **kwargs})
    assert caught.value.field == field and field in str(caught.value)
