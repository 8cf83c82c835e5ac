"""A second judge of the requests the HTTP transport sends: ``openapi-core`` (PyPI), in-process, against the real
document (requests untrimmed: the very file of ``../shared/specs/``).

Prism (:mod:`tests.support.openapi_mock`) judges every request on the wire, but it silently accepts any body
whose schema its validator cannot compile (GitHub's ``title`` of ``POST /repos/{owner}/{repo}/issues``, a
``oneOf`` with ``nullable`` and no ``type``: ``{}`` gets a 201). This judge reads the same requests — the
``httpx.Request`` objects that went out, bytes and headers as sent — and validates their parameters, security
and body with a validator of its own. It does not serve anything: the requests are judged after the fact, in
one pass.

The requests went to Prism on 127.0.0.1; they are judged as if sent to the document's own server (its first
``servers`` URL) — or to the one an operation names for itself (Stripe's ``files.stripe.com``), counted apart —
the only part of them that is rewritten.

One reader is ours, not openapi-core's: ``deepObject``. openapi-core's reads one level of an object whose schema
says ``type: object`` and nothing else ("not available" for an array, an ``anyOf``, a nested object, and even
for a parameter that was not sent at all), while Stripe's document declares ``deepObject`` for all three and
its API reads the bracket syntax it documents: ``metadata[order_id]=6735``, ``items[0][price]=price_1``,
``expand[]=customer``. :func:`bracket_loads` reads that syntax into the nested value, written here from
Stripe's documentation, not from the transport's encoder; openapi-core casts and validates what it reads.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Final
from urllib.parse import unquote

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.casting.schemas import oas30_write_schema_casters_factory, oas31_schema_casters_factory
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.styles import StyleDeserializersFactory, style_deserializers
from openapi_core.templating.paths.exceptions import ServerNotFound
from openapi_core.validation.request.exceptions import ParameterValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

__all__ = ["Judge", "Rejection", "Verdicts", "WireRequest", "bracket_loads", "mutants"]

_SEGMENTS = re.compile(r"\[([^\[\]]*)\]")


def bracket_loads(explode: bool, name: str, schema_type: str, location: Mapping[str, Any]) -> Any:
    """The value of ``name`` in the bracket syntax (see the module docstring): ``name[a][b]=v`` nests objects,
    ``name[0]``/``name[]`` make arrays (indexed items in index order, ``[]`` items in their order), a bare
    ``name=v`` is a scalar. ``KeyError`` when ``name`` was not sent, as openapi-core expects of a reader."""
    items = location.items(multi=True) if isinstance(location, ImmutableMultiDict) else location.items()
    tree: dict[str, Any] = {}
    found = False
    for key, value in items:
        if not key.startswith(f"{name}["):
            continue
        rest = key[len(name) :]
        segments = _SEGMENTS.findall(rest)
        if "".join(f"[{s}]" for s in segments) != rest:
            continue  # not the bracket syntax (a stray bracket): nothing of ours
        found = True
        if isinstance(value, bytes):
            # a multipart part (Stripe's POST /v1/files declares deepObject in a multipart encoding, which
            # OAS 3.0 says to ignore; its API reads the brackets there too): its text, which openapi-core's
            # casters expect (``b"true"`` is "not a boolean format" to them)
            value = value.decode("utf-8")
        node = tree
        for segment, following in zip(segments, [*segments[1:], None], strict=True):
            if segment == "":
                segment = f"\x00{len(node)}"  # an appended item: after every one before it
            if following is None:
                node[segment] = value
            else:
                node = node.setdefault(segment, {})
    if not found:
        if name in location:
            value = location[name]
            return value.decode("utf-8") if isinstance(value, bytes) else value
        raise KeyError(name)
    return _arrays(tree)


def _arrays(node: Any) -> Any:
    """Objects whose keys are all indexes become arrays."""
    if not isinstance(node, dict):
        return node
    values = {key: _arrays(value) for key, value in node.items()}
    if values and all(key.isdigit() or key.startswith("\x00") for key in values):
        return [
            values[key] for key in sorted(values, key=lambda k: (k.startswith("\x00"), int(k.lstrip("\x00"))))
        ]
    return values


class _Parameters(RequestParameters):
    """openapi-core matches the raw path (rightly: an encoded ``/`` must not split a segment) but then keeps the
    path variables percent-encoded, and judges ``sha256%3A…`` against GitHub's ``^sha256:[a-f0-9]{64}$``. A
    server decodes a segment after splitting the path (RFC 3986 §2.4); so do the variables here."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "path":
            value = {key: unquote(item) if isinstance(item, str) else item for key, item in value.items()}
        super().__setattr__(name, value)


