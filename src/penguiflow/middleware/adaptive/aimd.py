"""Loss-based limits: the multiplicative back-off every algorithm shares, and :class:`Aimd` on top of it.

A loss (an overload status, a timeout, a connection failure) cuts the limit by ``backoff``, but only once per
round trip, as TCP does: a call admitted *before* the last cut saw the old, higher limit, so its loss is old news
and cutting again for it would collapse the limit after one burst of 429s. A ``Retry-After`` also freezes growth
until it has passed: the server said when to come back, probing earlier would only earn more 429s.
"""

from __future__ import annotations

import math

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.adaptive.sample import LOSS_SIGNALS, Sample
from penguiflow.middleware.validation import check_count, check_positive

DEFAULT_INITIAL = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_RETRY_AFTER_S = 60.0


def check_fraction(value: object, field: str) -> float:
    """A number in the open interval (0, 1)."""
    number = check_positive(value, field)
    if number >= 1:
        raise ConfigurationError(field, f"must be a number in (0, 1), got {value!r}")
    return number


def default_initial(min_limit: int, max_limit: int) -> int:
    """Start low and let the algorithm find the capacity: 4, within the bounds."""
    return max(min_limit, min(max_limit, DEFAULT_INITIAL))


class LossBackoff:
    """The limit, its bounds, and the reaction to losses; subclasses add how the limit grows.

    The estimate is a float (additive increases are fractions of a slot); the limit is the estimate rounded,
    within ``[min_limit, max_limit]``.
    """

    def __init__(
        self,
        *,
        max_limit: int,
        initial: int | None = None,
        min_limit: int = 1,
        backoff: float = DEFAULT_BACKOFF,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
    ) -> None:
        self._min = check_count(min_limit, "min_limit", minimum=1)
        self._max = check_count(max_limit, "max_limit", minimum=1)
        if self._max < self._min:
            raise ConfigurationError("max_limit", f"must be >= min_limit ({self._min}), got {max_limit!r}")
        start = default_initial(self._min, self._max) if initial is None else initial
        start = check_count(start, "initial", minimum=1)
        if not self._min <= start <= self._max:
            raise ConfigurationError("initial", f"must be within [{self._min}, {self._max}], got {start!r}")
        self.backoff = check_fraction(backoff, "backoff")
        self.max_retry_after_s = check_positive(max_retry_after_s, "max_retry_after_s", unit="seconds")
        self._estimate = float(start)
        self._limit = start
        self._last_cut = -math.inf  # when the limit was last cut for a loss
        self._frozen_until = -math.inf  # no growth before this (a Retry-After)

    # --- what the layer and the gauges read ------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def min_limit(self) -> int:
        return self._min

    @property
    def max_limit(self) -> int:
        return self._max

    @property
    def estimate(self) -> float:
        """The unrounded limit."""
        return self._estimate

    @property
    def rtt_s(self) -> float | None:
        return None

    @property
    def baseline_s(self) -> float | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self._limit}, bounds=[{self._min}, {self._max}])"

    # --- shared mechanics -----------------------------------------------------------------------------
    def frozen(self, now: float) -> bool:
        """Whether growth waits for a server's Retry-After to pass."""
        return now < self._frozen_until

    def _set(self, estimate: float) -> bool:
        """Move the estimate (clamped to the bounds); whether the limit changed."""
        self._estimate = min(float(self._max), max(float(self._min), estimate))
        limit = min(self._max, max(self._min, math.floor(self._estimate + 0.5)))
        changed = limit != self._limit
        self._limit = limit
        return changed

    def _on_loss(self, sample: Sample) -> bool:
        """Back off for a loss, unless the call was admitted before the last cut; whether the limit changed."""
        if sample.retry_after is not None and sample.retry_after > 0:
            until = sample.finished + min(sample.retry_after, self.max_retry_after_s)
            self._frozen_until = max(self._frozen_until, until)
        if sample.started < self._last_cut:
            return False
        self._last_cut = sample.finished
        return self._set(self._estimate * self.backoff)

    @staticmethod
    def is_loss(sample: Sample) -> bool:
        return sample.signal in LOSS_SIGNALS


class Aimd(LossBackoff):
    """Additive increase, multiplicative decrease, on losses only (429/503, timeouts, connection errors).

    Each success of a call that took the last slot (the limit binds) adds ``increase / limit``: about
    ``increase`` slots per limit's worth of calls, that is per round trip. A loss multiplies the limit by
    ``backoff``. No latency is measured: the limit settles where the backend starts refusing, so AIMD suits
    backends that refuse (rate-limited APIs) rather than ones that slow down.
    """

    def __init__(
        self,
        *,
        max_limit: int,
        initial: int | None = None,
        min_limit: int = 1,
        backoff: float = DEFAULT_BACKOFF,
        increase: float = 1.0,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
    ) -> None:
        super().__init__(
            max_limit=max_limit,
            initial=initial,
            min_limit=min_limit,
            backoff=backoff,
            max_retry_after_s=max_retry_after_s,
        )
        self.increase = check_positive(increase, "increase")

    def update(self, sample: Sample) -> str | None:
        if sample.signal == "ignore":
            return None
        if self.is_loss(sample):
            return sample.reason or sample.signal if self._on_loss(sample) else None
        if sample.in_flight < self._limit or self.frozen(sample.finished):
            return None  # under-utilised (the limit did not bind), or told to wait: no growth
        if self._set(self._estimate + self.increase / self._estimate):
            return "increase"
        return None
