"""``HttpTransport``: the tools of an HTTP API, discovered from its OpenAPI document, one request per call.

One pooled ``httpx.AsyncClient`` per transport, sized from ``max_concurrency`` so the node's own limit, not the
pool, decides how many requests run. Discovery (decoding, parsing, schemas) runs in a worker thread. Status
codes become the typed errors the retry layer reads (429 → ``ToolRateLimitedError`` with ``Retry-After``, 5xx →
``ToolServerError``, other 4xx → ``ToolClientError``, an unfollowed 3xx → ``ToolRedirectError`` with its
``Location``). GET and HEAD follow up to :data:`MAX_REDIRECTS` redirects, credentials dropped once the origin
changes. The W3C ``traceparent`` of the current span goes out with every request.

Retry safety: a tool is idempotent when its method is (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), or when the
source's ``idempotency_key`` names a header the node then sets on every POST and PATCH — one key per call,
the same for each of its attempts. A failure before the request left (refused, DNS, connect timeout) is a
``ToolConnectionError`` with ``request_sent=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Final

import httpx
from opentelemetry import trace

from penguiflow.errors import (
    ToolConnectionError,
    ToolNotFoundError,
    ToolResponseTooLargeError,
    ToolTimeoutError,
    ToolValidationError,
)
from penguiflow.telemetry import names
from penguiflow.telemetry.propagation import inject
from penguiflow.tools.config import ExternalToolConfig, split_userinfo
from penguiflow.tools.transports.base import CURRENT_CALL, ToolSpec
from penguiflow.tools.transports.http import logs
from penguiflow.tools.transports.http.auth import Credentials, origin
from penguiflow.tools.transports.http.bodies import encode_body
from penguiflow.tools.transports.http.discovery import _log, parse
from penguiflow.tools.transports.http.document import load_document
from penguiflow.tools.transports.http.operations import Operation
from penguiflow.tools.transports.http.plan import Plan
from penguiflow.tools.transports.http.responses import (
    ACCEPT_ENCODING,
    TooLarge,
    fixed_headers,
    read_chunks,
    read_window,
    result,
    status_error,
)
from penguiflow.tools.transports.http.serialize import (
    ArgumentError,
    cookie_value,
    encode_query,
    header_value,
    query_pairs,
)
from penguiflow.tools.transports.http.wire import Wire, authenticate

__all__ = ["MAX_REDIRECTS", "HttpTransport"]

MAX_REDIRECTS: Final = 5
_FOLLOWED: Final = frozenset({"GET", "HEAD"})
_KEYED: Final = frozenset({"POST", "PATCH"})


class HttpTransport:
    """Implements :class:`~penguiflow.tools.transports.base.Transport` over HTTP + OpenAPI."""

    def __init__(self, config: ExternalToolConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None
        self._wire: Wire | None = None  # builds the client's requests
        self._operations: dict[str, Operation] = {}
        self._plans: dict[str, Plan] = {}  # by tool, beside _operations: each request's fixed parts
        self._secrets: tuple[str, ...] = ()
        self._credentials: Credentials | None = None
        self.base_url, _, _ = split_userinfo(str(config.connection))
        self._prefix = self.base_url.rstrip("/")  # every request's URL starts with it
        self.skipped: Counter[str] = Counter()
        """Operations of the document that are not tools, by reason (see :mod:`.operations`)."""

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
        """Where the OpenAPI document is fetched from (userinfo stripped: it is sent as basic auth)."""
        if self.config.openapi_url:
            return split_userinfo(self.config.openapi_url)[0]
        return f"{self.base_url.rstrip('/')}/openapi.json"

    def redact(self, text: str) -> str:
        return self.config.redact(text, also=self._secrets)

    async def connect(self) -> list[ToolSpec]:
        if self._client is None:
            self._credentials = Credentials.resolve(self.config, str(self.config.connection))
            self._secrets = tuple(self.config.secret_values())
            size = self.config.max_concurrency
            # built in a worker thread: httpx loads the CA bundle for its SSL context (~0.1 s, measured)
            self._client = await asyncio.to_thread(
                httpx.AsyncClient,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                timeout=httpx.Timeout(self.backstop_s),
                follow_redirects=False,
                trust_env=False,  # no proxy or .netrc credentials the configuration does not show
            )
            self._wire = Wire(self._client)
            logs.watch(self._secrets)
        if not self._operations:
            try:
                chunks, content_type = await self._fetch_document()
                operations = await asyncio.to_thread(self._discover, chunks, content_type)
            except BaseException:
                await self.close()
                raise
            self._operations = {operation.spec.name: operation for operation in operations}
            self._plans = {name: Plan(operation) for name, operation in self._operations.items()}
        return [operation.spec for operation in self._operations.values()]

    def _discover(self, chunks: list[bytes], content_type: str | None) -> list[Operation]:
        """Decode and parse the document (in a worker thread: never on the event loop)."""
        with _collector_paused():
            return self._parse(b"".join(chunks), content_type)

    def _parse(self, content: bytes, content_type: str | None) -> list[Operation]:
        assert self._credentials is not None
        where = f"{self.config.name}: OpenAPI document {self.document_url}"
        document = load_document(content, content_type, where)
        credentials = self._credentials
        credentials.place_key(self.config, document)
        parsed = parse(
            document,
            self.config.name,
            credentials.header_names,
            credentials.cookie_names,
            keyed=self.config.idempotency_key is not None,
        )
        self.skipped = parsed.skipped
        if parsed.skipped:
            _log.warning(
                "%s: %d tool(s); %s",
                self.config.name,
                len(parsed.operations),
                "; ".join(f"{count} skipped: {reason}" for reason, count in parsed.skipped.most_common()),
            )
        return parsed.operations

    async def _fetch_document(self) -> tuple[list[bytes], str | None]:
        """The OpenAPI document, fetched within ``connect_timeout_s`` in all (a server trickling bytes cannot hold
        the connect up) and at most ``max_response_bytes`` long, whatever its status. Discovery's bound, not a
        call's: a source with a tight ``timeout_s`` still gets its (possibly large) document."""
        url = self.document_url
        where = f"{self.config.name}: OpenAPI document {url}"
        seconds = self.config.connect_timeout_s
        own = Credentials(origin(url))  # the userinfo of openapi_url, for its own origin only
        _, user, password = split_userinfo(self.config.openapi_url or "")
        if user is not None or password is not None:
            own.basic = (user or "", password or "")
        headers = {"accept": "application/json, application/yaml;q=0.9, */*;q=0.5"}
        try:
            async with asyncio.timeout(seconds):
                _, read, body = await self._exchange(
                    "GET",
                    httpx.URL(url),
                    headers,
                    None,
                    where,
                    None,
                    extra=own,
                    failed="cannot be fetched",
                    join=False,
                )
        except (TimeoutError, ToolTimeoutError):
            raise ToolConnectionError(f"{where}: timed out after {seconds:g}s (connect_timeout_s)") from None
        return body, read.get("content-type")

    def operation(self, tool: str) -> Operation:
        try:
            return self._operations[tool]
        except KeyError:
            raise ToolNotFoundError(
                f"{self.config.name}: no operation {tool!r}", tool=f"{self.config.name}.{tool}"
            ) from None

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        qualified = f"{self.config.name}.{tool}"
        if self._client is None:
            raise ToolConnectionError(
                f"{self.config.name}: not connected", tool=qualified, request_sent=False
            )
        plan = self._plans.get(tool)
        if plan is None:
            self.operation(tool)  # raises ToolNotFoundError
            plan = self._plans[tool] = Plan(self._operations[tool])
        try:
            url, headers, content = self._build(plan, arguments)
        except ArgumentError as exc:
            raise ToolValidationError(f"{qualified}: {exc}", tool=qualified) from None
        # traceparent/tracestate of the current (execute_tool or attempt) span, which gets the HTTP status
        span = inject(headers)
        method = plan.operation.method
        response, read, body = await self._exchange(
            method, url, headers, content, qualified, qualified, span=span
        )
        return result(response, body, read)

    def _build(
        self, plan: Plan, arguments: Mapping[str, Any]
    ) -> tuple[httpx.URL, dict[str, str], bytes | None]:
        operation = plan.operation
        path = plan.path(arguments)
        pairs: list[tuple[str, str, bool]] = []
        headers: dict[str, str] = {"accept-encoding": ACCEPT_ENCODING}
        cookies: list[tuple[str, str]] = []
        for param in plan.others:
            value = arguments.get(param.argument)
            if value is None:
                continue
            if param.location == "query":
                pairs.extend(query_pairs(param, value))
            elif param.location == "header":
                headers[param.name] = header_value(
                    param.argument, value, param.explode, json_content=param.json_content
                )
            else:
                cookies.extend(cookie_value(param, value))
        content: bytes | None = None
        body = operation.body
        if body is not None:
            taken = plan.taken
            if body.shape == "merged":
                fields = {key: value for key, value in arguments.items() if key not in taken}
                payload: Any = fields if fields or body.required else None
            else:
                argument = "body" if "body" not in taken else "request_body"
                payload = arguments.get(argument)
            if payload is not None:
                content, headers["content-type"] = encode_body(body, payload)
        if self.config.idempotency_key and operation.method in _KEYED:
            key = self.config.idempotency_key
            if not any(name.lower() == key.lower() for name in headers):
                call = CURRENT_CALL.get()
                state = call.context if call is not None else {}
                headers[key] = state.setdefault("penguiflow.http.idempotency_key", str(uuid.uuid4()))
        if cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies)
        query = encode_query(pairs)
        url = httpx.URL(self._prefix + path + (f"?{query}" if query else ""))
        return url, headers, content

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        where: str,
        tool: str | None,
        *,
        extra: Credentials | None = None,
        failed: str = "request failed",
        join: bool = True,
        span: trace.Span | None = None,
    ) -> tuple[httpx.Response, dict[str, str], Any]:
        """Send one request, following GET/HEAD redirects, and read its body within bounds: the response, its
        :func:`fixed_headers` and its body. ``span`` gets each response's status."""
        client, wire = self._client, self._wire
        credentials = self._credentials
        assert client is not None and wire is not None and credentials is not None
        limit = self.config.max_response_bytes
        for hop in range(MAX_REDIRECTS + 1):
            request = wire.request(method, url, headers, content)
            auth: httpx.BasicAuth | None = None
            for own in (credentials, extra):
                if own is not None and own.applies_to(request.url):
                    authenticate(request, own)
                    auth = own.httpx_auth() or auth
            response = await self._send(client, request, auth, where, tool, failed)
            try:
                if span is not None:
                    span.set_attribute(names.HTTP_STATUS_CODE, response.status_code)
                read = fixed_headers(response)
                location = read.get("location")
                if location and response.is_redirect and method in _FOLLOWED and hop < MAX_REDIRECTS:
                    url = response.url.join(location)
                    continue
                if not response.is_success:
                    raise status_error(where, response, await read_window(response), self.redact, tool=tool)
                try:
                    chunks = await read_chunks(response, limit, read)
                    return response, read, b"".join(chunks) if join else chunks
                except TooLarge:
                    raise ToolResponseTooLargeError(
                        f"{where}: the response is larger than max_response_bytes={limit}",
                        limit=limit,
                        tool=tool,
                    ) from None
                except httpx.TimeoutException:
                    raise ToolTimeoutError(tool or where, self.backstop_s) from None
                except (httpx.HTTPError, zlib.error) as exc:
                    raise ToolConnectionError(
                        f"{where}: reading the response failed ({type(exc).__name__})", tool=tool
                    ) from None
            finally:
                await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover  # the last hop returns or raises

    async def _send(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        auth: httpx.BasicAuth | None,
        where: str,
        tool: str | None,
        failed: str,
    ) -> httpx.Response:
        try:
            if auth is not None:
                return await client.send(request, stream=True, auth=auth)
            return await client.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise ToolConnectionError(
                f"{where}: connecting timed out", tool=tool, request_sent=False
            ) from None
        except httpx.ConnectError:  # no connection, so the request never left: safe to re-send any request
            raise ToolConnectionError(
                f"{where}: {failed} (ConnectError)", tool=tool, request_sent=False
            ) from None
        except httpx.TimeoutException:
            raise ToolTimeoutError(where, self.backstop_s) from None
        except httpx.HTTPError as exc:
            # The message names the failure's type only: httpx messages may quote the URL and its query.
            raise ToolConnectionError(f"{where}: {failed} ({type(exc).__name__})", tool=tool) from None

    async def close(self) -> None:
        client, self._client, self._wire = self._client, None, None
        self._operations = {}
        self._plans = {}
        if client is not None:
            logs.unwatch(self._secrets)
            await client.aclose()


_paused = 0
_paused_lock = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Automatic garbage collection paused while a document is parsed. A decoded document is millions of
    containers; a full collection, run by whichever thread allocates when the thresholds say so, scans them all,
    and on the event loop's thread that froze it for ~0.4 s on GitHub's document (measured). The document is
    freed by reference counting when the parse ends, so nothing is left for the collector to find; an
    application that disabled the collector itself keeps it disabled."""
    global _paused
    with _paused_lock:
        _paused += 1
        if _paused == 1:
            resume = gc.isenabled()
            gc.disable()
            _collector_paused.resume = resume  # type: ignore[attr-defined]
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and getattr(_collector_paused, "resume", False):
                gc.enable()