class WireRequest:
    """An ``httpx.Request`` as ``openapi_core.protocols.Request``: its raw (still percent-encoded) path, its
    query as sent, its headers, cookies and body bytes; ``host_url`` is the document's server."""

    def __init__(self, request: httpx.Request, host_url: str, base_path: str) -> None:
        self.request = request
        try:
            self.content = request.content
        except httpx.RequestNotRead:  # a streamed body built by httpx (``files=``): its bytes, rebuilt
            self.content = request.read()
        self.host_url = host_url
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        self.path = base_path + raw_path
        cookies: SimpleCookie = SimpleCookie()
        for header in request.headers.get_list("cookie"):
            cookies.load(header)
        self.parameters = _Parameters(
            query=ImmutableMultiDict(request.url.params.multi_items()),
            header=Headers(request.headers.multi_items()),
            cookie=ImmutableMultiDict({name: morsel.value for name, morsel in cookies.items()}),
        )

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.content or None

    @property
    def content_type(self) -> str:
        return self.request.headers.get("content-type", "").lower()


@dataclass(frozen=True)
class Rejection:
    """One error ``openapi-core`` found in one request (a request may have several)."""

    method: str
    path: str
    kind: str  # the openapi-core exception's class name (InvalidRequestBody, MissingRequiredParameter …)
    message: str
    request: httpx.Request

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.kind}: {self.message}"


@dataclass
class Verdicts:
    judged: int
    rejections: list[Rejection]
    excused: list[tuple[str, Rejection]]  # (the quirk's name, what it excused)
    # Requests for an operation that names a server of its own (Stripe's files.stripe.com, GitHub's
    # uploads.github.com), judged there: the transport sends every operation to the source's connection.
    elsewhere: list[str]


def _message(error: BaseException) -> str:
    """What is wrong, in jsonschema's words when it judged (``'title' is a required property``), else the
    error's own (a value that could not be read or cast, a missing parameter, no such operation)."""
    cause = error.__cause__
    schema_errors = [getattr(e, "message", str(e)) for e in getattr(cause, "schema_errors", ()) or ()]
    head = str(error) if isinstance(error, ParameterValidationError) else "Request body"
    if schema_errors:
        return f"{head}: {'; '.join(schema_errors)}"
    return str(error) + (f" ({cause})" if cause is not None and str(cause) not in str(error) else "")


