"""Argument schemas faithful to the document: OpenAPI schemas → JSON Schema 2020-12, ``$ref``\\ s kept as
``$defs``, the cost bounded.

fastmcp's converter (``fastmcp.utilities.openapi.convert_openapi_schema_to_json_schema``) does the keyword work:
OAS 3.0 ``nullable`` → type arrays (and ``null`` in an ``enum``), boolean ``exclusiveMinimum``/``Maximum`` →
numbers, ``readOnly`` properties removed from what a caller may send (also through a ``$ref``), OpenAPI-only
keywords dropped. Measured on the real documents it is right and cheap (Stripe's 819 components in 24 ms,
GitHub's 969 in 113 ms), so it is used as it is, with ``oneOf`` kept as ``oneOf`` (its default turns it into
``anyOf``, which lets through arguments the API refuses). What stays ours is what it does not do:

* a component is converted once, when an operation first needs it, not once per operation that uses it;
* ``#/components/schemas/X`` references become ``#/$defs/X`` and each tool carries only the definitions it
  reaches — a ``$ref`` that points nowhere or outside the document is an :class:`OpenAPIError` at connect;
* the expansion is bounded: at most :data:`MAX_DEFS` definitions in one tool and :data:`MAX_TOTAL_DEFS` over the
  whole document (a pathological ``$ref`` graph is a clear error, not minutes of work), and no JSON-schema
  meta-check at connect (the registry checks a tool's schema once, off the loop, before its first call).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote

from penguiflow.tools.transports.http.document import OpenAPIError

__all__ = ["MAX_DEFS", "MAX_TOTAL_DEFS", "Schemas"]

MAX_DEFS: Final = 2_000
"""The most ``components.schemas`` one tool's arguments may reach through ``$ref``\\ s (GitHub's largest: see
docs/benchmarks.md)."""
MAX_TOTAL_DEFS: Final = 400_000
"""The most definitions all the tools of one document may carry together: a bound on connect's work and memory
whatever the ``$ref`` graph."""
_SCHEMA_REF: Final = "#/components/schemas/"
_DEFS_REF: Final = "#/$defs/"


class _Definitions(dict[str, Any]):
    """The components with their references rewritten, for fastmcp's converter to look ``readOnly`` up through
    a ``$ref`` (it calls ``.get``); rewritten when first asked for."""

    def __init__(self, owner: Schemas) -> None:
        super().__init__()
        self._owner = owner

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self:
            raw = self._owner.raw.get(key)
            if raw is None:
                return default
            self[key] = self._owner.rewrite(raw, f"components.schemas.{key}")
        return self[key]


class Schemas:
    """The schemas of one document, converted on demand and shared between the tools that use them."""

    def __init__(self, document: Mapping[str, Any], source: str) -> None:
        self.source = source
        self.version = str(document.get("openapi", ""))
        components = document.get("components") or {}
        if not isinstance(components, Mapping):
            raise OpenAPIError(f"{source}: 'components' is not an object")
        self.components: Mapping[str, Any] = components
        raw = components.get("schemas") or {}
        if not isinstance(raw, Mapping):
            raise OpenAPIError(f"{source}: 'components.schemas' is not an object")
        self.raw: Mapping[str, Any] = raw
        self._definitions = _Definitions(self)
        self._converted: dict[str, Any] = {}
        self._refs: dict[str, frozenset[str]] = {}
        self.total_defs = 0

    def error(self, where: str, message: str) -> OpenAPIError:
        return OpenAPIError(f"{self.source}: operation {where!r}: {message}")

    # --- references ---------------------------------------------------------------------------------------
    def resolve(self, value: Any, section: str, where: str) -> Any:
        """Follow ``$ref``\\ s into ``components.{section}`` (parameters, requestBodies...), chains included."""
        for _ in range(32):
            if not (isinstance(value, Mapping) and "$ref" in value):
                return value
            ref = value["$ref"]
            prefix = f"#/components/{section}/"
            if not isinstance(ref, str) or not ref.startswith(prefix):
                raise self.error(where, f"unsupported $ref {ref!r} (only {prefix}… is resolved)")
            target = (self.components.get(section) or {}).get(_unescape(ref[len(prefix) :]))
            if target is None:
                raise self.error(where, f"$ref {ref!r} points to nothing")
            value = target
        raise self.error(where, f"a chain of more than 32 $refs in components.{section}")

    def target(self, schema: Any, where: str) -> Any:
        """The converted schema a top-level ``$ref`` (chain) leads to; ``schema`` itself when it is none."""
        for _ in range(32):
            ref = schema.get("$ref") if isinstance(schema, Mapping) else None
            if not isinstance(ref, str) or not ref.startswith(_DEFS_REF) or len(schema) != 1:
                return schema
            name, _, rest = ref[len(_DEFS_REF) :].partition("/")
            if rest:
                return schema
            schema = self.component(_unescape(name), where)
        return schema

    def rewrite(self, value: Any, where: str) -> Any:
        """A copy of ``value`` whose ``#/components/schemas/…`` references read ``#/$defs/…``; any other
        reference, or one that points to nothing, is an error now rather than on every call of the tool."""
        if isinstance(value, Mapping):
            return {
                key: self._ref(item, where) if key == "$ref" else self.rewrite(item, where)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.rewrite(item, where) for item in value]
        return value

    def _ref(self, ref: Any, where: str) -> str:
        if not isinstance(ref, str) or not ref.startswith(_SCHEMA_REF):
            raise self.error(where, f"unsupported $ref {ref!r}")
        rest = ref[len(_SCHEMA_REF) :]
        target: Any = self.raw
        for part in rest.split("/"):
            part = _unescape(part)
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise self.error(where, f"$ref {ref!r} points to nothing")
        return _DEFS_REF + rest

    # --- conversion ---------------------------------------------------------------------------------------
    def convert(self, value: Any, where: str) -> dict[str, Any]:
        """``value`` (an OpenAPI schema of the document) as JSON Schema 2020-12, references rewritten."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(where, "a schema is not an object")
        rewritten = self.rewrite(value, where)
        # imported here, in the worker thread that parses: importing fastmcp costs ~0.8 s of CPU (measured),
        # which on the first connect would otherwise run on the event loop
        from fastmcp.utilities.openapi import convert_openapi_schema_to_json_schema

        converted = convert_openapi_schema_to_json_schema(
            rewritten,
            self.version,
            remove_read_only=True,
            convert_one_of_to_any_of=False,
            definitions=self._definitions,
        )
        return dict(converted)

    def component(self, name: str, where: str) -> Any:
        if name not in self._converted:
            raw = self.raw.get(name)
            if raw is None:
                raise self.error(where, f"$ref {_SCHEMA_REF + name!r} points to nothing")
            if isinstance(raw, bool):
                self._converted[name] = raw
            else:
                self._converted[name] = self.convert(raw, f"{where}' via 'components.schemas.{name}")
        return self._converted[name]

    def defs_for(self, schema: Any, where: str) -> dict[str, Any]:
        """The converted components ``schema`` reaches, directly or through each other: a tool's ``$defs``."""
        used: dict[str, Any] = {}
        pending = list(_names(schema))
        while pending:
            name = pending.pop()
            if name in used:
                continue
            used[name] = self.component(name, where)
            if len(used) > MAX_DEFS:
                raise self.error(
                    where,
                    f"its arguments reach more than {MAX_DEFS} schemas through $ref (the expansion limit)",
                )
            refs = self._refs.get(name)
            if refs is None:
                refs = self._refs[name] = frozenset(_names(used[name]))
            pending.extend(refs)
        self.total_defs += len(used)
        if self.total_defs > MAX_TOTAL_DEFS:
            raise OpenAPIError(
                f"{self.source}: the document's $ref graph expands to more than {MAX_TOTAL_DEFS} schema "
                "definitions over its operations (the expansion limit)"
            )
        return used


def _unescape(part: str) -> str:
    return unquote(part).replace("~1", "/").replace("~0", "~")


def _names(value: Any) -> Iterator[str]:
    """The component names ``X`` of the ``#/$defs/X…`` references in a rewritten schema."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for key, item in node.items():
                if key == "$ref" and isinstance(item, str) and item.startswith(_DEFS_REF):
                    yield _unescape(item[len(_DEFS_REF) :].split("/", 1)[0])
                elif isinstance(item, Mapping | list):
                    pending.append(item)
        elif isinstance(node, list):
            pending.extend(item for item in node if isinstance(item, Mapping | list))
