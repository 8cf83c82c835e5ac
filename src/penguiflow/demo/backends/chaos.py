"""``ChaosConfig``: the faults the demo HTTP API's ``chaos`` operation injects, drawn from a seeded RNG per (key,
attempt), so a rerun injects the same faults into the same calls."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "ChaosConfig"]

FAULT_KINDS = ("rate_limited", "unavailable", "stall", "reset")


@dataclass(frozen=True)
class ChaosConfig:
    """The faults of the ``chaos`` operation, each with its probability per request.

    Each request draws one number from ``random.Random(f"{seed}/{key}/{attempt}")`` (``attempt`` counts the
    requests of that ``key``), so the faults are a function of the seed and the calls, not of timing:

    - ``rate_limited``: 429 with ``Retry-After: retry_after_s``;
    - ``unavailable``: 503;
    - ``stall``: no answer until the client hangs up (or ``stall_max_s``, or the server stops);
    - ``reset``: the connection is reset (TCP RST) without a byte of response;
    - otherwise the request succeeds after its ``ms`` query parameter.
    """

    seed: int = 0
    rate_limited: float = 0.0
    unavailable: float = 0.0
    stall: float = 0.0
    reset: float = 0.0
    retry_after_s: int = 1
    stall_max_s: float = 30.0

    def __post_init__(self) -> None:
        probabilities = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(not 0.0 <= p <= 1.0 for p in probabilities) or sum(probabilities) > 1.0:
            raise ValueError("fault probabilities must be in [0, 1] and sum to at most 1")
        if self.retry_after_s < 0 or self.stall_max_s <= 0:
            raise ValueError("retry_after_s must be >= 0 and stall_max_s > 0")

    def draw(self, key: str, attempt: int) -> str | None:
        """The fault for this request of ``key`` (``None``: answer normally)."""
        roll = random.Random(f"{self.seed}/{key}/{attempt}").random()
        for kind in FAULT_KINDS:
            probability: float = getattr(self, kind)
            if roll < probability:
                return kind
            roll -= probability
        return None
