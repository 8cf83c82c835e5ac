"""Every combination of built-in layers the engine compiles a runner for (``middleware/specialise.py``) does
what those layers do one by one: each of the 16 subsets of ``log_flow_events → Retry → ConcurrencyLimit →
Timeout``, called through ``wrap()`` and through a ``Stack``, telemetry on and off, in success, failure,
retries, a timeout and a cancellation — compared with the same layers each in its own frame (see
``test_fused_stack.py``: outcomes, spans, metrics, flow events, log records, no slot leaked)."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from penguiflow.middleware import Retry, RetryPolicy, Timeout, wrap
from penguiflow.middleware.stack import Wrapped
from penguiflow.telemetry import instruments
from tests.test_fused_stack import Run, cancelled, compare, failing, flaky, slow

SUBSETS = [
    subset for size in range(5) for subset in itertools.combinations(range(4), size)
]  # (0, 1, 2, 3): logger, retry, limit, timeout
TIMEOUT = 3


async def _ok(run: Run) -> Any:
    async def ok(n: int) -> int:
        return n + 1

    return await run.wrap(ok)(41)


SCENARIOS = {"ok": _ok, "boom": failing, "flaky": flaky, "slow": slow, "cancelled": cancelled}


@pytest.mark.parametrize("telemetry", ["on", "off"])
@pytest.mark.parametrize("through", ["wrap", "stack"])
@pytest.mark.parametrize(
    ("scenario", "present"),
    [
        pytest.param(scenario, present, id=f"{scenario}-{'+'.join(map(str, present)) or 'none'}")
        for scenario in SCENARIOS
        for present in SUBSETS
        if scenario != "slow" or TIMEOUT in present  # without a Timeout layer nothing ends a slow call
    ],
)
async def test_every_combination_is_the_same(
    scenario: str,
    present: tuple[int, ...],
    through: str,
    telemetry: str,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if telemetry == "off":
        # What an application without an SDK provider gets from every layer and from the stack.
        monkeypatch.setattr(instruments, "current", lambda: None)
    options: dict[str, Any] = {"present": present, "through": through}
    if scenario == "slow":
        options["timeout_s"] = 0.02
    outcome, record = await compare(SCENARIOS[scenario], spans, **options)
    expected = {
        "ok": ("returned", 42),
        "boom": ("raised", "ValueError", "boom"),
        "flaky": ("returned", "up") if 1 in present else ("raised", "ConnectionError", "down"),
        "slow": ("raised", "ToolTimeoutError"),
        "cancelled": ("raised", "CancelledError"),
    }[scenario]
    assert outcome[: len(expected)] == expected
    # Telemetry on, one call's span and its one duration record; off, none.
    tool_spans = [s for s in record["spans"] if s[0] == "execute_tool TOOL"]
    assert len(tool_spans) == (1 if telemetry == "on" else 0)
    assert sum(count for _, count in record["metrics"]["duration"]) == (1 if telemetry == "on" else 0)


async def test_a_wrapped_function_stays_an_async_callable_with_its_signature() -> None:
    """What frameworks inspect (Pydantic AI's ``is_async_callable``): ``__call__`` is a coroutine function,
    the signature and the metadata are the wrapped function's; a subclass's own ``__call__`` is kept."""

    async def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    tool = wrap(add, Retry(RetryPolicy()), Timeout(5), name="combo.add")
    assert inspect.iscoroutinefunction(tool.__call__) and inspect.iscoroutinefunction(type(tool).__call__)
    assert isinstance(tool, Wrapped) and type(tool).__name__ == "Wrapped"
    assert inspect.signature(tool) == inspect.signature(add) and tool.__doc__ == "Adds."
    assert await tool(2) == 3 and await tool(2, b=5) == 7 and await tool(a=1) == 2

    class Doubling(Wrapped):
        async def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return 2 * await super().__call__(*args, **kwargs)

    assert await Doubling(add, [Retry(RetryPolicy())], "combo.double", None)(2) == 6
