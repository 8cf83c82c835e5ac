"""``HttpTransport``: the tools of an HTTP API, discovered from its OpenAPI 3 document.

One tool per operation, named by its ``operationId``; its arguments are the operation's path and query
parameters plus the JSON request body — the body's properties are merged in as top-level arguments when they are
an object whose names do not clash with a parameter, otherwise the whole body is one ``body`` argument.

One pooled ``httpx.AsyncClient`` per transport, sized from ``max_concurrency`` so the node's own limit, not the
pool, decides how many requests run. Status codes become the typed errors the retry layer reads: 429 →
:class:`~penguiflow.errors.ToolRateLimitedError` (with ``Retry-After``), 5xx → ``ToolServerError``, other 4xx →
``ToolClientError``. The W3C ``traceparent`` of the current span goes out with every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from opentelemetry import propagate, trace

from penguiflow.errors import (
    ToolClientError,
    ToolConnectionError,
    ToolError,
    ToolNotFoundError,
    ToolRateLimitedError,
    ToolServerError,
    ToolStatusError,
    ToolTimeoutError,
    ToolValidationError,
)
from penguiflow.middleware.retry import parse_retry_after
from penguiflow.telemetry import names
from penguiflow.tools.config import ExternalToolConfig
from penguiflow.tools.transports.base import IDEMPOTENT_METHODS, ToolSpec, shorten

__all__ = ["MAX_DOCUMENT_BYTES", "HttpTransport", "OpenAPIError", "Operation", "parse_openapi"]

_log = logging.getLogger("penguiflow.tools.http")

_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
_SCHEMA_REF: Final = "#/components/schemas/"
_BODY_WINDOW: Final = 65536
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
"""The largest OpenAPI document a transport reads (a module setting: a test or an application may change it)."""


class OpenAPIError(ToolError):
    """The source's OpenAPI document is unreadable or malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Operation:
    """How to turn one tool call into one HTTP request."""

    spec: ToolSpec
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body: Literal["none", "merged", "wrapped"]
    header_params: tuple[str, ...] = ()


# --- OpenAPI → tools -------------------------------------------------------------------------------------------


def parse_openapi(document: Any, *, source: str, reserved_headers: Iterable[str] = ()) -> list[Operation]:
    """The operations of an OpenAPI 3 ``document``; raises :class:`OpenAPIError` naming what is wrong.

    Header parameters become arguments sent as headers, except credentials and framing headers and the
    ``reserved_headers`` (the source's own auth header, e.g. an API-key header), which the transport sets.

    An operation without an ``operationId`` has no tool name: it is skipped with a warning, and a document
    whose operations all lack one is an error (a source with no tools would leave a planner empty-handed)."""
    try:
        return _parse(document, source, frozenset(name.lower() for name in reserved_headers))
    except RecursionError:  # schemas nested thousands deep
        raise OpenAPIError(f"{source}: the OpenAPI document is nested too deeply to be read") from None


def _parse(document: Any, source: str, reserved_headers: frozenset[str]) -> list[Operation]:
    if not isinstance(document, Mapping):
        raise OpenAPIError(f"{source}: the OpenAPI document is not a JSON object")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise OpenAPIError(f"{source}: not an OpenAPI 3 document (field 'openapi' is {version!r})")
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        raise OpenAPIError(f"{source}: the OpenAPI document has no 'paths' object")
    components = document.get("components") or {}
    if not isinstance(components, Mapping):
        raise OpenAPIError(f"{source}: 'components' is not an object")
    reader = _Reader(source, components, _TRANSPORT_HEADERS | reserved_headers)
    operations: dict[str, Operation] = {}
    unnamed: list[str] = []
    for path, item in paths.items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, Mapping):
            raise OpenAPIError(f"{source}: path {path!r} must start with '/' and map to an object")
        for method in _METHODS:
            raw = item.get(method)
            if raw is None:
                continue
            if not isinstance(raw, Mapping):
                raise OpenAPIError(f"{source}: {method.upper()} {path} is not an object")
            operation_id = raw.get("operationId")
            if not isinstance(operation_id, str) or not operation_id:
                unnamed.append(f"{method.upper()} {path}")
                continue
            if operation_id in operations:
                raise OpenAPIError(f"{source}: operationId {operation_id!r} is used twice")
            operation = reader.operation(operation_id, method, path, item, raw)
            if operation is not None:
                operations[operation_id] = operation
    if unnamed:
        if not operations:
            raise OpenAPIError(
                f"{source}: no operation has an 'operationId' (e.g. {unnamed[0]}); tools are named by it"
            )
        _log.warning(
            "%s: skipping %d operation(s) without an operationId: %s",
            source,
            len(unnamed),
            ", ".join(unnamed[:5]),
        )
    return list(operations.values())


