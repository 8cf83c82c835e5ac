"""The plug-in layers' instruments, created once per process on penguiflow's public meter.

:func:`penguiflow.telemetry.get_meter` returns a meter through the global (possibly proxy) provider: created
before an application installs its SDK, these instruments start recording once it does; with no SDK at all
they are no-ops. Gauges are observed on collection from the live layers registered here (weakly: a layer that
is garbage-collected stops being reported).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from penguiflow.telemetry import create_instruments, get_meter
from penguiflow_middleware import names

Observer = Callable[[], Iterable[tuple[float, Mapping[str, Any]]]]


class _Instruments:
    def __init__(self) -> None:
        self._observers: dict[str, weakref.WeakSet[Any]] = {
            spec.name: weakref.WeakSet() for spec in names.METRICS if spec.kind == "gauge"
        }
        self.histograms, self.counters = create_instruments(get_meter(), names.METRICS, self._callback)

    def _callback(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            found: list[Observation] = []
            for owner in list(self._observers[metric]):
                for value, attributes in owner.observe(metric):
                    found.append(Observation(value, attributes))
            return found

        return observe

    def observe(self, metric: str, owner: Any) -> None:
        """Report ``owner.observe(metric)`` (pairs of value and attributes) through gauge ``metric``."""
        self._observers[metric].add(owner)

    def record(self, metric: str, value: float, attributes: Mapping[str, Any]) -> None:
        self.histograms[metric].record(value, attributes)

    def add(self, metric: str, value: int, attributes: Mapping[str, Any]) -> None:
        self.counters[metric].add(value, attributes)


_instruments: _Instruments | None = None


def instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        _instruments = _Instruments()
    return _instruments
