"""Argument checks for the plug-in layers: a bad value fails at construction with a message naming the field.

(The core has its own checks, but they live in a private module; a plug-in uses only the public
:class:`penguiflow.errors.ConfigurationError`.)
"""

from __future__ import annotations

import math

from penguiflow.errors import ConfigurationError


def check_count(value: object, field: str, *, minimum: int) -> int:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(value: object, field: str) -> float:
    """A finite number greater than zero."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(field, f"must be a finite number > 0, got {value!r}")
    return float(value)


def check_optional_positive(value: object, field: str) -> float | None:
    return None if value is None else check_positive(value, field)


def check_name(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(field, f"must be a non-empty string, got {value!r}")
    return value


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigurationError(field, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)
