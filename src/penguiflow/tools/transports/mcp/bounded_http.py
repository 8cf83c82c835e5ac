"""Every answer an MCP server sends over HTTP is read within ``max_response_bytes``, counted decoded.

The ``mcp`` SDK reads a JSON answer whole (``response.aread()``), error bodies included, and an SSE answer event
by event, bounding each event (``max_sse_event_size``) but not the stream: a hostile server could make us read a
300 MB body, inflate a gzip bomb, or stream small events forever. The SDK's own ``httpx2`` client is kept as
its factory builds it (timeouts, environment proxies, auth); only its transports are wrapped, so that every
response is a :class:`BoundedResponse`, whose decoded byte stream — what ``aread()`` and the SDK's SSE reader
both consume; httpx2 inflates in 1 MiB steps — stops as soon as it passes the limit, or before reading anything
when ``Content-Length`` already says it would.

The error raised is one the SDK already turns into a JSON-RPC error for *that request* (``StreamError`` for a
body, ``SSEError`` for an event stream; it names the limit, and
:mod:`~penguiflow.tools.transports.mcp.failures` maps it to
:class:`~penguiflow.errors.ToolResponseTooLargeError`); the other requests of the session go on. The response
is closed unread, so httpx2 drops its connection rather than pooling it.

The SDK logs the error of a cut JSON body at ERROR with a traceback (``Error parsing JSON response``); that
record, and only that one, is dropped by a filter on its logger: the caller gets the typed error, and a
traceback of our own refusal on the application's stderr would be noise.

Left to the SDK's per-event bound: the long-lived GET event stream of server-initiated messages. It lasts as
long as the session, so a total would cut healthy sessions; its events are handled one at a time, not kept.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any, Final, Self

import httpx2

__all__ = ["TOO_LARGE", "BoundedResponse", "bound_responses"]

TOO_LARGE: Final = re.compile(r"the response exceeded max_response_bytes=(\d+)")
"""What the SDK's error message for a response cut short here holds (the limit is its group 1)."""


_SDK_LOGGER: Final = "mcp.client.streamable_http"


class _DropOwnRefusal(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, httpx2.StreamError) and TOO_LARGE.search(str(exc)))


_filter = _DropOwnRefusal()


def _event_stream(response: httpx2.Response) -> bool:
    media = response.headers.get("content-type", "").partition(";")[0]
    return media.strip().lower() == "text/event-stream"


class BoundedResponse(httpx2.Response):
    """A response whose decoded content may not pass ``limit`` bytes."""

    def __init__(self, limit: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit

    def _too_large(self) -> Exception:
        message = f"the response exceeded max_response_bytes={self.limit}"
        return httpx2.SSEError(message) if _event_stream(self) else httpx2.StreamError(message)

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncGenerator[bytes, None]:
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self.aclose()
            raise self._too_large()
        size = 0
        # aclosing: leaving early closes httpx2's own generator at once, and with it the connection
        async with contextlib.aclosing(super().aiter_bytes(chunk_size)) as parts:
            async for part in parts:
                size += len(part)
                if size > self.limit:
                    raise self._too_large()
                yield part


class _BoundedTransport(httpx2.AsyncBaseTransport):
    """``inner``, answering with :class:`BoundedResponse` (but the session's GET event stream, see above)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and _event_stream(response):
            return response
        return BoundedResponse(
            self.limit,
            response.status_code,
            headers=response.headers,
            stream=response.stream,
            extensions=response.extensions,
            request=request,
        )

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self.inner.aclose()


def bound_responses(client: httpx2.AsyncClient, limit: int) -> httpx2.AsyncClient:
    """``client`` with every response bounded to ``limit`` decoded bytes (see the module docstring)."""
    # httpx2 takes a transport only when the client is built, and then ignores the environment's proxies;
    # wrapping the transports the SDK's factory chose (the default one and the proxies' mounts) keeps both.
    logger = logging.getLogger(_SDK_LOGGER)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    client._transport = _BoundedTransport(client._transport, limit)
    client._mounts = {
        pattern: None if transport is None else _BoundedTransport(transport, limit)
        for pattern, transport in client._mounts.items()
    }
    return client
