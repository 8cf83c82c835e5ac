"""``@tool``: a plain Python function as a catalog entry.

The argument schema comes from the type hints (a pydantic model built from the signature, defaults honoured),
and calls are validated and coerced by that model. Native tools run with events, telemetry and a timeout but
**no** per-source limit, as the guide's diagram says: ``log_flow_events → CallerLimits → Timeout → function``
(the planner's Level 1 and 2 limits still apply through ``CallerLimits``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, create_model

from penguiflow.errors import ConfigurationError
from penguiflow.middleware import CallerLimits, Middleware, Stack, Timeout, log_flow_events
from penguiflow.middleware.stack import function_handler
from penguiflow.middleware.validation import check_name, check_seconds
from penguiflow.registry import ModelRegistry
from penguiflow.tools.catalog import ToolEntry
from penguiflow.tools.validation import with_validation

__all__ = ["NativeTool", "tool"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(eq=False)
class NativeTool(ToolEntry, Generic[P, R]):
    """A :class:`ToolEntry` for a Python function. Calling it directly calls the function, bypassing the
    stack (convenient in tests and scripts); ``await entry.invoke(arguments)`` runs it as a tool."""

    fn: Callable[P, R] = field(repr=False)
    args_model: type[BaseModel] = field(repr=False)
    timeout_s: float = 30.0

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)


def arguments_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of ``fn``'s keyword arguments; extra arguments are refused."""
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigurationError("fn", f"{name}: *args/**kwargs cannot be described as tool arguments")
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError("fn", f"{name}: positional-only parameters cannot be tool arguments")
        annotation = hints.get(parameter.name, parameter.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    model_name = "".join(part.capitalize() for part in name.replace("-", "_").replace(".", "_").split("_"))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{model_name}Arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


def _description(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.split("\n\n", 1)[0].strip()


def make_tool(
    fn: Callable[P, R],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = 30.0,
    layers: Sequence[Middleware] | None = None,
    idempotent: bool | None = None,
) -> NativeTool[P, R]:
    """The :class:`NativeTool` for ``fn``; ``layers`` replaces the default ``log_flow_events → CallerLimits →
    Timeout(timeout_s)``. ``idempotent`` tells a ``Retry`` layer whether re-sending a call is safe."""
    if not callable(fn):
        raise ConfigurationError("fn", f"must be a function, got {type(fn).__name__}")
    tool_name = check_name(name if name is not None else getattr(fn, "__name__", None), "name")
    seconds = check_seconds(timeout_s, "timeout_s")
    model = arguments_model(fn, tool_name)
    registry = ModelRegistry()
    registry.register(tool_name, model)
    chosen: list[Middleware] = (
        [log_flow_events(), CallerLimits(), Timeout(seconds)] if layers is None else list(layers)
    )
    stack = Stack(function_handler(fn), with_validation(chosen, registry), tool_type="function")
    return NativeTool(
        name=tool_name,
        description=description if description is not None else _description(fn),
        input_schema=registry.get(tool_name),
        source=None,
        stack=stack,
        fn=fn,
        args_model=model,
        timeout_s=seconds,
        idempotent=_check_idempotent(idempotent),
    )


def _check_idempotent(value: object) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError("idempotent", f"must be True, False or None, got {type(value).__name__}")
    return value


@overload
def tool(fn: Callable[P, R], /) -> NativeTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = 30.0,
    layers: Sequence[Middleware] | None = None,
    idempotent: bool | None = None,
) -> Callable[[Callable[P, R]], NativeTool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = 30.0,
    layers: Sequence[Middleware] | None = None,
    idempotent: bool | None = None,
) -> NativeTool[P, R] | Callable[[Callable[P, R]], NativeTool[P, R]]:
    """Turn an async or sync function into a catalog entry: ``@tool`` or ``@tool(name="local.summarize")``.

    >>> @tool(name="local.summarize", timeout_s=10)
    ... async def summarize(text: str, max_words: int = 50) -> str:
    ...     "Summarize a text."
    ...     return " ".join(text.split()[:max_words])
    >>> await summarize.invoke({"text": "..."})      # through the stack: validated, traced, timed
    >>> await summarize("...")                        # the plain function
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "timeout_s": timeout_s,
        "layers": layers,
        "idempotent": idempotent,
    }
    if fn is not None:
        return make_tool(fn, **options)

    def decorate(function: Callable[P, R]) -> NativeTool[P, R]:
        return make_tool(function, **options)

    return decorate
