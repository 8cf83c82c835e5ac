"""Argument checks shared by the layers: invalid values fail at construction, naming the field."""

from __future__ import annotations

import math

from penguiflow.errors import ConfigurationError


def check_count(value: object, field: str, *, minimum: int) -> int:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_seconds(value: object, field: str) -> float:
    """A finite number of seconds greater than zero."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(field, f"must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def check_name(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(field, f"must be a non-empty string, got {value!r}")
    return value
