"""``Gradient``: a latency-gradient limit (after Netflix's Gradient2 and Envoy's gradient controller, our own).

Completed calls are gathered in windows (at least ``window_s`` and ``min_samples`` calls). At the end of a
window its mean round-trip time (the *RTT*: the mean, not the median, counts the calls that queued) is compared
with the *baseline* of the last ``baseline_windows`` windows — what the backend answers in when nothing queues:

- RTT above ``baseline × (1 + tolerance)``: calls are queueing. By Little's law the backend served
  ``in_flight / RTT`` calls a second, which takes ``in_flight × baseline / RTT`` slots without a queue: the limit
  goes there (never below half of it in one window, so one outlier cannot collapse it);
- otherwise, if the limit was reached in the window (a call took the last slot), it grows: by 1, then 2, 4 …
  while windows stay clear (so it finds a raised capacity quickly), back to 1 after any cut;
- otherwise it holds: an under-used limit proves nothing about the backend, and idle time changes nothing.

Only calls admitted after the last change count, so each window measures the limit in force. Losses (429/503,
timeouts, connection errors) cut by ``backoff`` at once, as :class:`~.aimd.Aimd` does.

The baseline is the 10th percentile of the recent window RTTs (the lowest would trust one lucky window), and it
can be stale: if the backend became slower for everyone (bigger work, a loaded host), cutting our own load does
not bring the RTT down. When two windows in a row find a queue that cuts did not shrink (fewer calls ran, the
RTT stayed) or that no cut is left to make (the limit cannot go lower), the latency is not our queue: the
baseline is re-learned from the current RTT instead of staying pinned at ``min_limit``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from penguiflow.middleware.adaptive.aimd import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER_S,
    LossBackoff,
)
from penguiflow.middleware.adaptive.sample import Sample
from penguiflow.middleware.validation import check_count, check_positive, check_seconds

MAX_CUT = 0.5  # a window never cuts more than half the limit: outliers happen
STALE_CUTS = 2  # cuts that left the RTT unchanged before the baseline is re-learned
LOAD_DROP = 0.9  # "fewer calls ran": mean in flight at most this share of the previous window's
RTT_HELD = 0.95  # "the RTT stayed": at least this share of the previous window's
PROBE_HOLD = 2  # clear windows to wait after a latency cut before probing upwards again


class Gradient(LossBackoff):
    """A limit that follows the backend's latency; see the module docstring for the rule and its parameters."""

    def __init__(
        self,
        *,
        max_limit: int,
        initial: int | None = None,
        min_limit: int = 1,
        backoff: float = DEFAULT_BACKOFF,
        tolerance: float = 0.2,
        window_s: float = 0.5,
        min_samples: int = 8,
        baseline_windows: int = 120,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
    ) -> None:
        super().__init__(
            max_limit=max_limit,
            initial=initial,
            min_limit=min_limit,
            backoff=backoff,
            max_retry_after_s=max_retry_after_s,
        )
        self.tolerance = check_positive(tolerance, "tolerance")
        self.window_s = check_seconds(window_s, "window_s")
        self.min_samples = check_count(min_samples, "min_samples", minimum=1)
        self.baseline_windows = check_count(baseline_windows, "baseline_windows", minimum=1)
        self._history: deque[float] = deque(maxlen=self.baseline_windows)
        self._epoch = -math.inf  # calls admitted before this saw an older limit
        self._opened: float | None = None  # when the window's first call ended
        self._rtts: list[float] = []
        self._in_flight_total = 0
        self._reached = False
        self._step = 1.0
        self._previous: tuple[float, float] | None = None  # (mean in flight, RTT) of the last cutting window
        self._stale = 0
        self._hold = 0  # windows to wait before the next increase
        self._rtt: float | None = None

    @property
    def rtt_s(self) -> float | None:
        """The last window's mean round-trip time."""
        return self._rtt

    @property
    def baseline_s(self) -> float | None:
        """What the backend answers in when nothing queues: a low percentile of the recent window RTTs."""
        return _low(self._history) if self._history else None

    def update(self, sample: Sample) -> str | None:
        if sample.signal == "ignore":
            return None
        if self.is_loss(sample):
            if not self._on_loss(sample):
                return None
            self._step, self._previous, self._stale = 1.0, None, 0
            self._changed(sample.finished)
            return sample.reason or sample.signal
        if sample.started < self._epoch:
            return None
        if self._opened is None:
            self._opened = sample.finished
        self._rtts.append(sample.rtt)
        self._in_flight_total += sample.in_flight
        self._reached = self._reached or sample.in_flight >= self._limit
        span = max(self.window_s, 2 * (self._rtt or 0.0))  # a window spans a few round trips
        if sample.finished - self._opened < span or len(self._rtts) < self.min_samples:
            return None
        return self._close(sample.finished)

    # --- one window ---------------------------------------------------------------------------------------
    def _close(self, now: float) -> str | None:
        rtt = statistics.fmean(self._rtts)
        in_flight = self._in_flight_total / len(self._rtts)
        reached = self._reached
        self._reset()
        self._rtt = rtt
        self._history.append(rtt)
        baseline = _low(self._history)
        if rtt > baseline * (1 + self.tolerance):
            return self._queueing(now, rtt, in_flight, baseline)
        self._previous, self._stale = None, 0
        if self._hold > 0:  # the last probe found a queue: stay a while before probing again
            self._hold -= 1
            return None
        if not reached or self.frozen(now):
            self._step = 1.0
            return None
        clear = rtt <= baseline * (
            1 + self.tolerance / 2
        )  # clear: probe faster; near the edge: one at a time
        step = self._step if clear else 1.0
        changed = self._set(self._estimate + step)
        self._step = min(step * 2, max(1.0, self._estimate / 2)) if clear else 1.0
        if changed:
            self._changed(now)
            return "increase"
        return None

    def _queueing(self, now: float, rtt: float, in_flight: float, baseline: float) -> str | None:
        previous = self._previous
        cut = self._estimate * (1 - MAX_CUT), min(self._estimate, in_flight * baseline / rtt)
        futile = previous is not None and (
            self._limit <= self._min or round(max(cut)) >= self._limit
        )  # no cut left
        held = previous is not None and in_flight <= previous[0] * LOAD_DROP and rtt >= previous[1] * RTT_HELD
        if futile or held:
            self._stale += 1
            if self._stale >= STALE_CUTS:  # our cuts do not move the RTT: it is the backend's new normal
                self._history.clear()
                self._history.append(rtt)
                self._previous, self._stale = None, 0
                return None
        else:
            self._stale = 0
        self._previous = (in_flight, rtt)
        self._step = 1.0
        if not self._set(max(cut)):
            return None
        self._hold = PROBE_HOLD
        self._changed(now)
        return "latency"

    def _changed(self, now: float) -> None:
        self._epoch = now
        self._reset()

    def _reset(self) -> None:
        self._opened = None
        self._rtts = []
        self._in_flight_total = 0
        self._reached = False


def _low(history: deque[float]) -> float:
    """The 10th percentile: as low as the backend answers without a queue, but not one lucky window."""
    ordered = sorted(history)
    return ordered[len(ordered) // 10]
