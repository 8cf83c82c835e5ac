"""The compiled fast path of argument validation: valid arguments never reach jsonschema's Python walk, invalid
ones get jsonschema's wording as before, and schemas the compiled check cannot take offline keep the slow path."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


async def test_arguments_nested_deeper_than_the_walk_get_a_typed_error() -> None:
    from penguiflow.middleware import Call
    from penguiflow.tools.validation import ValidateArguments

    registry = ModelRegistry()
    registry.register("api.any", {"type": "object"})
    nested: Any = "leaf"
    for _ in range(
        100_000
    ):  # deeper than Python's recursion limit: the quick walk gives up, json.dumps judges
        nested = [nested]

    async def never(call: Call) -> Any:
        raise AssertionError("the call went on")

    with pytest.raises(ToolValidationError, match="argument 'payload' is not JSON data"):
        await ValidateArguments(registry)(Call("api.any", {"payload": nested}), never)


# The compiled check must never call valid what jsonschema rejects (that would weaken every tool's check): the
# two agree on random schemas of the keywords tool schemas use and on random JSON values.
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-5, 5, allow_nan=False)
    | st.text("ab", max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
    max_leaves=8,
)
_types = st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"])


def _schemas() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.fixed_dictionaries(
        {},
        optional={
            "type": _types | st.lists(_types, min_size=1, max_size=3, unique=True),
            "minimum": st.integers(-3, 3),
            "exclusiveMaximum": st.integers(-3, 3),
            "multipleOf": st.sampled_from([1, 2, 0.5]),
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(0, 3),
            "pattern": st.sampled_from(["^a", "b$", "a+b?"]),
            "enum": st.lists(_json, min_size=1, max_size=3),
            "const": _json,
            "minItems": st.integers(0, 2),
            "uniqueItems": st.booleans(),
        },
    )
    return st.recursive(
        leaf,
        lambda inner: st.fixed_dictionaries(
            {},
            optional={
                "properties": st.dictionaries(st.sampled_from("xyz"), inner, max_size=3),
                "required": st.lists(st.sampled_from("xyz"), max_size=3, unique=True),
                "additionalProperties": st.booleans() | inner,
                "items": inner,
                "anyOf": st.lists(inner, min_size=1, max_size=2),
                "oneOf": st.lists(inner, min_size=1, max_size=2),
                "not": inner,
            },
        ),
        max_leaves=6,
    )


@settings(max_examples=300, deadline=None, database=None)
@given(schema=_schemas(), instance=_json)
def test_the_compiled_check_agrees_with_jsonschema(schema: dict[str, Any], instance: Any) -> None:
    check = compiled(schema)
    assert check is not None, schema
    assert check(instance) == Draft202012Validator(schema).is_valid(instance), (schema, instance)
