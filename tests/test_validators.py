"""The compiled fast path of argument validation: valid arguments never reach jsonschema's Python walk, invalid
ones get jsonschema's wording as before, and schemas the compiled check cannot take offline keep the slow path."""

from __future__ import annotations

import math
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from penguiflow.errors import ToolValidationError
from penguiflow.registry import ModelRegistry
from penguiflow.validators import compiled, plain_json

SCHEMA = {
    "type": "object",
    "properties": {
        "item_id": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["item_id"],
    "additionalProperties": False,
}


@pytest.fixture
def no_jsonschema_walk(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records every walk of jsonschema over arguments of SCHEMA (the slow path; meta-schema checks aside)."""
    walked: list[Any] = []
    original = Draft202012Validator.iter_errors

    def iter_errors(self: Draft202012Validator, instance: Any, *args: Any, **kwargs: Any) -> Any:
        if self.schema == SCHEMA:
            walked.append(instance)
        return original(self, instance, *args, **kwargs)

    monkeypatch.setattr(Draft202012Validator, "iter_errors", iter_errors)
    return walked


@pytest.mark.parametrize("defer", [False, True])
def test_valid_arguments_skip_the_python_walk(no_jsonschema_walk: list[Any], defer: bool) -> None:
    registry = ModelRegistry()
    registry.register("api.get_item", SCHEMA, defer_check=defer)
    assert registry.validate("api.get_item", {"item_id": 3, "tags": ["a"]}) == {"item_id": 3, "tags": ["a"]}
    assert no_jsonschema_walk == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument 'item_id'"),
        ({"item_id": -1}, "argument 'item_id' fails 'minimum'"),
        ({"item_id": 1, "extra": 2}, "unexpected argument(s): 'extra'"),
        ({"item_id": True}, "argument 'item_id' fails 'type'"),  # a bool is no integer for either validator
        ({"item_id": 1, "tags": [1]}, "argument 'tags.0' fails 'type'"),
    ],
)
def test_invalid_arguments_keep_jsonschemas_message(
    no_jsonschema_walk: list[Any], arguments: dict[str, Any], message: str
) -> None:
    registry = ModelRegistry()
    registry.register("api.get_item", SCHEMA)
    with pytest.raises(ToolValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.validate("api.get_item", arguments)
    assert len(no_jsonschema_walk) == 1  # the compiled check said no; jsonschema worded it


def test_arguments_the_compiled_check_cannot_read_go_to_jsonschema() -> None:
    registry = ModelRegistry()
    registry.register("api.any", {"type": "object"})
    assert registry.validate("api.any", {1: "int key"}) == {1: "int key"}  # jsonschema's verdict, as before


def test_a_remote_ref_is_never_fetched_and_keeps_the_slow_path() -> None:
    schema = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/never.json"}}}
    assert compiled(schema) is None
    assert compiled({"type": 12}) is None  # not a schema: jsonschema's check reports it
    local = {"$defs": {"id": {"type": "integer"}}, "properties": {"x": {"$ref": "#/$defs/id"}}}
    check = compiled(local)
    assert check is not None and check({"x": 1}) and not check({"x": "one"})


@pytest.mark.parametrize(
    ("value", "certain"),
    [
        ({"a": "s", "b": 1, "c": 2.5, "d": True, "e": None, "f": [1, {"g": "h"}]}, True),
        ({"a": math.nan}, False),
        ({"a": math.inf}, False),
        ({"a": [math.nan]}, False),
        ({"a": {1, 2}}, False),
        ({"a": (1, 2)}, False),  # JSON can carry a tuple; json.dumps decides
        ({1: "int key"}, False),
        ({"a": object()}, False),
    ],
)
def test_plain_json_is_true_only_for_certain_json(value: Any, certain: bool) -> None:
    assert plain_json(value) is certain
