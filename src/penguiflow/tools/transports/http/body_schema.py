"""How an operation's request body becomes arguments: its media type, chosen from ``requestBody.content`` in
:data:`MEDIA_PREFERENCE` order, and its shape. The body's properties are merged in as top-level arguments when
that loses nothing — an object schema with named properties, no ``oneOf``/``anyOf``/``allOf``/``not`` or other
object-level constraint at its top, names that do not clash with a parameter, and a required body or one without
required properties — otherwise the whole body is one ``body`` argument with its schema as the document gives
it. Raw bodies (``application/octet-stream``, ``text/plain``) are one argument of text or base64 text; the files
of a multipart body are base64 arguments (:mod:`~penguiflow.tools.transports.http.files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from penguiflow.tools.transports.http.files import file_arguments
from penguiflow.tools.transports.http.operations import Body
from penguiflow.tools.transports.http.schemas import Schemas

__all__ = ["MEDIA_PREFERENCE", "choose_media", "has_fields", "read_body"]

MEDIA_PREFERENCE: Final = (
    "json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
)
"""Request body media types in the order a tool prefers them (``json``: ``application/json`` and ``+json``)."""

# Object-level keywords that would be lost if the body's properties became separate arguments.
_UNFLATTENABLE: Final = frozenset(
    {
        "oneOf", "anyOf", "allOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
        "dependentRequired", "dependentSchemas", "minProperties", "maxProperties", "unevaluatedProperties",
        "$ref", "enum", "const",
    }
)  # fmt: skip


def read_body(
    schemas: Schemas,
    name: str,
    request_body: Mapping[str, Any],
    media_type: str,
    media: Mapping[str, Any],
    properties: dict[str, Any],
    required: list[str],
) -> tuple[Body, bool]:
    """The operation's :class:`Body`, its arguments added to ``properties`` and ``required`` (merged fields or
    one ``body`` argument), and whether the arguments stay closed (``additionalProperties: false``)."""
    body_required = request_body.get("required") is True
    schema = schemas.convert(media.get("schema"), name)
    if media_type in ("application/octet-stream", "text/plain") or media_type.endswith("/*"):
        schema = _as_payload(schema, media_type)
    shown = schemas.target(schema, name)
    declared = media.get("encoding")
    encoding: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
    body_properties = shown.get("properties") if isinstance(shown, Mapping) else None
    if _media_kind(media_type) == "multipart/form-data" and isinstance(body_properties, Mapping):
        body_properties = file_arguments(body_properties, encoding)  # files as base64 arguments
        if shown is schema:
            schema = shown = {**schema, "properties": body_properties}
    flattenable = (
        isinstance(body_properties, Mapping)
        and shown.get("type", "object") == "object"
        and not _UNFLATTENABLE & shown.keys()
        and isinstance(shown.get("additionalProperties", True), bool)
        and not set(body_properties) & set(properties)
        and (body_required or not shown.get("required"))
    )
    if flattenable:
        assert isinstance(body_properties, Mapping) and isinstance(shown, Mapping)
        properties.update(body_properties)
        required.extend(str(key) for key in shown.get("required") or [])
        closed = shown.get("additionalProperties") is False
        body = Body(media_type, "merged", body_required, encoding, dict(body_properties))
        return body, closed
    argument = "body" if "body" not in properties else "request_body"
    properties[argument] = schema
    if body_required:
        required.append(argument)
    wrapped_properties = shown.get("properties") if isinstance(shown, Mapping) else None
    body = Body(media_type, "wrapped", body_required, encoding, dict(wrapped_properties or {}))
    return body, True


def _media_kind(media_type: str) -> str | None:
    base = media_type.split(";")[0].strip().lower()
    if base == "application/json" or base.endswith("+json"):
        return "json"
    if base in MEDIA_PREFERENCE:
        return base
    if base in ("*/*", "application/*"):
        return "application/octet-stream"
    if base.startswith("text/"):
        return "text/plain"
    return None


def choose_media(content: Any) -> tuple[str, Mapping[str, Any]] | None:
    """The ``(media type, media object)`` to send, in :data:`MEDIA_PREFERENCE` order; ``None`` if none fits."""
    if not isinstance(content, Mapping):
        return None
    best: tuple[int, str, Mapping[str, Any]] | None = None
    for media_type, media in content.items():
        kind = _media_kind(str(media_type))
        if kind is None or not isinstance(media, Mapping):
            continue
        rank = MEDIA_PREFERENCE.index(kind)
        if best is None or rank < best[0]:
            best = (rank, str(media_type), media)
    return None if best is None else (best[1], best[2])


def has_fields(content: Any) -> bool:
    """Whether an unsupported body declares anything a caller could send (Stripe's empty form bodies do not)."""
    if not isinstance(content, Mapping):
        return False
    for media in content.values():
        schema = media.get("schema") if isinstance(media, Mapping) else None
        if isinstance(schema, Mapping) and (
            schema.get("properties") or "$ref" in schema or "type" not in schema
        ):
            return True
    return False


def _as_payload(schema: dict[str, Any], media_type: str) -> dict[str, Any]:
    """A raw body's argument: text for ``text/*``, base64 text for bytes (JSON cannot carry bytes)."""
    if media_type.startswith("text/"):
        return {"type": "string", **{k: v for k, v in schema.items() if k in ("description", "maxLength")}}
    return {
        "type": "string",
        "contentEncoding": "base64",
        "description": str(schema.get("description") or f"the {media_type} body, base64-encoded"),
    }
