"""Telemetry: the names penguiflow emits (:mod:`.names`), and an optional SDK set-up helper for applications.

Library code records through the OpenTelemetry API only; nothing here installs a provider unless the
application calls :func:`configure`.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from penguiflow.errors import MissingExtraError
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
        try:
            from penguiflow.telemetry import setup
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("opentelemetry"):
                raise
            error = MissingExtraError(f"penguiflow.telemetry.{name}", "otel", exc.name)
            if name == "TelemetryHandle":
                raise error from exc
            return _unavailable(error)
        return getattr(setup, name)
    raise AttributeError(name)


def _unavailable(error: MissingExtraError) -> Callable[..., NoReturn]:
    """``configure`` without the SDK: importable (a module may import it for later), raising when called."""

    def configure(*_args: object, **_kwargs: object) -> NoReturn:
        raise error

    return configure
