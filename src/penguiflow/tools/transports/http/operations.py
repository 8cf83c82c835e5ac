"""OpenAPI operations → tools: one tool per operation, named by its ``operationId``.

Its arguments are the operation's path, query, header and cookie parameters plus its request body. The body's
properties are merged in as top-level arguments when that loses nothing — an object schema with named
properties, no ``oneOf``/``anyOf``/``allOf``/``not`` or other object-level constraint at its top, names that do
not clash with a parameter, and a required body or one without required properties — otherwise the whole body is
one ``body`` argument with its schema as the document gives it.

The body's media type is chosen from ``requestBody.content`` in :data:`MEDIA_PREFERENCE` order. An operation
whose only media types are not supported is skipped with a WARNING naming it and the types, and the parse
returns how many were skipped and why; a document where every operation was skipped is an error.

fastmcp's parser (``fastmcp.utilities.openapi.parse_openapi_to_http_routes``) was measured against the real
documents before writing this: 3.1 s on Stripe (7.3 of 8.8 s profiled walking *response* schemas a client never
needs) and 1.2 s on GitHub, after validating the whole document with ``openapi-pydantic``; a failing operation
is logged and dropped rather than reported, and the media type is the first one listed. So discovery is ours;
the schema keyword conversion is fastmcp's (see :mod:`.schemas`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from penguiflow.tools.transports.base import IDEMPOTENT_METHODS, ToolSpec
from penguiflow.tools.transports.http.document import OpenAPIError, check_document
from penguiflow.tools.transports.http.files import file_arguments
from penguiflow.tools.transports.http.schemas import Schemas

__all__ = ["MEDIA_PREFERENCE", "Body", "Operation", "Param", "ParseResult", "parse_openapi"]

_log = logging.getLogger("penguiflow.tools.http")

METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
MEDIA_PREFERENCE: Final = (
    "json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
    "application/octet-stream",
)
"""Request body media types in the order a tool prefers them (``json``: ``application/json`` and ``+json``)."""
# Headers an OpenAPI document may list that are never the caller's to set: credentials (auth_config sets them)
# and what the transport derives from the request itself.
TRANSPORT_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "content-type", "content-length", "accept", "host"}
)
# Object-level keywords that would be lost if the body's properties became separate arguments.
_UNFLATTENABLE: Final = frozenset(
    {
        "oneOf", "anyOf", "allOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
        "dependentRequired", "dependentSchemas", "minProperties", "maxProperties", "unevaluatedProperties",
        "$ref", "enum", "const",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Param:
    """One OpenAPI parameter: where it goes and how it is serialised (defaults applied)."""

    name: str
    location: Literal["path", "query", "header", "cookie"]
    argument: str
    style: str
    explode: bool
    allow_reserved: bool = False
    json_content: bool = False  # ``content: {application/json: ...}`` instead of ``schema``


@dataclass(frozen=True, slots=True)
class Body:
    """The request body: its media type, how the arguments make it, and the form ``encoding`` object."""

    media_type: str
    shape: Literal["merged", "wrapped"]
    required: bool
    encoding: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)  # converted property schemas (form/multipart)


@dataclass(frozen=True, slots=True)
class Operation:
    """How to turn one tool call into one HTTP request."""

    spec: ToolSpec
    method: str
    path: str
    params: tuple[Param, ...] = ()
    body: Body | None = None
    security: tuple[Mapping[str, Any], ...] | None = None  # the operation's own ``security``, if it has one

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "path")

    @property
    def query_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "query")

    @property
    def header_params(self) -> tuple[str, ...]:
        return tuple(p.argument for p in self.params if p.location == "header")


@dataclass(slots=True)
class ParseResult:
    operations: list[Operation]
    skipped: Counter[str] = field(default_factory=Counter)  # reason → how many


def parse_openapi(
    document: Any, *, source: str, reserved_headers: Iterable[str] = (), reserved_cookies: Iterable[str] = ()
) -> list[Operation]:
    """The operations of an OpenAPI 3 ``document``; raises :class:`OpenAPIError` naming what is wrong."""
    return parse(document, source, reserved_headers, reserved_cookies).operations


def parse(
    document: Any,
    source: str,
    reserved_headers: Iterable[str] = (),
    reserved_cookies: Iterable[str] = (),
    *,
    keyed: bool = False,
) -> ParseResult:
    """:func:`parse_openapi` with the count of operations skipped, by reason. ``keyed``: every POST and PATCH
    will carry an idempotency key, which makes their tools idempotent."""
    try:
        check_document(document, source)
        reader = _Reader(
            Schemas(document, source),
            TRANSPORT_HEADERS | {name.lower() for name in reserved_headers},
            frozenset(reserved_cookies),
            IDEMPOTENT_METHODS | ({"POST", "PATCH"} if keyed else set()),
        )
        return reader.read(document["paths"])
    except RecursionError:  # schemas nested thousands deep
        raise OpenAPIError(f"{source}: the OpenAPI document is nested too deeply to be read") from None


class _Reader:
    def __init__(
        self,
        schemas: Schemas,
        reserved_headers: frozenset[str],
        reserved_cookies: frozenset[str],
        idempotent_methods: frozenset[str],
    ) -> None:
        self.schemas = schemas
        self.idempotent_methods = idempotent_methods
        self.source = schemas.source
        self.reserved_headers = reserved_headers
        self.reserved_cookies = reserved_cookies

    def read(self, paths: Mapping[str, Any]) -> ParseResult:
        result = ParseResult([])
        names: set[str] = set()
        unnamed: list[str] = []
        for path, item in paths.items():
            if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, Mapping):
                raise OpenAPIError(f"{self.source}: path {path!r} must start with '/' and map to an object")
            for method in METHODS:
                raw = item.get(method)
                if raw is None:
                    continue
                if not isinstance(raw, Mapping):
                    raise OpenAPIError(f"{self.source}: {method.upper()} {path} is not an object")
                operation_id = raw.get("operationId")
                if not isinstance(operation_id, str) or not operation_id:
                    unnamed.append(f"{method.upper()} {path}")
                    continue
                if operation_id in names:
                    raise OpenAPIError(f"{self.source}: operationId {operation_id!r} is used twice")
                names.add(operation_id)
                operation = self.operation(operation_id, method, path, item, raw, result.skipped)
                if operation is not None:
                    result.operations.append(operation)
        if unnamed:
            result.skipped["no operationId"] += len(unnamed)
            _log.warning(
                "%s: skipping %d operation(s) without an operationId: %s",
                self.source,
                len(unnamed),
                ", ".join(unnamed[:5]),
            )
        if not result.operations:
            if unnamed and not result.skipped.keys() - {"no operationId"}:
                raise OpenAPIError(
                    f"{self.source}: no operation has an 'operationId' (e.g. {unnamed[0]}); tools are named by it"
                )
            if result.skipped:
                reasons = "; ".join(f"{n} {reason}" for reason, n in result.skipped.most_common())
                raise OpenAPIError(f"{self.source}: every operation was skipped ({reasons})")
        return result

    def parameters(
        self, name: str, item: Mapping[str, Any], raw: Mapping[str, Any]
    ) -> list[Mapping[str, Any]]:
        found: dict[tuple[str, str], Mapping[str, Any]] = {}
        for group in (item.get("parameters") or [], raw.get("parameters") or []):
            if not isinstance(group, list):
                raise self.schemas.error(name, "'parameters' is not a list")
            for entry in group:
                parameter = self.schemas.resolve(entry, "parameters", name)
                if (
                    not isinstance(parameter, Mapping)
                    or not isinstance(parameter.get("name"), str)
                    or parameter.get("in") not in {"path", "query", "header", "cookie"}
                ):
                    raise self.schemas.error(
                        name, "a parameter needs a 'name' and 'in' of path|query|header|cookie"
                    )
                found[(parameter["in"], parameter["name"])] = parameter  # operation-level wins
        return list(found.values())

    def operation(
        self,
        name: str,
        method: str,
        path: str,
        item: Mapping[str, Any],
        raw: Mapping[str, Any],
        skipped: Counter[str],
    ) -> Operation | None:
        properties: dict[str, Any] = {}
        required: list[str] = []
        params: list[Param] = []
        for parameter in self.parameters(name, item, raw):
            param = self.param(name, parameter, properties)
            if param is None:
                continue
            schema = self.parameter_schema(name, parameter)
            properties[param.argument] = schema
            if param.location == "path" or parameter.get("required") is True:
                required.append(param.argument)
            params.append(param)
        missing = [
            p for p in PLACEHOLDER.findall(path) if p not in {q.name for q in params if q.location == "path"}
        ]
        if missing:
            raise self.schemas.error(name, f"path {path!r} has no path parameter for {missing}")
        body: Body | None = None
        closed = True
        request_body = self.schemas.resolve(raw.get("requestBody"), "requestBodies", name)
        if request_body is not None:
            if not isinstance(request_body, Mapping):
                raise self.schemas.error(name, "'requestBody' is not an object")
            chosen = _choose_media(request_body.get("content"))
            if chosen is None:
                types = sorted((request_body.get("content") or {}).keys()) or ["none"]
                if request_body.get("required") is not True and not _has_fields(request_body.get("content")):
                    chosen = None  # an optional body with nothing in it: the operation simply sends none
                else:
                    reason = f"unsupported request body media type ({', '.join(types)})"
                    skipped[reason] += 1
                    _log.warning("%s: skipping operation %r: %s", self.source, name, reason)
                    return None
            if chosen is not None:
                body, closed = self.body(name, request_body, *chosen, properties, required)
        input_schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            input_schema["required"] = list(dict.fromkeys(required))
        if closed:
            input_schema["additionalProperties"] = False
        defs = self.schemas.defs_for(input_schema, name)
        if defs:
            input_schema["$defs"] = defs
        description = raw.get("summary") or raw.get("description") or ""
        security = raw.get("security")
        return Operation(
            spec=ToolSpec(
                name=name,
                description=str(description),
                input_schema=input_schema,
                idempotent=method.upper() in self.idempotent_methods,
            ),
            method=method.upper(),
            path=path,
            params=tuple(params),
            body=body,
            security=tuple(security) if isinstance(security, list) else None,
        )

    def param(self, name: str, parameter: Mapping[str, Any], taken: Mapping[str, Any]) -> Param | None:
        location = parameter["in"]
        pname = parameter["name"]
        if location == "header" and pname.lower() in self.reserved_headers:
            return (
                None  # credentials and framing are the transport's business (auth_config), not the caller's
            )
        if location == "cookie" and pname in self.reserved_cookies:
            return None
        argument = pname if pname not in taken else f"{pname}__{location}"
        if argument in taken:
            raise self.schemas.error(name, f"parameter {pname!r} is declared twice in {location}")
        style = parameter.get("style") or {"path": "simple", "header": "simple"}.get(location, "form")
        explode = parameter.get("explode")
        return Param(
            name=pname,
            location=location,
            argument=argument,
            style=str(style),
            explode=bool(style == "form") if explode is None else bool(explode),
            allow_reserved=parameter.get("allowReserved") is True,
            json_content="schema" not in parameter and isinstance(parameter.get("content"), Mapping),
        )

    def parameter_schema(self, name: str, parameter: Mapping[str, Any]) -> dict[str, Any]:
        raw = parameter.get("schema")
        if raw is None and isinstance(parameter.get("content"), Mapping):
            media = next(iter(parameter["content"].values()), None)
            raw = media.get("schema") if isinstance(media, Mapping) else None
        schema = self.schemas.convert(raw, name)
        if "description" in parameter and "description" not in schema:
            schema["description"] = parameter["description"]
        return schema

    def body(
        self,
        name: str,
        request_body: Mapping[str, Any],
        media_type: str,
        media: Mapping[str, Any],
        properties: dict[str, Any],
        required: list[str],
    ) -> tuple[Body, bool]:
        body_required = request_body.get("required") is True
        schema = self.schemas.convert(media.get("schema"), name)
        if media_type in ("application/octet-stream", "text/plain") or media_type.endswith("/*"):
            schema = _as_payload(schema, media_type)
        shown = self.schemas.target(schema, name)
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


def _choose_media(content: Any) -> tuple[str, Mapping[str, Any]] | None:
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


def _has_fields(content: Any) -> bool:
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
