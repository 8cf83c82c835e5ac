"""What an adaptive limit algorithm learns from one finished call (:class:`Sample`), and the algorithm protocol.

Algorithms are pure: they hold no clock and start no task. Every time they reason about comes from the samples
(``started``/``finished``, stamped by the layer with its own, injectable, clock), so a test drives an algorithm
with made-up times and gets the same answer every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Signal = Literal["ok", "overload", "timeout", "connection", "ignore"]
"""How a call ended, as far as the backend's capacity is concerned:

- ``ok``: the backend answered; the round-trip time is a latency sample;
- ``overload``: the backend said it is overloaded (a 429 or 503 by default);
- ``timeout``: the attempt ran past its timeout; ``connection``: the backend could not be reached;
- ``ignore``: tells nothing about capacity (a 404, a validation error, a cancelled call).
"""

LOSS_SIGNALS: frozenset[Signal] = frozenset({"overload", "timeout", "connection"})


@dataclass(frozen=True, slots=True)
class Sample:
    """One call, from the moment it got its slot to the moment it gave it back.

    ``in_flight`` counts the calls holding a slot when this one got its own, itself included: a call admitted at
    ``in_flight == limit`` took the last slot, which is how an algorithm tells a limit that binds from one that
    is not reached (and must not grow). ``reason`` is the low-cardinality label of a loss (``status_429``,
    ``timeout`` ...); ``retry_after`` the seconds a server asked us to wait, if it did.
    """

    started: float
    finished: float
    in_flight: int
    signal: Signal = "ok"
    reason: str = ""
    retry_after: float | None = None

    @property
    def rtt(self) -> float:
        return self.finished - self.started


class LimitAlgorithm(Protocol):
    """What :class:`~penguiflow.middleware.AdaptiveConcurrencyLimit` needs of an algorithm.

    ``update`` returns the reason of a change of :attr:`limit` (``None``: unchanged). ``rtt_s`` and
    ``baseline_s`` are the latency estimate's inputs, reported as gauges (``None`` when the algorithm has none).
    """

    @property
    def limit(self) -> int: ...
    @property
    def min_limit(self) -> int: ...
    @property
    def max_limit(self) -> int: ...
    @property
    def rtt_s(self) -> float | None: ...
    @property
    def baseline_s(self) -> float | None: ...

    def update(self, sample: Sample) -> str | None: ...
