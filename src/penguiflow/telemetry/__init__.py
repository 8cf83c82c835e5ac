"""Telemetry: the names penguiflow emits (:mod:`.names`), and an optional SDK set-up helper for applications.

Library code records through the OpenTelemetry API only; nothing here installs a provider unless the
application calls :func:`configure`.
"""

from typing import TYPE_CHECKING

from penguiflow.telemetry.instruments import (
    create_instruments,
    get_meter,
    get_tracer,
    register_limiter,
    unregister_limiter,
)
from penguiflow.telemetry.logging import add_trace_ids

if TYPE_CHECKING:  # type checkers see the real signatures; at run time the SDK loads only when asked for
    from penguiflow.telemetry.setup import TelemetryHandle, configure

__all__ = [
    "TelemetryHandle",
    "add_trace_ids",
    "configure",
    "create_instruments",
    "get_meter",
    "get_tracer",
    "register_limiter",
    "unregister_limiter",
]


def __getattr__(name: str) -> object:
    # configure() imports the SDK, an optional dependency: load it only when asked for.
    if name in {"configure", "TelemetryHandle"}:
        from penguiflow.telemetry import setup

        return getattr(setup, name)
    raise AttributeError(name)