class Judge:
    """openapi-core's request validator on ``document`` (see the module docstring)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        casters = (
            oas31_schema_casters_factory
            if str(document.get("openapi", "")).startswith("3.1")
            else oas30_write_schema_casters_factory
        )
        readers = StyleDeserializersFactory(casters, {**style_deserializers, "deepObject": bracket_loads})
        # The document is the publisher's, not ours to judge: its meta-validation is left out (minutes on GitHub's).
        config = Config(spec_validator_cls=None, style_deserializers_factory=readers)
        self.api = OpenAPI.from_dict(dict(document), config=config)
        self.hosts = [_host(server) for server in _servers(document)]

    def errors(self, request: httpx.Request) -> tuple[WireRequest, list[Exception], bool]:
        """``request`` as judged, openapi-core's errors, and whether it was judged at an operation's own
        server rather than the document's."""
        for index, (host_url, base_path) in enumerate(self.hosts):
            wire = WireRequest(request, host_url, base_path)
            errors = list(self.api.iter_request_errors(wire))  # type: ignore[arg-type]  # it is the protocol
            if index + 1 < len(self.hosts) and any(isinstance(e, ServerNotFound) for e in errors):
                continue  # the operation names another server of its own: judged there
            return wire, errors, index > 0
        raise AssertionError("unreachable: the last server always answers")

    def verdicts(
        self,
        requests: Iterable[httpx.Request],
        quirks: Mapping[str, Callable[[Rejection], bool]] | None = None,
    ) -> Verdicts:
        """Every one of ``requests`` validated. ``quirks`` maps a name to a predicate of a :class:`Rejection`:
        what one of them holds is excused (and counted by name), not a rejection."""
        verdicts = Verdicts(0, [], [], [])
        for request in requests:
            verdicts.judged += 1
            with warnings.catch_warnings():
                # "<name> parameter is deprecated": the document's word about a parameter, not a verdict
                warnings.simplefilter("ignore", DeprecationWarning)
                wire, errors, elsewhere = self.errors(request)
            if elsewhere:
                verdicts.elsewhere.append(f"{request.method} {wire.path} at {wire.host_url}")
            for error in errors:
                rejection = Rejection(
                    request.method, wire.path, type(error).__name__, _message(error), request
                )
                quirk = next((name for name, holds in (quirks or {}).items() if holds(rejection)), None)
                if quirk is None:
                    verdicts.rejections.append(rejection)
                else:
                    verdicts.excused.append((quirk, rejection))
        return verdicts

    def typed_body(self, request: httpx.Request) -> bool:
        """Whether the JSON body schema of ``request``'s operation says what type the body is: a schema without
        ``type`` (GitHub's ``secret-scanning-custom-pattern-to-update``: ``required`` and ``anyOf`` of
        ``required`` only) holds any JSON that is not an object, a string included."""
        wire, _, _ = self.errors(request)
        found = self.api.request_validator.path_finder.find(wire.method, wire.host_url + wire.path)
        content = found.operation / "requestBody" / "content"
        return "application/json" in content and _typed(content / "application/json" / "schema", 0)


def _typed(schema: Any, depth: int) -> bool:
    if depth > 8:
        return False
    if "type" in schema:
        return True
    if "allOf" in schema and any(_typed(part, depth + 1) for part in schema / "allOf"):
        return True
    return any(
        key in schema and all(_typed(part, depth + 1) for part in schema / key) for key in ("oneOf", "anyOf")
    )


def _servers(document: Mapping[str, Any]) -> list[str]:
    """The document's server URL, then those path items and operations name for themselves."""
    found = [str(document.get("servers", [{"url": "https://api.example.com"}])[0]["url"])]
    for item in document.get("paths", {}).values():
        for holder in [item, *(op for op in item.values() if isinstance(op, dict))]:
            for server in holder.get("servers", ()) if isinstance(holder, dict) else ():
                if server["url"] not in found:
                    found.append(str(server["url"]))
    return found


def _host(server: str) -> tuple[str, str]:
    parsed = httpx.URL(server)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}", parsed.path.rstrip("/")


NOT_A_BODY: Final = b'"penguiflow: not this operation\'s body"'


def mutants(requests: Iterable[httpx.Request]) -> list[httpx.Request]:
    """Each request with a JSON object body, its body replaced by a JSON string: a judge that compiled the
    operation's body schema rejects every one (Prism, where it could not compile one, accepts it)."""
    wrong = []
    for request in requests:
        if not request.headers.get("content-type", "").startswith("application/json"):
            continue
        try:
            if not isinstance(json.loads(request.content), dict):
                continue
        except ValueError:
            continue
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        wrong.append(httpx.Request(request.method, request.url, headers=headers, content=NOT_A_BODY))
    return wrong
