"""Compiled argument checks: the fast answer to "are these arguments valid?" for :mod:`penguiflow.registry`.

``jsonschema`` walks a schema in Python on every call: ~90,000 instructions for a one-field schema, ~490,000 for
a seven-field one (callgrind, see docs/benchmarks.md). ``jsonschema-rs`` compiles a schema once, in Rust, and
answers in ~2,000–5,000 (``fastjsonschema``, which generates Python, takes ~9,000–33,000). Only its "valid" is
taken: arguments it rejects go on to ``jsonschema``, whose error (the shallowest path, the keyword, the
constraint) makes the message, so every message stays as it was. A schema it cannot compile offline — a
remote ``$ref``, a pattern its regex engine refuses — keeps ``jsonschema`` alone: it never fetches anything.

:func:`plain_json` is the fast half of the JSON check of external tools' arguments: ``True`` only for data that
is certainly JSON (plain dicts with string keys, lists, strings, finite numbers, booleans, ``None``), so the
caller's ``json.dumps`` check runs only for anything else (a tuple, a subclass, NaN), which it then judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["compiled", "plain_json"]


def compiled(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """``is_valid`` of ``schema`` compiled for Draft 2020-12 (as the registry validates), or ``None`` when it
    cannot be compiled offline (the caller then validates with ``jsonschema`` alone)."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a dependency; an environment without its wheel still works
        return None
    try:
        validator = jsonschema_rs.Draft202012Validator(dict(schema), offline=True)
    except Exception:  # unresolvable $ref, pattern it refuses, schema it rejects: jsonschema decides
        return None
    is_valid: Callable[[Any], bool] = validator.is_valid
    return is_valid


def plain_json(value: Any) -> bool:
    """Whether ``value`` is certainly JSON data (see the module docstring); ``False`` means "look closer"."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # finite: NaN and infinities give NaN
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None) and not plain_json(item):
                return False
        return True
    if kind is list:
        return all(plain_json(item) for item in value)
    return False
