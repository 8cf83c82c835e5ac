"""``AdaptivePolicy``: which algorithm moves a limit, and its parameters, as a tool source's config holds them.

``ExternalToolConfig(max_concurrency=50, adaptive=True)`` takes the defaults; ``adaptive=AdaptivePolicy(
algorithm="aimd", backoff=0.7)`` picks another algorithm or tunes one. ``max_concurrency`` is the ceiling.
A parameter of the other algorithm (``tolerance`` with ``"aimd"``) is an error naming it, not silently unused.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.adaptive.aimd import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_RETRY_AFTER_S,
    Aimd,
    default_initial,
)
from penguiflow.middleware.adaptive.gradient import Gradient
from penguiflow.middleware.adaptive.sample import LimitAlgorithm

AlgorithmName = Literal["gradient", "aimd"]
ALGORITHMS: tuple[AlgorithmName, ...] = ("gradient", "aimd")
_ONLY: dict[str, AlgorithmName] = {
    "tolerance": "gradient",
    "window_s": "gradient",
    "min_samples": "gradient",
    "baseline_windows": "gradient",
    "increase": "aimd",
}


class AdaptivePolicy(BaseModel):
    """How an adaptive limit moves. Defaults suit backends answering in milliseconds to seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    algorithm: AlgorithmName = Field(
        "gradient",
        description="gradient: follows latency (queueing) and losses; aimd: losses only (429/503, timeouts, "
        "connection errors), for backends that refuse rather than slow down.",
    )
    initial: int | None = Field(
        None, ge=1, strict=True, description="The limit to start from; default 4 (within the bounds)."
    )
    min_limit: int = Field(1, ge=1, strict=True, description="The limit never goes below this.")
    backoff: float = Field(
        DEFAULT_BACKOFF, gt=0, lt=1, description="A loss multiplies the limit by this (once per round trip)."
    )
    backoff_on_status: tuple[int, ...] = Field(
        (429, 503), description="Statuses that mean 'overloaded'; timeouts and connection errors always do."
    )
    max_retry_after_s: float = Field(
        DEFAULT_MAX_RETRY_AFTER_S, gt=0, description="A Retry-After freezes growth for at most this long."
    )
    tolerance: float = Field(
        0.2, gt=0, le=10, description="gradient: RTT above baseline × (1 + tolerance) counts as queueing."
    )
    window_s: float = Field(0.5, gt=0, le=600, description="gradient: the shortest measurement window.")
    min_samples: int = Field(8, ge=1, strict=True, description="gradient: calls a window needs at least.")
    baseline_windows: int = Field(
        120, ge=1, strict=True, description="gradient: the baseline is the lowest RTT of this many windows."
    )
    increase: float = Field(1.0, gt=0, description="aimd: slots added per limit's worth of successful calls.")

    @field_validator("backoff_on_status")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for status in value:
            if isinstance(status, bool) or not 100 <= status <= 599:
                raise ValueError(f"{status!r} is not a status code (100..599)")
        return value

    @model_validator(mode="after")
    def _own_parameters(self) -> Self:
        for field in sorted(self.model_fields_set):
            owner = _ONLY.get(field)
            if owner is not None and owner != self.algorithm:
                raise ValueError(f"{field} is a parameter of algorithm {owner!r}, not {self.algorithm!r}")
        if self.initial is not None and self.initial < self.min_limit:
            raise ValueError(f"initial ({self.initial}) must be >= min_limit ({self.min_limit})")
        return self

    @classmethod
    def checked(cls, **fields: Any) -> AdaptivePolicy:
        """A policy from keyword arguments (``None`` = default); a bad one raises ``ConfigurationError``."""
        given = {key: value for key, value in fields.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "algorithm"
            raise ConfigurationError(field, error["msg"]) from None

    def bounds_error(self, max_limit: int) -> tuple[str, str] | None:
        """``(field, message)`` if this policy does not fit under the ceiling ``max_limit``, else ``None``."""
        if self.min_limit > max_limit:
            return "min_limit", f"must be <= the ceiling ({max_limit}), got {self.min_limit}"
        if self.initial is not None and self.initial > max_limit:
            return "initial", f"must be <= the ceiling ({max_limit}), got {self.initial}"
        return None

    def start(self, max_limit: int) -> int:
        """The limit a new algorithm of this policy starts at under ``max_limit``."""
        return self.initial if self.initial is not None else default_initial(self.min_limit, max_limit)

    def build(self, max_limit: int) -> LimitAlgorithm:
        """A fresh algorithm of this policy, its ceiling ``max_limit``."""
        problem = self.bounds_error(max_limit)
        if problem is not None:
            raise ConfigurationError(*problem)
        common: dict[str, Any] = {
            "max_limit": max_limit,
            "initial": self.start(max_limit),
            "min_limit": self.min_limit,
            "backoff": self.backoff,
            "max_retry_after_s": self.max_retry_after_s,
        }
        if self.algorithm == "aimd":
            return Aimd(**common, increase=self.increase)
        return Gradient(
            **common,
            tolerance=self.tolerance,
            window_s=self.window_s,
            min_samples=self.min_samples,
            baseline_windows=self.baseline_windows,
        )
