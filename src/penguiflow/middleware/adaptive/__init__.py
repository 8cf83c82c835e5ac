"""Adaptive concurrency: limits that find a backend's capacity by themselves.

:class:`AdaptiveConcurrencyLimit` is a :class:`~penguiflow.middleware.ConcurrencyLimit` (same admission, same
telemetry) whose limit an algorithm moves from what each finished call tells: :class:`Gradient` (latency
against its no-queue baseline, and losses) or :class:`Aimd` (losses only). :class:`AdaptivePolicy` is the
config form (``ExternalToolConfig(adaptive=...)``). Algorithms are pure classes fed :class:`Sample` s.
"""

from penguiflow.middleware.adaptive.aimd import Aimd, LossBackoff
from penguiflow.middleware.adaptive.gradient import Gradient
from penguiflow.middleware.adaptive.layer import AdaptiveConcurrencyLimit
from penguiflow.middleware.adaptive.policy import ALGORITHMS, AdaptivePolicy
from penguiflow.middleware.adaptive.sample import LimitAlgorithm, Sample, Signal

__all__ = [
    "ALGORITHMS",
    "AdaptiveConcurrencyLimit",
    "AdaptivePolicy",
    "Aimd",
    "Gradient",
    "LimitAlgorithm",
    "LossBackoff",
    "Sample",
    "Signal",
]
