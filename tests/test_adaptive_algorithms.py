"""The adaptive limit algorithms on their own: pure classes fed samples with made-up times (a fake clock)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.adaptive import Aimd, Gradient, Sample, Signal


def ok(started: float, rtt: float, in_flight: int) -> Sample:
    return Sample(started, started + rtt, in_flight)


def loss(started: float, rtt: float, in_flight: int, retry_after: float | None = None) -> Sample:
    return Sample(started, started + rtt, in_flight, "overload", "status_429", retry_after)


# --- AIMD -------------------------------------------------------------------------------------------------------
def test_aimd_adds_about_one_slot_per_limits_worth_of_calls_that_found_the_limit_full() -> None:
    aimd = Aimd(max_limit=100, initial=10)
    reasons = [aimd.update(ok(i * 0.01, 0.1, in_flight=aimd.limit)) for i in range(10)]
    assert aimd.limit == 11 and reasons.count("increase") == 1
    assert aimd.estimate == pytest.approx(
        10 + sum(1 / e for e in [10.0] + [10 + k * 0.1 for k in range(1, 10)]), rel=1e-2
    )


def test_aimd_does_not_grow_while_under_used() -> None:
    aimd = Aimd(max_limit=100, initial=10)
    for i in range(1_000):
        assert aimd.update(ok(i * 0.01, 0.1, in_flight=9)) is None  # never took the last slot
    assert aimd.limit == 10 and aimd.estimate == 10.0


def test_aimd_cuts_once_per_round_trip_for_a_burst_of_429s() -> None:
    aimd = Aimd(max_limit=100, initial=16, backoff=0.5)
    # 16 calls admitted at t=0..0.016 all get a 429 back at t≈0.1: one cut, not sixteen
    reasons = [aimd.update(loss(i * 0.001, 0.1, 16)) for i in range(16)]
    assert reasons == ["status_429"] + [None] * 15
    assert aimd.limit == 8
    # a call admitted after that cut, refused too: that is news, cut again
    assert aimd.update(loss(0.2, 0.05, 8)) == "status_429"
    assert aimd.limit == 4


def test_aimd_timeouts_and_connection_errors_are_losses_other_errors_are_not() -> None:
    aimd = Aimd(max_limit=100, initial=20, backoff=0.5)
    assert aimd.update(Sample(0.0, 1.0, 20, "timeout", "timeout")) == "timeout"
    assert aimd.update(Sample(2.0, 2.1, 10, "connection", "connection")) == "connection"
    assert aimd.update(Sample(3.0, 3.1, 5, "ignore")) is None
    assert aimd.limit == 5


def test_retry_after_freezes_growth_until_it_has_passed() -> None:
    aimd = Aimd(max_limit=100, initial=8, backoff=0.5)
    aimd.update(loss(0.0, 0.1, 8, retry_after=5.0))  # until t = 5.1
    assert aimd.limit == 4
    for i in range(100):
        aimd.update(ok(0.2 + i * 0.04, 0.1, in_flight=4))  # ends by t = 4.26
    assert aimd.limit == 4
    for i in range(4):  # 4 × 1/4: about one slot
        aimd.update(ok(5.2 + i * 0.01, 0.1, in_flight=aimd.limit))
    assert aimd.limit == 5


def test_retry_after_is_capped() -> None:
    aimd = Aimd(max_limit=100, initial=8, max_retry_after_s=2.0)
    aimd.update(loss(0.0, 0.1, 8, retry_after=3600.0))
    assert aimd.frozen(2.0) and not aimd.frozen(2.2)


# --- Gradient --------------------------------------------------------------------------------------------------
def window(
    algorithm: Gradient,
    start: float,
    rtt: float,
    in_flight: int | None = None,
    n: int = 10,
    span: float = 0.55,
) -> tuple[float, list[str | None]]:
    """One measurement window: ``n`` calls of ``rtt``, admitted after ``start``, their ends spread over ``span``
    (longer than ``window_s``, so the window closes on the last one). Returns the time after it and the reasons."""
    reasons = []
    for i in range(n):
        finished = start + rtt + i * span / (n - 1)
        limit = algorithm.limit if in_flight is None else in_flight
        reasons.append(algorithm.update(Sample(finished - rtt, finished, limit)))
    return start + rtt + span + 0.01, reasons


def settle(algorithm: Gradient, start: float, rtt: float, windows: int) -> float:
    for _ in range(windows):
        start, _reasons = window(algorithm, start, rtt)
    return start


def test_gradient_grows_while_latency_stays_at_the_baseline_and_the_limit_binds() -> None:
    gradient = Gradient(max_limit=100, initial=4)
    t, reasons = window(gradient, 0.0, 0.1)
    assert reasons[-1] == "increase" and gradient.limit == 5
    t, _ = window(gradient, t, 0.1)
    t, _ = window(gradient, t, 0.1)
    assert gradient.limit == 5 + 2 + 4  # clear windows double the step
    assert gradient.rtt_s == pytest.approx(0.1) and gradient.baseline_s == pytest.approx(0.1)


def test_gradient_cuts_to_what_the_backend_serves_without_a_queue() -> None:
    gradient = Gradient(max_limit=100, initial=12)
    t = settle(gradient, 0.0, 0.1, 1)  # learns the baseline, grows to 13
    assert gradient.limit == 13
    # 13 in flight answered in 0.2 s: the backend serves 65/s, which takes 6.5 slots at 0.1 s
    t, reasons = window(gradient, t, 0.2, in_flight=13)
    assert reasons[-1] == "latency"
    assert gradient.limit == round(13 * 0.1 / 0.2 + 1e-9) == 7
    assert gradient.rtt_s == pytest.approx(0.2) and gradient.baseline_s == pytest.approx(0.1)


def test_gradient_never_cuts_more_than_half_in_one_window() -> None:
    gradient = Gradient(max_limit=100, initial=20)
    t = settle(gradient, 0.0, 0.01, 1)
    t, _ = window(gradient, t, 1.0, span=3.0)  # 100× the baseline: Little says 0.2
    assert gradient.limit == 11  # half of 21


def test_latency_within_tolerance_is_not_queueing() -> None:
    gradient = Gradient(max_limit=100, initial=10, tolerance=0.2)
    t = settle(gradient, 0.0, 0.1, 1)
    before = gradient.limit
    t, reasons = window(gradient, t, 0.118)
    assert "latency" not in reasons and gradient.limit == before + 1  # grows, but one at a time near the edge


def test_gradient_holds_when_the_limit_is_not_reached() -> None:
    gradient = Gradient(max_limit=100, initial=10)
    t = 0.0
    for _ in range(50):
        t, reasons = window(gradient, t, 0.1, in_flight=3)
        assert reasons == [None] * 10
    assert gradient.limit == 10


def test_an_idle_minute_changes_nothing() -> None:
    gradient = Gradient(max_limit=100, initial=10)
    t = settle(gradient, 0.0, 0.1, 3)
    limit, baseline = gradient.limit, gradient.baseline_s
    # a minute without a call, then a burst: the first window starts at the burst, the baseline is kept
    t, reasons = window(gradient, t + 60.0, 0.1, in_flight=3)
    assert gradient.limit == limit and gradient.baseline_s == baseline and reasons == [None] * 10


def test_calls_admitted_before_a_change_do_not_count_for_the_new_limit() -> None:
    gradient = Gradient(max_limit=100, initial=10, min_samples=2)
    t = settle(gradient, 0.0, 0.1, 1)
    changed_at = t - 0.01
    # slow calls admitted before the change end now: ignored, however many
    for i in range(50):
        assert gradient.update(ok(changed_at - 0.5, 0.5 + 0.001 * i, gradient.limit)) is None
    assert gradient.rtt_s == pytest.approx(0.1)


def test_a_slower_backend_is_relearned_instead_of_collapsing_the_limit() -> None:
    gradient = Gradient(max_limit=100, initial=16)
    t = settle(gradient, 0.0, 0.1, 2)
    high = gradient.limit
    # the work got bigger: every call takes 0.3 s whatever the concurrency
    for _ in range(6):
        t, _ = window(gradient, t, 0.3, span=1.0)
    assert gradient.baseline_s == pytest.approx(0.3)
    assert gradient.limit >= high // 4 > gradient.min_limit
    lowest = gradient.limit
    for _ in range(4):
        t, _ = window(gradient, t, 0.3, span=1.0)
    assert gradient.limit > lowest  # and grows again from there


def test_gradient_backs_off_on_losses_like_aimd() -> None:
    gradient = Gradient(max_limit=100, initial=16, backoff=0.5)
    assert gradient.update(loss(0.0, 0.1, 16)) == "status_429" and gradient.limit == 8
    assert gradient.update(loss(0.05, 0.1, 16)) is None  # admitted before the cut


# --- bounds and configuration ---------------------------------------------------------------------------------
SIGNALS: tuple[Signal, ...] = ("ok", "ok", "ok", "overload", "timeout", "connection", "ignore")

events = st.lists(
    st.tuples(
        st.floats(0.0, 2.0),  # gap since the previous call began
        st.floats(0.001, 3.0),  # rtt
        st.integers(1, 60),  # in flight
        st.sampled_from(SIGNALS),
        st.one_of(st.none(), st.floats(0.0, 100.0)),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(
    events=events,
    bounds=st.tuples(st.integers(1, 5), st.integers(0, 40)),
    algorithm=st.sampled_from(["aimd", "gradient"]),
)
def test_the_limit_stays_within_its_bounds_and_moves_only_when_it_says_so(
    events: list[tuple[float, float, int, Signal, float | None]], bounds: tuple[int, int], algorithm: str
) -> None:
    low, extra = bounds
    cls = Aimd if algorithm == "aimd" else Gradient
    limiter = (
        cls(max_limit=low + extra, min_limit=low, min_samples=1)
        if cls is Gradient
        else cls(max_limit=low + extra, min_limit=low)
    )
    t = 0.0
    for gap, rtt, in_flight, signal, retry_after in events:
        t += gap
        before = limiter.limit
        reason = limiter.update(Sample(t, t + rtt, in_flight, signal, signal, retry_after))
        assert low <= limiter.limit <= low + extra
        assert limiter.min_limit <= limiter.estimate <= limiter.max_limit
        assert (limiter.limit != before) == (reason is not None)
        if reason is not None and limiter.limit > before:
            assert reason == "increase" and signal == "ok"
        if signal == "ignore":
            assert limiter.limit == before
        baseline = limiter.baseline_s
        assert baseline is None or (math.isfinite(baseline) and baseline > 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_limit": 0}, "max_limit"),
        ({"max_limit": 5, "min_limit": 6}, "max_limit"),
        ({"max_limit": 5, "initial": 6}, "initial"),
        ({"max_limit": 5, "backoff": 1.0}, "backoff"),
        ({"max_limit": 5, "backoff": True}, "backoff"),
        ({"max_limit": 5, "max_retry_after_s": math.inf}, "max_retry_after_s"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        Aimd(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field
    with pytest.raises(ConfigurationError) as exc:
        Gradient(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"tolerance": 0}, "tolerance"), ({"window_s": -1}, "window_s"), ({"min_samples": 0}, "min_samples")],
)
def test_bad_gradient_parameters_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as exc:
        Gradient(max_limit=10, **kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_the_default_start_is_low_within_the_bounds() -> None:
    assert Gradient(max_limit=50).limit == 4
    assert Aimd(max_limit=2).limit == 2
    assert Aimd(max_limit=50, min_limit=10).limit == 10


def test_a_latency_no_cut_can_fix_does_not_pin_the_limit_at_its_floor() -> None:
    # the host got slower (a loaded machine): at min_limit already, the RTT stays 50 % above the baseline
    gradient = Gradient(max_limit=20, initial=2, min_limit=2)
    t = 0.0
    for _ in range(3):
        t, _ = window(gradient, t, 0.1, in_flight=1)
    assert gradient.baseline_s == pytest.approx(0.1) and gradient.limit == 2
    for _ in range(3):
        t, _ = window(gradient, t, 0.15, in_flight=1)
    assert gradient.baseline_s == pytest.approx(0.15)
    t, reasons = window(gradient, t, 0.15)  # the limit binds again: it grows from the floor
    assert "increase" in reasons and gradient.limit > 2
