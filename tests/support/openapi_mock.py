"""A validating mock of a real API: Prism (npm ``@stoplight/prism-cli``, pinned in ``.ci/npm/package.json``) serving
one of the real documents of ``../shared/specs/``, judging every request against it (``--errors``), and a
generator of arguments from a tool's argument schema.

Prism does not start on the full Stripe document in minutes (dependency-notes.md), so it serves a copy whose
*responses* are trimmed to their status codes (requests untouched): :func:`trimmed` also drops what only
responses use (examples, webhooks, schemas no request reaches). The document the transport reads is the same
trimmed copy, served over HTTP, so both sides judge by one text.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.npm import require_npm_bin
from tests.support.servers import servers_required

SPECS = Path(os.environ.get("PENGUIFLOW_SPECS_DIR", Path(__file__).resolve().parents[3] / "shared" / "specs"))
START_TIMEOUT_S = 180.0


def spec_path(name: str) -> Path:
    """``../shared/specs/<name>``, or the copy beside a clone (CI lays ``shared/`` beside the repository)."""
    for base in (
        SPECS,
        Path(__file__).resolve().parents[2].parent / "shared" / "specs",
        Path("/work/shared/specs"),
    ):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(f"API document {name} not found under {SPECS}")


def published(name: str) -> dict[str, Any]:
    """The document ``name`` as published (parsed); the test skips without it, or fails in CI."""
    try:
        path = spec_path(name)
    except FileNotFoundError as exc:  # the documents live in the project's shared/ folder, beside the clone
        if servers_required():
            pytest.fail(f"{exc}; PENGUIFLOW_REQUIRE_SERVERS=1")
        pytest.skip(str(exc))
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _refs(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "$ref" and isinstance(item, str) and item.startswith("#/components/schemas/"):
                    yield item.split("/")[3]
                elif isinstance(item, dict | list):
                    pending.append(item)
        elif isinstance(node, list):
            pending.extend(node)


def trimmed(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each response reduced to its status code and description (see the module docstring)."""
    doc = json.loads(json.dumps(document))
    for item in doc["paths"].values():
        for key in [key for key in item if key.startswith("x-")]:
            del item[key]
        for operation in item.values():
            for key in (
                [key for key in operation if key.startswith("x-")] if isinstance(operation, dict) else ()
            ):
                del operation[key]  # extensions (GitHub's x-github-breaking-changes) point at what is dropped
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"] = {code: {"description": "trimmed"} for code in operation["responses"]}
                body = operation.get("requestBody")
                for media in (body or {}).get("content", {}).values() if isinstance(body, dict) else ():
                    media.pop("examples", None)  # they point into components.examples, dropped below
    doc.pop("x-webhooks", None)
    components = doc.get("components", {})
    for section in ("examples", "responses", "headers"):
        components.pop(section, None)
    schemas = components.get("schemas", {})
    pending = [*_refs(doc["paths"]), *_refs(components.get("parameters", {}))]
    needed: set[str] = set()
    while pending:
        name = pending.pop()
        if name not in needed and name in schemas:
            needed.add(name)
            pending.extend(_refs(schemas[name]))
    components["schemas"] = {name: schema for name, schema in schemas.items() if name in needed}
    return doc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prism:
    """``prism mock --errors`` on ``document`` (written to ``directory``), started and stopped by its own pid."""

    def __init__(self, document: dict[str, Any], directory: Path) -> None:
        self.binary = require_npm_bin("prism", "@stoplight/prism-cli")
        self.path = directory / "document.json"
        self.path.write_text(json.dumps(document))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Prism:
        command = [
            str(self.binary),
            "mock",
            "--errors",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            str(self.path),
        ]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
        )
        ready = threading.Event()

        def pump() -> None:
            assert self._process is not None and self._process.stdout is not None
            for line in self._process.stdout:
                if "Prism is listening" in line:
                    ready.set()
                if "error" in line or "fatal" in line or "VALIDATOR" in line:
                    self.log.append(line.rstrip())

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"prism did not start: {self.log[-5:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# --- arguments from an argument schema ------------------------------------------------------------------------

