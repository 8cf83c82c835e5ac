"""Bounds on the attribute values penguiflow itself records, for values that come from outside.

A tool-call id is chosen by the LLM and a tool's name by the server that offers it: either can be megabytes.
:func:`bounded` cuts them before they become span names, span or event attributes, metric labels or log fields,
whatever SDK (and span limits) the application installed; ``configure()`` also sets the SDK's own limits
(:data:`MAX_ATTRIBUTE_LENGTH`) for every attribute, ours and the libraries'.
"""

from __future__ import annotations

from typing import Final

MAX_OWN_VALUE_CHARS: Final = 256
"""Longest id or name penguiflow records as it is; longer ones keep their start and say how long they were."""

MAX_ATTRIBUTE_LENGTH: Final = 4096
"""``configure()``'s span attribute value limit unless ``OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT`` says otherwise."""


def bounded(value: str) -> str:
    """``value``, or its first characters and its length when it is longer than :data:`MAX_OWN_VALUE_CHARS`."""
    if len(value) <= MAX_OWN_VALUE_CHARS:
        return value
    suffix = f"…[{len(value)} chars]"
    return value[: MAX_OWN_VALUE_CHARS - len(suffix)] + suffix
