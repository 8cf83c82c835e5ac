"""OpenAPI document → operations: one tool per operation, named by its ``operationId``.

Its arguments are the operation's path, query, header and cookie parameters plus its request body (how the body
becomes arguments: :mod:`~penguiflow.tools.transports.http.body_schema`). An operation
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
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from penguiflow.tools.transports.base import IDEMPOTENT_METHODS, ToolSpec
from penguiflow.tools.transports.http.body_schema import choose_media, has_fields, read_body
from penguiflow.tools.transports.http.document import OpenAPIError, check_document
from penguiflow.tools.transports.http.operations import PLACEHOLDER, Body, Operation, Param, ParseResult
from penguiflow.tools.transports.http.schemas import Schemas

__all__ = ["parse", "parse_openapi"]

_log = logging.getLogger("penguiflow.tools.http")

METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Headers an OpenAPI document may list that are never the caller's to set: credentials (auth_config sets them)
# and what the transport derives from the request itself.
TRANSPORT_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "content-type", "content-length", "accept", "host"}
)


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
            chosen = choose_media(request_body.get("content"))
            if chosen is None:
                types = sorted((request_body.get("content") or {}).keys()) or ["none"]
                if request_body.get("required") is not True and not has_fields(request_body.get("content")):
                    chosen = None  # an optional body with nothing in it: the operation simply sends none
                else:
                    reason = f"unsupported request body media type ({', '.join(types)})"
                    skipped[reason] += 1
                    _log.warning("%s: skipping operation %r: %s", self.source, name, reason)
                    return None
            if chosen is not None:
                body, closed = read_body(self.schemas, name, request_body, *chosen, properties, required)
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