# Candidates tried in turn against a string's pattern (the first that matches it, trimmed to its lengths).
_STRINGS = (
    "example", "abc", "a", "1", "2023-01-01T00:00:00Z", "2023-01-01", "main", "0" * 40, "a@b.co", "1.0.0",
    "refs/heads/main", "pkg:npm/example@1.0.0", "sha256:" + "a" * 64, "ssh-ed25519 AAAAexample",
)  # fmt: skip
_FORMATS = {
    "date-time": "2023-01-01T00:00:00Z",
    "date": "2023-01-01",
    "email": "octocat@example.com",
    "uri": "https://example.com/x",
    "url": "https://example.com/x",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "binary": "aGVsbG8=",
    "byte": "aGVsbG8=",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}


class Unsatisfiable(Exception):
    """The generator found no value for a schema (a pattern it cannot meet): a listed quirk, never silent."""


def example(schema: Any, defs: Mapping[str, Any], full: bool, depth: int = 0) -> Any:
    """A value valid for ``schema``: only required properties, or (``full``) every property, to depth 4."""
    if depth > 12 or schema is True or not isinstance(schema, Mapping):
        return "x"
    if "$ref" in schema:
        return example(defs[schema["$ref"].split("/")[2].replace("~1", "/")], defs, full, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        choices = [v for v in schema["enum"] if v not in ("", None)] or schema["enum"]
        return choices[0]
    if "default" in schema and not full and schema["default"] is not None:
        return schema["default"]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            branches = [b for b in schema[key] if not (isinstance(b, Mapping) and b.get("type") == "null")]
            if not branches:
                return None
            chosen = _merge(_without(schema, key), branches[0], defs)
            # the other branches' required names stay out, or a full object would match several branches
            others = {n for b in branches[1:] if isinstance(b, Mapping) for n in b.get("required", [])}
            chosen["x-exclude"] = sorted(others - set(chosen.get("required", [])))
            return example(chosen, defs, full, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = dict(_without(schema, "allOf"))
        for part in schema["allOf"]:
            merged = _merge(merged, part, defs)
        return example(merged, defs, full, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "null":
        return None
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        low = schema.get(
            "minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0)
        )
        high = schema.get("maximum")
        value = max(low, 1)
        if high is not None:
            value = min(value, high)
        return int(value) if kind == "integer" else float(value)
    if kind == "string":
        return _string(schema)
    if kind == "array":
        items = schema.get("items", {})
        # one item at least: an empty array has no form or query encoding at all (it is simply absent)
        count = max(int(schema.get("minItems", 0)), 1)
        values = [example(items, defs, full, depth + 1) for _ in range(count)]
        if schema.get("uniqueItems") and count > 1 and isinstance(values[0], int):
            values = list(range(1, count + 1))
        return values
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        excluded = set(schema.get("x-exclude", []))
        chosen = [
            name for name in properties if name in required or (full and depth < 4 and name not in excluded)
        ]
        if not chosen and properties and depth < 6:
            chosen = list(properties)[:1]  # an empty object is nothing at all on a form's wire
        return {name: example(properties[name], defs, full, depth + 1) for name in chosen}
    return "x"


def _merge(base: Mapping[str, Any], part: Any, defs: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` constrained by ``part`` as well (an ``allOf`` member, the chosen ``anyOf`` branch)."""
    if isinstance(part, Mapping) and "$ref" in part:
        part = defs[part["$ref"].split("/")[2].replace("~1", "/")]
    merged = dict(base)
    for key, value in part.items() if isinstance(part, Mapping) else ():
        if key == "properties":
            properties = dict(merged.get("properties", {}))
            for name, sub in value.items():
                properties[name] = _merge(properties[name], sub, defs) if name in properties else sub
            merged["properties"] = properties
        elif key == "required":
            merged["required"] = [*merged.get("required", []), *value]
        elif key in ("enum", "const", "type", "pattern", "format"):
            merged[key] = value  # the narrower word wins
        else:
            merged.setdefault(key, value)
    return merged


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _string(schema: Mapping[str, Any]) -> str:
    if schema.get("contentEncoding") == "base64":
        return "aGVsbG8="
    fmt = schema.get("format")
    pattern = schema.get("pattern")
    candidates = ([_FORMATS[fmt]] if fmt in _FORMATS else []) + list(_STRINGS)
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    for candidate in candidates:
        if len(candidate) < low:
            candidate = candidate + "a" * (low - len(candidate))
        if high is not None and len(candidate) > high:
            candidate = candidate[: int(high)]
        if pattern is None or re.search(pattern, candidate):
            return candidate
    raise Unsatisfiable(f"no example for pattern {pattern!r}")
