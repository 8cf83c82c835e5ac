"""What one tool call becomes: an OpenAPI operation as :mod:`~penguiflow.tools.transports.http.discovery` read
it — its parameters (:class:`Param`), its request body (:class:`Body`) and the tool it is (:class:`Operation`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from penguiflow.tools.transports.base import ToolSpec

__all__ = ["PLACEHOLDER", "Body", "Operation", "Param", "ParseResult"]

PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
"""A path template's ``{name}``."""


@dataclass(frozen=True, slots=True)
class Param:
    """One OpenAPI parameter: where it goes and how it is serialised (defaults applied)."""

    name: str
    location: Literal["path", "query", "header", "cookie"]
    argument: str
    style: str
    explode: bool
    allow_reserved: bool = False
    json_content: bool = False  # ``content: {application/json: ...}`` instead of ``schema``


@dataclass(frozen=True, slots=True)
class Body:
    """The request body: its media type, how the arguments make it, and the form ``encoding`` object."""

    media_type: str
    shape: Literal["merged", "wrapped"]
    required: bool
    encoding: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)  # converted property schemas (form/multipart)


@dataclass(frozen=True, slots=True)
class Operation:
    """How to turn one tool call into one HTTP request."""

    spec: ToolSpec
    method: str
    path: str
    params: tuple[Param, ...] = ()
    body: Body | None = None
    security: tuple[Mapping[str, Any], ...] | None = None  # the operation's own ``security``, if it has one

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "path")

    @property
    def query_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "query")

    @property
    def header_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "header")


@dataclass(slots=True)
class ParseResult:
    operations: list[Operation]
    skipped: Counter[str] = field(default_factory=Counter)  # reason → how many
