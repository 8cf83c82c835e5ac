"""Request bodies by media type: JSON, ``application/x-www-form-urlencoded``, ``multipart/form-data``, text and
raw bytes.

Form fields follow the OpenAPI Encoding Object: a property whose ``encoding`` gives a ``style`` (Stripe declares
``deepObject``, ``explode: true`` on every nested field) is serialised like a query parameter of that style —
``metadata[order_id]=6735``, ``items[0][price]=price_1``; otherwise its ``contentType`` decides, explicit or as
the specification defaults it (an object → JSON text, an array → its items repeated, a primitive → text).
This is where fastmcp's director is wrong for Stripe: it ignores ``style`` and sends ``metadata`` as JSON text.

Files in multipart bodies and ``application/octet-stream`` bodies are base64 strings in the arguments (the
argument schema says ``contentEncoding: base64``), or ``bytes``; each file is a part with a ``filename`` and its
document's media type (:mod:`~penguiflow.tools.transports.http.files`).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

from penguiflow.tools.transports.http.files import OCTET_STREAM, is_file, part_type
from penguiflow.tools.transports.http.operations import Body, Param
from penguiflow.tools.transports.http.serialize import ArgumentError, deep_pairs, query_pairs, scalar

__all__ = ["encode_body"]


def encode_body(body: Body, value: Any) -> tuple[bytes, str]:
    """``(content, Content-Type)`` of the request body ``value`` (the merged fields, or the ``body`` argument)."""
    kind = body.media_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        pairs = form_pairs(body, value)
        content = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
        return content.encode(), body.media_type
    if kind == "multipart/form-data":
        return _multipart(body, value)
    if kind.startswith("text/"):
        return scalar(value).encode(), body.media_type
    if kind == "application/json" or kind.endswith("+json"):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode(), body.media_type
    return _bytes("body", value), body.media_type if "*" not in kind else OCTET_STREAM


def form_pairs(body: Body, value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, Mapping):
        raise ArgumentError("a form body must be an object of fields")
    pairs: list[tuple[str, str]] = []
    for name, item in value.items():
        if item is None:
            continue
        encoding = body.encoding.get(name)
        encoding = encoding if isinstance(encoding, Mapping) else {}
        if "style" in encoding or "explode" in encoding:
            style = str(encoding.get("style") or "form")
            explode = encoding.get("explode")
            param = Param(
                name=name,
                location="query",
                argument=name,
                style=style,
                explode=(style == "form") if explode is None else bool(explode),
            )
            if style == "deepObject":
                pairs.extend(deep_pairs(name, item))
            else:
                pairs.extend((k, v) for k, v, _ in query_pairs(param, item))
        elif _json_field(encoding, body.properties.get(name), item):
            pairs.append((name, json.dumps(item, separators=(",", ":"), ensure_ascii=False)))
        elif isinstance(item, list):
            pairs.extend(
                (name, json.dumps(v, separators=(",", ":")) if isinstance(v, dict | list) else scalar(v))
                for v in item
            )
        else:
            pairs.append((name, scalar(item)))
    return pairs


def _json_field(encoding: Mapping[str, Any], schema: Any, value: Any) -> bool:
    content_type = encoding.get("contentType")
    if isinstance(content_type, str):
        base = content_type.split(";")[0].strip().lower()
        return base == "application/json" or base.endswith("+json")
    return isinstance(value, dict)  # the specification's default for an object: application/json


def _multipart(body: Body, value: Any) -> tuple[bytes, str]:
    if not isinstance(value, Mapping):
        raise ArgumentError("a multipart body must be an object of fields")
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, item in value.items():
        if item is None:
            continue
        schema = body.properties.get(name)
        encoding = body.encoding.get(name)
        if isinstance(encoding, Mapping) and encoding.get("style") == "deepObject" and not is_file(schema):
            # OAS 3.1 lets a multipart field take a style too: Stripe's file_link_data[create]=true parts
            for key, text in deep_pairs(name, item):
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(key)}"\r\n\r\n'.encode()
                    + text.encode()
                    + b"\r\n"
                )
            continue
        for piece in item if isinstance(item, list) and not is_file(schema) else [item]:
            if is_file(schema) or is_file(_items(schema)):
                data = _bytes(name, piece)
                media = part_type(encoding, schema if is_file(schema) else _items(schema))
                header = (
                    f'Content-Disposition: form-data; name="{_quoted(name)}"; filename="{_quoted(name)}"\r\n'
                    f"Content-Type: {media or OCTET_STREAM}\r\n"
                )
            elif isinstance(piece, dict | list):
                data = json.dumps(piece, separators=(",", ":"), ensure_ascii=False).encode()
                header = (
                    f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n'
                    f"Content-Type: {part_type(encoding, None) or 'application/json'}\r\n"
                )
            else:
                data = scalar(piece).encode()
                header = f'Content-Disposition: form-data; name="{_quoted(name)}"\r\n'
            parts.append(f"--{boundary}\r\n{header}\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _items(schema: Any) -> Any:
    return schema.get("items") if isinstance(schema, Mapping) else None


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def _bytes(name: str, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise ArgumentError(f"argument {name!r} must be a base64 string (file contents)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ArgumentError(f"argument {name!r} is not valid base64 (file contents)") from None
