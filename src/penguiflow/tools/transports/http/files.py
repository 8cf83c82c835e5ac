"""Files: how a file field is an argument, and the ``filename`` and ``Content-Type`` of its multipart part.

A file field is one the document describes as bytes: ``format: binary`` or ``byte`` (OAS 3.0), or a
``contentMediaType`` (OAS 3.1). Tool arguments are JSON, which has no bytes, so its argument schema says
``contentEncoding: base64`` (and ``contentMediaType`` when the document names one type): the value is the
file's contents as base64 text. A Python caller may pass ``bytes`` instead; the node turns them into that text
before checking the arguments (:mod:`penguiflow.tools.validation`), and the body's encoder decodes it again
(:mod:`~penguiflow.tools.transports.http.bodies`).

In a ``multipart/form-data`` body each file is a part of its own, ``Content-Disposition: form-data; name=...;
filename=...``: documents never say a file name, and servers such as Stripe's take a part as a file only when it
has one, so it is the field's name. Its ``Content-Type`` is the one the document gives — the field's Encoding
Object ``contentType``, else the schema's ``contentMediaType`` — when that names a single media type; a list or a
range (``image/png, image/jpeg``, ``image/*``) names none we could claim, so the part is
``application/octet-stream``, as the specification's default for binary data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["OCTET_STREAM", "file_arguments", "is_file", "part_type"]

OCTET_STREAM: Final = "application/octet-stream"


def is_file(schema: Any) -> bool:
    """Whether ``schema`` (the document's, or our argument schema) describes a file's bytes."""
    return isinstance(schema, Mapping) and (
        schema.get("format") in ("binary", "byte")
        or schema.get("contentEncoding") == "base64"
        or ("contentMediaType" in schema and schema.get("type", "string") == "string")
    )


def _argument(schema: Mapping[str, Any], media_type: str | None) -> dict[str, Any]:
    described = str(schema.get("description") or "").strip()
    argument: dict[str, Any] = {
        "type": "string",
        "contentEncoding": "base64",
        "description": (described + " " if described else "") + "The file's contents, base64-encoded.",
    }
    if media_type is not None:
        argument["contentMediaType"] = media_type
    return argument


def file_arguments(properties: Mapping[str, Any], encoding: Mapping[str, Any]) -> dict[str, Any]:
    """The multipart body's ``properties`` with each file field (or array of files) as a base64 argument."""
    shown: dict[str, Any] = {}
    for name, schema in properties.items():
        field = encoding.get(name)
        if is_file(schema):
            shown[name] = _argument(schema, part_type(field, schema))
        elif isinstance(schema, Mapping) and schema.get("type") == "array" and is_file(schema.get("items")):
            items = schema["items"]
            shown[name] = {**schema, "items": _argument(items, part_type(field, items))}
        else:
            shown[name] = schema
    return shown


def part_type(encoding: Any, schema: Any) -> str | None:
    """The one media type the document gives a part (see the module docstring), or ``None``."""
    for declared in (
        encoding.get("contentType") if isinstance(encoding, Mapping) else None,
        schema.get("contentMediaType") if isinstance(schema, Mapping) else None,
    ):
        if isinstance(declared, str) and declared.strip():
            single = "," not in declared and "*" not in declared
            return declared.strip() if single else None
    return None
