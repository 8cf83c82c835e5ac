"""Argument checks for layers, ours and yours: an invalid value fails at construction with a
:class:`~penguiflow.errors.ConfigurationError` naming the field.

Public: a custom layer validates its own arguments with these, so its errors read like the built-in ones.
"""

from __future__ import annotations

import math

from penguiflow.errors import ConfigurationError


def check_count(value: object, field: str, *, minimum: int) -> int:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(field, f"must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(value: object, field: str, *, unit: str = "") -> float:
    """A finite number greater than zero (``unit`` names what it counts in the message, e.g. ``"seconds"``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = f"number of {unit}" if unit else "number"
        raise ConfigurationError(field, f"must be a finite {what} > 0, got {value!r}")
    return float(value)


def check_optional_positive(value: object, field: str, *, unit: str = "") -> float | None:
    return None if value is None else check_positive(value, field, unit=unit)


def check_seconds(value: object, field: str) -> float:
    """A finite number of seconds greater than zero."""
    return check_positive(value, field, unit="seconds")


def check_name(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(field, f"must be a non-empty string, got {value!r}")
    return value


def check_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ConfigurationError(field, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)
