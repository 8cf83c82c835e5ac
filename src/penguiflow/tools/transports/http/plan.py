"""What of an operation's request is the same on every call, worked out once per operation.

Building a request used to re-derive, on every call, which parameters go in the path, the template's segments
and the names a body must not take; a :class:`Plan` holds them, so a call only substitutes its own values.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from penguiflow.tools.transports.http.operations import PLACEHOLDER, Operation, Param
from penguiflow.tools.transports.http.serialize import ArgumentError, path_value

__all__ = ["Plan"]


class Plan:
    """One operation's fixed parts: its path parameters by name, its other parameters, the arguments a body
    must not take, the path template's segments."""

    __slots__ = ("operation", "others", "path_params", "pieces", "taken", "template")

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.path_params: dict[str, Param] = {p.name: p for p in operation.params if p.location == "path"}
        self.others = tuple(p for p in operation.params if p.location != "path")
        self.taken = frozenset(p.argument for p in operation.params)
        self.template = operation.path.split("/")
        # The template cut at its placeholders: text, name, text, ..., text (PLACEHOLDER has one group), so a
        # call joins its values in without a regular-expression pass calling back into Python per placeholder.
        self.pieces = PLACEHOLDER.split(operation.path)

    def path(self, arguments: Any) -> str:
        """The operation's path with the call's path arguments in it; raises :class:`ArgumentError`."""
        if not self.path_params:
            return self.operation.path  # nothing to substitute: the template's own segments are its business
        values = self.path_params
        pieces = self.pieces
        parts = [pieces[0]]
        for index in range(1, len(pieces), 2):
            param = values[pieces[index]]
            value = arguments.get(param.argument)
            if value is None:
                raise ArgumentError(f"missing path argument {param.argument!r}")
            parts.append(path_value(param, value))
            parts.append(pieces[index + 1])
        path = "".join(parts)
        # Without a '.' or a '%' no segment is, or decodes to, a dot segment: most paths skip the walk.
        if "." in path or "%" in path:
            template = self.template  # the template's own dot segments are its business
            for index, segment in enumerate(path.split("/")):
                if unquote(segment) in (".", "..") and (index >= len(template) or template[index] != segment):
                    raise ArgumentError("the path arguments would make a '.' or '..' segment")
        return path