class _Reader:
    def __init__(self, source: str, components: Mapping[str, Any], reserved_headers: frozenset[str]) -> None:
        self.source = source
        self.reserved_headers = reserved_headers
        self.components = components
        schemas = components.get("schemas") or {}
        if not isinstance(schemas, Mapping):
            raise OpenAPIError(f"{source}: 'components.schemas' is not an object")
        self.schemas = schemas
        self._defs: dict[str, Any] | None = None

    def used_defs(self, schema: Any, where: str) -> dict[str, Any]:
        """The rewritten ``components.schemas`` that ``schema`` references, directly or through each other: the
        ``$defs`` of an argument schema. Only those: a document with thousands of operations and schemas must
        not copy (and check) every schema into every operation."""
        if self._defs is None:
            self._defs = {key: self.schema(value, where) for key, value in self.schemas.items()}
        used: dict[str, Any] = {}
        pending = list(_defs_referenced(schema))
        while pending:
            key = pending.pop()
            if key not in used and key in self._defs:
                used[key] = self._defs[key]
                pending.extend(_defs_referenced(used[key]))
        return used

    def error(self, where: str, message: str) -> OpenAPIError:
        return OpenAPIError(f"{self.source}: operation {where!r}: {message}")

    def resolve(self, value: Any, section: str, where: str) -> Any:
        """Follow a ``$ref`` into ``components.{section}`` (one level: what parameters and bodies use)."""
        if isinstance(value, Mapping) and "$ref" in value:
            ref = value["$ref"]
            prefix = f"#/components/{section}/"
            if not isinstance(ref, str) or not ref.startswith(prefix):
                raise self.error(where, f"unsupported $ref {ref!r} (only {prefix}… is resolved)")
            target = (self.components.get(section) or {}).get(ref[len(prefix) :])
            if target is None:
                raise self.error(where, f"$ref {ref!r} points to nothing")
            return target
        return value

    def schema(self, value: Any, where: str) -> dict[str, Any]:
        """A copy of a schema whose ``#/components/schemas/X`` references point to ``#/$defs/X``."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(where, "a schema is not an object")
        return dict(_rewrite_refs(value, lambda ref: self.check_ref(ref, where)))

    def check_ref(self, ref: Any, where: str) -> str:
        """``ref`` rewritten to ``#/$defs/…``; one that is not ``#/components/schemas/…`` or points to nothing
        is an error now, at connect, rather than an unresolvable reference on every call of the tool."""
        if not isinstance(ref, str) or not ref.startswith(_SCHEMA_REF):
            raise self.error(where, f"unsupported $ref {ref!r}")
        rest = ref[len(_SCHEMA_REF) :]
        target: Any = self.schemas
        for part in rest.split("/"):
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise self.error(where, f"$ref {ref!r} points to nothing")
        return "#/$defs/" + rest

    def operation(
        self, name: str, method: str, path: str, item: Mapping[str, Any], raw: Mapping[str, Any]
    ) -> Operation | None:
        parameters: dict[tuple[str, str], Mapping[str, Any]] = {}
        for group in (item.get("parameters") or [], raw.get("parameters") or []):
            if not isinstance(group, list):
                raise self.error(name, "'parameters' is not a list")
            for entry in group:
                parameter = self.resolve(entry, "parameters", name)
                if (
                    not isinstance(parameter, Mapping)
                    or not isinstance(parameter.get("name"), str)
                    or parameter.get("in") not in {"path", "query", "header", "cookie"}
                ):
                    raise self.error(name, "a parameter needs a 'name' and 'in' of path|query|header|cookie")
                parameters[(parameter["in"], parameter["name"])] = parameter  # operation-level wins
        properties: dict[str, Any] = {}
        required: list[str] = []
        path_params: list[str] = []
        query_params: list[str] = []
        header_params: list[str] = []
        for (location, pname), parameter in parameters.items():
            if location == "cookie" or (location == "header" and pname.lower() in self.reserved_headers):
                continue  # credentials and framing are the transport's business (auth_config), not the caller's
            if location == "header" and pname in properties:
                _log.warning(
                    "%s: %s: header %r shadows an argument of that name; ignored", self.source, name, pname
                )
                continue
            schema = self.schema(parameter.get("schema"), name)
            if "description" in parameter and "description" not in schema:
                schema["description"] = parameter["description"]
            properties[pname] = schema
            if location == "path" or parameter.get("required") is True:
                required.append(pname)
            {"path": path_params, "query": query_params, "header": header_params}[location].append(pname)
        placeholders = _PLACEHOLDER.findall(path)
        missing = [placeholder for placeholder in placeholders if placeholder not in path_params]
        if missing:
            raise self.error(name, f"path {path!r} has no path parameter for {missing}")
        body: Literal["none", "merged", "wrapped"] = "none"
        closed = True
        request_body = self.resolve(raw.get("requestBody"), "requestBodies", name)
        if request_body is not None:
            if not isinstance(request_body, Mapping):
                raise self.error(name, "'requestBody' is not an object")
            body_schema = _json_schema_of(request_body.get("content"))
            if body_schema is None:
                _log.info("%s: skipping operation %r: its request body is not JSON", self.source, name)
                return None
            body_required = request_body.get("required") is True
            shown = self.resolve(body_schema, "schemas", name)
            body_properties = shown.get("properties") if isinstance(shown, Mapping) else None
            if isinstance(body_properties, Mapping) and not set(body_properties) & set(properties):
                body = "merged"
                for key, value in body_properties.items():
                    properties[key] = self.schema(value, name)
                if body_required:
                    required.extend(str(key) for key in shown.get("required") or [])
                closed = shown.get("additionalProperties") is False
            else:
                body = "wrapped"
                properties["body"] = self.schema(body_schema, name)
                if body_required:
                    required.append("body")
        input_schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            input_schema["required"] = list(dict.fromkeys(required))
        if closed:
            input_schema["additionalProperties"] = False
        used = self.used_defs(input_schema, name)
        if used:
            input_schema["$defs"] = used
        try:
            Draft202012Validator.check_schema(input_schema)
        except SchemaError as exc:
            raise self.error(name, f"invalid argument schema ({exc.message})") from None
        description = raw.get("summary") or raw.get("description") or ""
        return Operation(
            spec=ToolSpec(
                name=name,
                description=str(description),
                input_schema=input_schema,
                idempotent=method.upper() in IDEMPOTENT_METHODS,
            ),
            method=method.upper(),
            path=path,
            path_params=tuple(path_params),
            query_params=tuple(query_params),
            body=body,
            header_params=tuple(header_params),
        )


# Headers an OpenAPI document may list that are never the caller's to set: credentials (auth_config sets them)
# and what httpx derives from the request itself.
_TRANSPORT_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "content-type", "content-length", "accept", "host"}
)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_schema_of(content: Any) -> Any:
    if not isinstance(content, Mapping):
        return None
    for media_type, media in content.items():
        if (media_type == "application/json" or media_type.endswith("+json")) and isinstance(media, Mapping):
            return media.get("schema", {})
    return None


def _defs_referenced(value: Any) -> Iterator[str]:
    """The names ``X`` of the ``#/$defs/X…`` references in a rewritten schema."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/$defs/"):
                yield unquote(item[len("#/$defs/") :].split("/", 1)[0]).replace("~1", "/").replace("~0", "~")
            else:
                yield from _defs_referenced(item)
    elif isinstance(value, list):
        for item in value:
            yield from _defs_referenced(item)


