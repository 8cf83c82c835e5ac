"""``ModelRegistry``: the argument schema of every tool in a catalog, by catalog name.

A tool is registered with a JSON schema (what MCP, OpenAPI and UTCP sources describe) or a pydantic model
(native tools). :meth:`ModelRegistry.validate` checks a call's arguments before anything leaves the process and
raises :class:`~penguiflow.errors.ToolValidationError` naming the offending argument — never its value, which
may be sensitive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from penguiflow.errors import ConfigurationError, ToolNotFoundError, ToolValidationError
from penguiflow.validators import compiled

if TYPE_CHECKING:  # jsonschema loads with the first JSON-schema tool (pydantic-model tools never need it)
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.exceptions import ValidationError as SchemaValidationError

__all__ = ["ModelRegistry"]


class _Entry:
    __slots__ = ("checked", "is_valid", "model", "schema", "validator")

    def __init__(
        self, schema: dict[str, Any], model: type[BaseModel] | None, *, checked: bool = True
    ) -> None:
        self.schema = schema
        self.model = model
        # a deferred entry builds its validator with its check, off the loop, not at registration
        self.validator = None if model is not None or not checked else _validator_class()(schema)
        # The happy path's compiled check (see penguiflow.validators); jsonschema still words every error.
        self.is_valid = None if model is not None or not checked else compiled(schema)
        self.checked = checked

    def check(self, name: str) -> None:
        """The meta-schema check of a deferred registration (once); a bad schema fails the tool's calls."""
        if self.checked:
            return
        try:
            _validator_class().check_schema(self.schema)
        except _schema_error() as exc:
            raise ToolValidationError(
                f"{name}: the tool's argument schema is not a valid JSON schema ({exc.message})", tool=name
            ) from None
        except RecursionError:
            raise ToolValidationError(
                f"{name}: the tool's argument schema is nested too deeply", tool=name
            ) from None
        self.validator = _validator_class()(self.schema)
        self.is_valid = compiled(self.schema)
        self.checked = True


class ModelRegistry:
    """Argument schemas by tool name. Registering a name again replaces its schema (a reconnected source)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(
        self, name: str, schema: Mapping[str, Any] | type[BaseModel], *, defer_check: bool = False
    ) -> None:
        """Register ``name``'s arguments: a JSON schema (object) or a pydantic model class.

        A JSON schema is checked against the JSON Schema meta-schema now (``ConfigurationError``), or, with
        ``defer_check``, once before the tool's first validation (:meth:`prepare`, off the event loop): a source
        with a thousand tools must not pay a thousand meta-schema checks — seconds — at connect. A deferred
        schema that fails its check fails that tool's calls with ``ToolValidationError``."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name", f"must be a non-empty string, got {name!r}")
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._entries[name] = _Entry(schema.model_json_schema(), schema)
            return
        if not isinstance(schema, Mapping):
            raise ConfigurationError("schema", f"{name}: must be a JSON schema or a pydantic model class")
        document = dict(schema)
        if defer_check:
            self._entries[name] = _Entry(document, None, checked=False)
            return
        try:
            _validator_class().check_schema(document)
        except _schema_error() as exc:
            raise ConfigurationError("schema", f"{name}: not a valid JSON schema ({exc.message})") from None
        self._entries[name] = _Entry(document, None)

    def get(self, name: str) -> dict[str, Any]:
        """The JSON schema of ``name``'s arguments."""
        return self._entry(name).schema

    def model(self, name: str) -> type[BaseModel] | None:
        """The pydantic model ``name`` was registered with, if any."""
        return self._entry(name).model

    def pending(self, name: str) -> bool:
        """Whether ``name`` has a deferred schema check still to run (:meth:`prepare` runs it)."""
        entry = self._entries.get(name)
        return entry is not None and not entry.checked

    async def prepare(self, name: str) -> None:
        """Run a deferred schema check of ``name`` in a worker thread (a large schema takes tens of ms)."""
        entry = self._entries.get(name)
        if entry is not None and not entry.checked:
            await asyncio.to_thread(entry.check, name)

    def validate(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against ``name``'s schema and return the arguments to call with.

        A JSON schema leaves them as given; a pydantic model returns its validated (coerced) field values.
        """
        entry = self._entry(name)
        if entry.model is not None:
            try:
                validated = entry.model.model_validate(dict(arguments))
            except PydanticValidationError as exc:
                raise ToolValidationError(_pydantic_message(name, exc), tool=name) from None
            return {field: getattr(validated, field) for field in type(validated).model_fields}
        entry.check(name)
        if entry.is_valid is not None:
            try:
                if entry.is_valid(arguments):
                    return dict(arguments)
            except (
                TypeError,
                ValueError,
                OverflowError,
            ):  # not JSON-shaped (an int key...): jsonschema judges
                pass
        assert entry.validator is not None
        error = _first_error(entry.validator, arguments)
        if error is not None:
            raise ToolValidationError(_schema_message(name, error), tool=name)
        return dict(arguments)

    def names(self) -> list[str]:
        return list(self._entries)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ModelRegistry({len(self._entries)} tools)"

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ToolNotFoundError(f"{name}: no such tool in the registry", tool=name) from None


def _first_error(
    validator: Draft202012Validator, arguments: Mapping[str, Any]
) -> SchemaValidationError | None:
    errors: list[SchemaValidationError] = list(validator.iter_errors(dict(arguments)))
    if not errors:
        return None
    # The shallowest error names an argument of the call, which is what a caller (or an LLM) can fix.
    return min(errors, key=lambda error: len(error.absolute_path))


def _schema_message(tool: str, error: SchemaValidationError) -> str:
    # Built from the schema side (path, keyword, constraint), never from error.message, which quotes the value.
    path = ".".join(str(part) for part in error.absolute_path)
    keyword = str(error.validator)
    constraint: Any = error.validator_value
    schema: Any = error.schema
    if keyword == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in constraint if name not in error.instance]
        where = f"{path}." if path else ""
        return f"{tool}: missing required argument {where}{missing[0]!r}" if missing else f"{tool}: invalid"
    if keyword == "additionalProperties" and isinstance(error.instance, Mapping):
        known = set(schema.get("properties", {})) if isinstance(schema, Mapping) else set()
        extra = sorted(str(name) for name in error.instance if name not in known)
        where = f" in {path!r}" if path else ""
        return f"{tool}: unexpected argument(s){where}: {', '.join(repr(name) for name in extra)}"
    if not path:
        return f"{tool}: arguments fail {keyword!r} ({_short(constraint)})"
    return f"{tool}: argument {path!r} fails {keyword!r} ({_short(constraint)})"


def _short(constraint: Any) -> str:
    text = repr(constraint)
    return text if len(text) <= 80 else text[:77] + "..."


def _pydantic_message(tool: str, exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        path = ".".join(str(part) for part in error["loc"])
        parts.append(f"argument {path!r}: {error['msg']}")
    return f"{tool}: " + "; ".join(parts)


def _validator_class() -> type[Draft202012Validator]:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


def _schema_error() -> type[SchemaError]:
    from jsonschema.exceptions import SchemaError

    return SchemaError
