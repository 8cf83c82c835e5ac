"""``Plan.path``: a call's path arguments put into the operation's template as the OpenAPI path styles say —
several placeholders in one segment, values percent-encoded whole, ``label`` and ``matrix`` prefixes — and a
``.``/``..`` segment refused whether a value is one or makes one with the template's own text."""

from __future__ import annotations

import re
from typing import Any

import pytest

from penguiflow.tools.transports.base import ToolSpec
from penguiflow.tools.transports.http.operations import Operation, Param
from penguiflow.tools.transports.http.plan import Plan
from penguiflow.tools.transports.http.serialize import ArgumentError


def plan(template: str, *params: tuple[str, str, bool]) -> Plan:
    """A GET operation on ``template`` with path parameters ``(name, style, explode)``."""
    return Plan(
        Operation(
            ToolSpec("op"),
            "GET",
            template,
            tuple(
                Param(name, "path", name.replace(" ", "_"), style, explode) for name, style, explode in params
            ),
        )
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("item-1", "/items/item-1"),
        ("a_b.c~d", "/items/a_b.c~d"),  # the characters quote() never encodes stay as they are
        ("a/b c?d#e", "/items/a%2Fb%20c%3Fd%23e"),
        ("café", "/items/caf%C3%A9"),
        ("100%", "/items/100%25"),
        (7, "/items/7"),
        (True, "/items/true"),
        ("", "/items/"),
    ],
)
def test_a_simple_value_is_percent_encoded_whole(value: Any, expected: str) -> None:
    assert plan("/items/{id}", ("id", "simple", False)).path({"id": value}) == expected


def test_placeholders_anywhere_in_the_template() -> None:
    p = plan("/v1/{a}.{b}/x{c}y", ("a", "simple", False), ("b", "simple", False), ("c", "simple", False))
    assert p.path({"a": "1", "b": "json", "c": "z z"}) == "/v1/1.json/xz%20zy"
    assert plan("/static").path({}) == "/static"


def test_label_and_matrix_prefixes_with_names_encoded() -> None:
    assert plan("/l/{id}", ("id", "label", False)).path({"id": 5}) == "/l/.5"
    assert plan("/m/{a b}", ("a b", "matrix", False)).path({"a_b": 5}) == "/m/;a%20b=5"
    assert plan("/m/{o}", ("o", "matrix", False)).path({"o": {"R": 1, "G": 2}}) == "/m/;o=R,1,G,2"
    assert plan("/l/{o}", ("o", "label", False)).path({"o": {"R": 1, "G": 2}}) == "/l/.R,1,G,2"
    assert plan("/m/{a}", ("a", "matrix", True)).path({"a": ["x", "y z"]}) == "/m/;a=x;a=y%20z"


@pytest.mark.parametrize("value", ["..", ".", "%2e", "%2E%2e", "%252e%252E", "a/../b", "a\\..\\b"])
def test_a_value_that_is_a_dot_segment_is_refused(value: str) -> None:
    with pytest.raises(ArgumentError, match="'id'"):
        plan("/items/{id}", ("id", "simple", False)).path({"id": value})


def test_a_value_that_makes_a_dot_segment_with_the_template_is_refused() -> None:
    p = plan("/files/.{ext}", ("ext", "simple", False))
    assert p.path({"ext": "txt"}) == "/files/.txt"
    with pytest.raises(ArgumentError, match=re.escape("would make a '.' or '..' segment")):
        p.path({"ext": ""})  # "/files/." leaves the operation's template
    # the template's own dot segments are the document's business
    assert plan("/a/./{x}", ("x", "simple", False)).path({"x": "b"}) == "/a/./b"


def test_a_missing_path_argument_is_named() -> None:
    with pytest.raises(ArgumentError, match="missing path argument 'id'"):
        plan("/items/{id}", ("id", "simple", False)).path({})