def _rewrite_refs(value: Any, rewrite: Callable[[Any], str]) -> Any:
    if isinstance(value, Mapping):
        return {
            key: rewrite(item) if key == "$ref" else _rewrite_refs(item, rewrite)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(item, rewrite) for item in value]
    return value


# --- the transport ---------------------------------------------------------------------------------------------


class HttpTransport:
    """Implements :class:`~penguiflow.tools.transports.base.Transport` over HTTP + OpenAPI."""

    def __init__(self, config: ExternalToolConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._operations: dict[str, Operation] = {}
        self._secrets: tuple[str, ...] = ()

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The pooled client while connected."""
        return self._client

    @property
    def backstop_s(self) -> float:
        """httpx's own timeout. The Timeout layer bounds every attempt at ``timeout_s``; this only catches
        stacks built without one, so it must never fire first."""
        return self.config.timeout_s * 2 + 5

    @property
    def document_url(self) -> str:
        return self.config.openapi_url or f"{str(self.config.connection).rstrip('/')}/openapi.json"

    async def connect(self) -> list[ToolSpec]:
        if self._client is None:
            headers = self.config.auth_headers()  # ${VAR} expansion happens now, not at construction
            self._secrets = tuple(self.config.secret_values())
            size = self.config.max_concurrency
            self._client = httpx.AsyncClient(
                base_url=str(self.config.connection),
                headers=headers,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                timeout=httpx.Timeout(self.backstop_s),
                follow_redirects=False,
            )
        if not self._operations:
            try:
                operations = parse_openapi(
                    await self._fetch_document(),
                    source=self.config.name,
                    reserved_headers=self.config.auth_headers().keys(),
                )
            except BaseException:
                await self.close()
                raise
            self._operations = {operation.spec.name: operation for operation in operations}
        return [operation.spec for operation in self._operations.values()]

    async def _fetch_document(self) -> Any:
        """The OpenAPI document, fetched within ``timeout_s`` in all (a server trickling bytes cannot hold the
        connect up) and at most :data:`MAX_DOCUMENT_BYTES` long."""
        assert self._client is not None
        url = self.document_url
        where = f"{self.config.name}: OpenAPI document {url}"
        seconds = self.config.timeout_s
        try:
            async with asyncio.timeout(seconds):
                async with self._client.stream("GET", url, timeout=seconds) as response:
                    if not response.is_success:
                        await response.aread()
                        raise self._status_error(where, response)
                    content = await _read_capped(response, MAX_DOCUMENT_BYTES)
        except TimeoutError:
            raise ToolConnectionError(f"{where}: timed out after {seconds:g}s") from None
        except httpx.TimeoutException:
            raise ToolConnectionError(f"{where}: timed out after {seconds:g}s") from None
        except httpx.HTTPError as exc:
            raise ToolConnectionError(f"{where}: cannot be fetched ({type(exc).__name__})") from None
        if content is None:
            raise OpenAPIError(f"{where}: larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(content)
        except RecursionError:
            raise OpenAPIError(f"{where}: nested too deeply to be read") from None
        except ValueError:  # also a body that is not UTF-8
            raise OpenAPIError(f"{where}: is not JSON") from None

    def operation(self, tool: str) -> Operation:
        try:
            return self._operations[tool]
        except KeyError:
            raise ToolNotFoundError(
                f"{self.config.name}: no operation {tool!r}", tool=f"{self.config.name}.{tool}"
            ) from None

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        client = self._client
        if client is None:
            raise ToolConnectionError(f"{self.config.name}: not connected", tool=f"{self.config.name}.{tool}")
        operation = self.operation(tool)
        qualified = f"{self.config.name}.{tool}"
        request = self._build(client, operation, arguments, qualified)
        try:
            response = await client.send(request)
        except httpx.ConnectTimeout:
            raise ToolConnectionError(
                f"{qualified}: connecting timed out", tool=qualified, request_sent=False
            ) from None
        except httpx.ConnectError:  # no connection, so the request never left: safe to re-send any request
            raise ToolConnectionError(
                f"{qualified}: request failed (ConnectError)", tool=qualified, request_sent=False
            ) from None
        except httpx.TimeoutException:
            raise ToolTimeoutError(qualified, self.backstop_s) from None
        except httpx.HTTPError as exc:
            # The message names the failure's type only: httpx messages may quote the URL and its query.
            raise ToolConnectionError(
                f"{qualified}: request failed ({type(exc).__name__})", tool=qualified
            ) from None
        trace.get_current_span().set_attribute(names.HTTP_STATUS_CODE, response.status_code)
        if not response.is_success:
            raise self._status_error(qualified, response, tool=qualified)
        return _result(response)

    def _build(
        self, client: httpx.AsyncClient, operation: Operation, arguments: Mapping[str, Any], qualified: str
    ) -> httpx.Request:
        def substitute(match: re.Match[str]) -> str:
            value = arguments.get(match.group(1))
            if value is None:
                raise ToolValidationError(
                    f"{qualified}: missing path argument {match.group(1)!r}", tool=qualified
                )
            return quote(str(value), safe="")

        url = _PLACEHOLDER.sub(substitute, operation.path).lstrip("/")
        params = {
            name: arguments[name]
            for name in operation.query_params
            if name in arguments and arguments[name] is not None
        }
        body: Any = None
        if operation.body == "wrapped":
            body = arguments.get("body")
        elif operation.body == "merged":
            taken = {*operation.path_params, *operation.query_params, *operation.header_params}
            body = {key: value for key, value in arguments.items() if key not in taken} or None
        headers = {
            name: _header_value(arguments[name])
            for name in operation.header_params
            if name in arguments and arguments[name] is not None
        }
        propagate.inject(headers)  # traceparent/tracestate of the current (execute_tool or attempt) span
        return client.build_request(operation.method, url, params=params or None, json=body, headers=headers)

    def _status_error(
        self, where: str, response: httpx.Response, *, tool: str | None = None
    ) -> ToolStatusError:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        message = f"{where}: HTTP {status} {response.reason_phrase}"
        # A server may echo what it received; a credential must not travel on in our error messages. Masked
        # before shortening, so no secret is cut in two; only the start of a huge body is looked at.
        text = response.text[:_BODY_WINDOW] if response.content else ""
        detail = shorten(self.config.redact(text, also=self._secrets))
        if detail:
            message += f": {detail}"
        cls: type[ToolStatusError]
        if status == 429:
            cls = ToolRateLimitedError
        elif status >= 500:
            cls = ToolServerError
        elif status >= 400:
            cls = ToolClientError
        else:
            cls = ToolStatusError  # a redirect we do not follow
        return cls(message, status_code=status, tool=tool, retry_after=retry_after)

    async def close(self) -> None:
        client, self._client = self._client, None
        self._operations = {}
        if client is not None:
            await client.aclose()


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it is longer than ``limit`` bytes (the rest is never read)."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _result(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
