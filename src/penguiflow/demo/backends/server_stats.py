"""``ServerStats``: what the demo HTTP API saw, per operation — in flight now, peak in flight, total, headers —
the server-side ground truth that a client-side limit is really enforced."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

__all__ = ["OVERALL", "ServerStats"]

OVERALL = "*"
_HEADER_HISTORY = 500


@dataclass
class _Counter:
    in_flight: int = 0
    peak: int = 0
    count: int = 0


class ServerStats:
    """Requests per operation as the server saw them: in flight now, peak in flight, total, and headers.

    Thread-safe: the server thread writes, tests read. ``"*"`` is every measured operation together.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = defaultdict(_Counter)
        self._headers: dict[str, deque[dict[str, str]]] = defaultdict(lambda: deque(maxlen=_HEADER_HISTORY))
        self._attempts: dict[tuple[str, str], int] = defaultdict(int)
        self._faults: Counter[str] = Counter()

    def enter(self, operation: str, headers: dict[str, str]) -> int:
        """Count a request in; returns the operation's in-flight count including it."""
        with self._lock:
            self._headers[operation].append(headers)
            for key in (operation, OVERALL):
                counter = self._counters[key]
                counter.in_flight += 1
                counter.count += 1
                counter.peak = max(counter.peak, counter.in_flight)
            return self._counters[operation].in_flight

    def leave(self, operation: str) -> None:
        with self._lock:
            self._counters[operation].in_flight -= 1
            self._counters[OVERALL].in_flight -= 1

    def attempt(self, operation: str, key: str) -> int:
        """The 1-based number of this request for ``key`` of ``operation`` (flaky's memory)."""
        with self._lock:
            self._attempts[(operation, key)] += 1
            return self._attempts[(operation, key)]

    def fault(self, kind: str) -> None:
        """Count one fault the ``chaos`` operation injected (one of :data:`FAULT_KINDS`)."""
        with self._lock:
            self._faults[kind] += 1

    def faults(self) -> dict[str, int]:
        """Faults injected so far, by kind."""
        with self._lock:
            return dict(self._faults)

    def in_flight(self, operation: str = OVERALL) -> int:
        with self._lock:
            return self._counters[operation].in_flight

    def peak(self, operation: str = OVERALL) -> int:
        with self._lock:
            return self._counters[operation].peak

    def count(self, operation: str = OVERALL) -> int:
        with self._lock:
            return self._counters[operation].count

    def headers(self, operation: str) -> list[dict[str, str]]:
        """Headers (lower-cased names) of the latest requests of ``operation``, oldest first."""
        with self._lock:
            return list(self._headers[operation])

    def reset(self) -> None:
        """Forget counts, peaks, headers and flaky attempts (requests in flight stay counted as in flight)."""
        with self._lock:
            for counter in self._counters.values():
                counter.peak = counter.in_flight
                counter.count = 0
            self._headers.clear()
            self._attempts.clear()
            self._faults.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "operations": {
                    name: {"in_flight": c.in_flight, "peak": c.peak, "count": c.count}
                    for name, c in self._counters.items()
                    if name != OVERALL
                },
                "overall": {
                    "in_flight": self._counters[OVERALL].in_flight,
                    "peak": self._counters[OVERALL].peak,
                    "count": self._counters[OVERALL].count,
                },
            }
