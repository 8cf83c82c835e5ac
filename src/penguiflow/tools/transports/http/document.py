"""Reading an OpenAPI document: JSON or YAML, OpenAPI 3.0 or 3.1, without ever holding the event loop.

The transport calls :func:`load_document` in a worker thread. That alone is not enough: a C call holds the GIL
for as long as it runs, and ``json.loads`` of GitHub's 13 MB document takes ~130 ms in one piece, freezing the
loop for that long. :func:`decode_json` therefore decodes the document in slices — each path item, each
component, each webhook on its own (``JSONDecoder.raw_decode`` at an offset, no copying) — so the thread lets
the GIL go between slices and the longest stall is that of the largest single slice.

Swagger 2.0 documents are refused with a message saying so (converting them would be a project of its own).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from penguiflow.errors import ToolError

__all__ = ["OpenAPIError", "check_document", "decode_json", "load_document"]

_SPACE: Final = re.compile(r"[ \t\n\r]*")
_SLICED_DEPTH: Final = 3  # document → "paths" → "/path" (and components → schemas → Name): decoded per member
MAX_YAML_NODES: Final = 5_000_000
"""The most nodes a YAML document may expand to through its aliases (a "billion laughs" is refused)."""


class OpenAPIError(ToolError):
    """The source's OpenAPI document is unreadable or malformed; the message says where."""


def load_document(content: bytes, content_type: str | None, where: str) -> dict[str, Any]:
    """The OpenAPI 3 document in ``content`` (JSON, or YAML when it does not start like JSON); raises
    :class:`OpenAPIError` naming ``where``. Runs in a worker thread: nothing here touches the event loop."""
    try:
        text = _utf8(content)
    except UnicodeDecodeError:
        raise OpenAPIError(f"{where}: is not JSON (not UTF-8 text)") from None
    stripped = text.lstrip()
    media = (content_type or "").split(";")[0].strip().lower()
    looks_json = stripped[:1] in ("{", "[", '"') or "json" in media
    try:
        document = decode_json(text) if looks_json else _decode_yaml(text, where)
        if not looks_json and not isinstance(document, Mapping):
            raise OpenAPIError(f"{where}: is not JSON (nor a YAML mapping)")
    except RecursionError:
        raise OpenAPIError(f"{where}: nested too deeply to be read") from None
    except ValueError:
        raise OpenAPIError(f"{where}: is not JSON") from None
    check_document(document, where)
    return dict(document)


def _utf8(content: bytes) -> str:
    """``content.decode("utf-8-sig")`` a megabyte at a time (one C call per slice: the GIL is let go between)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    step = 1 << 20
    view = memoryview(content)
    parts = [decoder.decode(view[i : i + step]) for i in range(0, len(content), step)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def check_document(document: Any, where: str) -> None:
    """Refuse what is not an OpenAPI 3.0/3.1 document, saying what it is instead."""
    if not isinstance(document, Mapping):
        raise OpenAPIError(f"{where}: the OpenAPI document is not a JSON object")
    version = document.get("openapi")
    if version is None and "swagger" in document:
        raise OpenAPIError(
            f"{where}: not an OpenAPI 3 document (a Swagger {document.get('swagger')!r} document; convert it "
            "to OpenAPI 3, e.g. with swagger2openapi, and point openapi_url at the result)"
        )
    if not isinstance(version, str) or not re.match(r"3\.[01]\.", version + "."):
        raise OpenAPIError(f"{where}: not an OpenAPI 3 document (field 'openapi' is {version!r})")
    if not isinstance(document.get("paths"), Mapping):
        raise OpenAPIError(f"{where}: the OpenAPI document has no 'paths' object")


def decode_json(text: str) -> Any:
    """``json.loads(text)``, decoded in slices (see the module docstring); raises ``ValueError`` as it does."""
    decoder = json.JSONDecoder()
    index = _SPACE.match(text, 0).end()  # type: ignore[union-attr]  # the pattern matches the empty string
    value, index = _value(decoder, text, index, 0)
    index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
    if index != len(text):
        raise ValueError(f"extra data at {index}")
    return value


def _value(decoder: json.JSONDecoder, text: str, index: int, depth: int) -> tuple[Any, int]:
    if depth >= _SLICED_DEPTH or text[index : index + 1] != "{":
        return decoder.raw_decode(text, index)
    result: dict[str, Any] = {}
    index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    if text[index : index + 1] == "}":
        return result, index + 1
    while True:
        if text[index : index + 1] != '"':
            raise ValueError(f"expected a key at {index}")
        key, index = decoder.raw_decode(text, index)
        index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        if text[index : index + 1] != ":":
            raise ValueError(f"expected ':' at {index}")
        index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
        result[key], index = _value(decoder, text, index, depth + 1)
        index = _SPACE.match(text, index).end()  # type: ignore[union-attr]
        separator = text[index : index + 1]
        index = _SPACE.match(text, index + 1).end()  # type: ignore[union-attr]
        if separator == "}":
            return result, index
        if separator != ",":
            raise ValueError(f"expected ',' or '}}' at {index}")


def _decode_yaml(text: str, where: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise OpenAPIError(f"{where}: is neither JSON nor YAML{at}") from None
    _check_expansion(document, where)
    return document


def _check_expansion(document: Any, where: str) -> None:
    """YAML aliases let a small document stand for an exponentially large tree, which every later walk would
    pay for; count the nodes as the tree is seen and refuse past :data:`MAX_YAML_NODES`. Also makes the tree
    JSON data, as an OpenAPI document is: YAML's integer keys (``200:`` under ``responses``) and dates become
    strings."""
    pending = [document]
    seen = 0
    while pending:
        node = pending.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise OpenAPIError(f"{where}: its YAML aliases expand to more than {MAX_YAML_NODES} nodes")
        if isinstance(node, dict):
            if not all(isinstance(key, str) for key in node):
                items = [(_scalar(key), value) for key, value in node.items()]
                node.clear()
                node.update(items)
            for key, value in node.items():
                if isinstance(value, dict | list):
                    pending.append(value)
                elif not isinstance(value, str | int | float | bool | None):
                    node[key] = _scalar(value)
        elif isinstance(node, list):
            for position, value in enumerate(node):
                if isinstance(value, dict | list):
                    pending.append(value)
                elif not isinstance(value, str | int | float | bool | None):
                    node[position] = _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat() if callable(isoformat) else value)
