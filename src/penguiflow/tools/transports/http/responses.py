"""Reading responses within bounds, and what a response becomes: a result or a typed error.

:func:`read_capped` reads the raw stream and decodes ``gzip``/``deflate`` itself, at most 64 KiB of output per
step (``zlib``'s ``max_length``): httpx's decoder inflates a whole network chunk at once, so one 64 KiB chunk of
a gzip bomb becomes ~64 MB before anyone can count it. The count is of *decoded* bytes; past the limit the read
stops, the response is closed unread (httpx then drops the connection rather than pooling it) and the caller
raises :class:`~penguiflow.errors.ToolResponseTooLargeError`. Error bodies are read only as far as an error
message needs (:data:`ERROR_WINDOW`).

Results: JSON (``application/json``, ``+json``) parsed; text (``text/*``, XML, forms) as a string; anything
else as ``{"media_type": ..., "base64": ...}`` (a tool result is JSON data); an empty body or 204 as ``None``.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import httpx

from penguiflow.errors import (
    ToolClientError,
    ToolRateLimitedError,
    ToolRedirectError,
    ToolServerError,
    ToolStatusError,
)
from penguiflow.middleware.retry import parse_retry_after
from penguiflow.tools.transports.base import shorten

__all__ = [
    "ACCEPT_ENCODING",
    "ERROR_WINDOW",
    "TooLarge",
    "fixed_headers",
    "read_capped",
    "result",
    "status_error",
]

ACCEPT_ENCODING: Final = "gzip, deflate"
"""The encodings :func:`read_capped` decodes within bounds (so the only ones asked for)."""
ERROR_WINDOW: Final = 65536
"""How much of an error body is read: enough for a message, never the 300 MB a server may send."""
_STEP: Final = 65536
# The response headers a call reads (fixed_headers), lower case as httpx keeps them
_READ: Final = frozenset({b"location", b"content-length", b"content-encoding", b"content-type"})


class TooLarge(Exception):
    """The body went past the limit (internal: the transport raises the typed error with its context)."""


class _Inflater:
    """``gzip``/``deflate`` decoding that never produces more than :data:`_STEP` bytes per call."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._new()

    def _new(self) -> None:
        wbits = 16 + zlib.MAX_WBITS if self.encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)
        self._raw_deflate_tried = self.encoding not in ("deflate",)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data``, lazily: the caller counts each before the next is inflated."""
        while True:
            try:
                piece = self._zlib.decompress(data, _STEP)
            except zlib.error:
                if self._raw_deflate_tried:
                    raise
                # "deflate" is sent both zlib-wrapped (as specified) and raw (as many servers do)
                self._raw_deflate_tried = True
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            if piece:
                yield piece
            data = self._zlib.unconsumed_tail
            if self._zlib.eof and self._zlib.unused_data:  # concatenated gzip members
                data = self._zlib.unused_data
                self._new()
                continue
            if not data and len(piece) < _STEP:
                return


def fixed_headers(response: httpx.Response) -> dict[str, str]:
    """The headers of ``response`` a call reads (``location``, ``content-length``, ``content-encoding``,
    ``content-type``), each as ``response.headers.get`` gives it, found in one pass: each ``get`` scans all the
    headers, decodes what it finds and raises a ``KeyError`` for a missing one (8,100–9,700 instructions each, callgrind)."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in response.headers.raw:
        lower = name.lower()
        if lower in _READ:
            found.setdefault(lower, []).append(value)
    if not found:
        return {}
    # Headers.get decodes with the headers' own encoding and joins repeats with ", " (all ASCII-compatible)
    encoding = response.headers.encoding
    return {name.decode("ascii"): b", ".join(values).decode(encoding) for name, values in found.items()}


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, or :class:`TooLarge` as soon as it passes ``limit`` bytes (the rest is never read)."""
    return b"".join(await read_chunks(response, limit))


async def read_chunks(
    response: httpx.Response, limit: int, headers: Mapping[str, str] | None = None
) -> list[bytes]:
    """:func:`read_capped` as its pieces: joining 13 MB is one long copy, better done off the loop.
    ``headers``: the response's :func:`fixed_headers`, when the caller has them."""
    if headers is None:
        headers = response.headers
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    encoding = headers.get("content-encoding")
    encodings = [e.strip().lower() for e in encoding.split(",") if e.strip()] if encoding else []
    encodings = [e for e in encodings if e != "identity"]
    ours = all(e in ("gzip", "x-gzip", "deflate") for e in encodings)
    inflaters = [_Inflater(e) for e in reversed(encodings)] if ours else []
    chunks: list[bytes] = []
    size = 0
    # Our own decoding reads the raw stream; an encoding we did not ask for is left to httpx (its chunks are
    # then counted after inflating, the best that can be done for it).
    stream = response.aiter_raw() if ours else response.aiter_bytes()
    async for chunk in stream:
        for piece in _decoded(chunk, inflaters):
            size += len(piece)
            if size > limit:
                raise TooLarge
            chunks.append(piece)
    return chunks


def _decoded(chunk: bytes, inflaters: list[_Inflater]) -> Iterator[bytes]:
    if not inflaters:
        yield chunk
        return
    first, rest = inflaters[0], inflaters[1:]
    for piece in first.feed(chunk):
        yield from _decoded(piece, rest)


async def read_window(response: httpx.Response) -> bytes:
    """At most :data:`ERROR_WINDOW` bytes of the (decoded) body, for an error message."""
    try:
        return await read_capped(response, ERROR_WINDOW)
    except TooLarge:
        return b""
    except (httpx.HTTPError, zlib.error):
        return b""


def result(response: httpx.Response, content: bytes, headers: Mapping[str, str] | None = None) -> Any:
    """What a successful response is to the caller (see the module's docstring); ``headers`` as for
    :func:`read_chunks`."""
    if response.status_code == 204 or not content:
        return None
    media = (response.headers if headers is None else headers).get("content-type", "").split(";")[0]
    media = media.strip().lower()
    if media == "application/json" or media.endswith("+json") or not media:
        try:
            return json.loads(content)
        except ValueError:
            pass
    if not media or media.startswith("text/") or media.endswith(("xml", "x-www-form-urlencoded", "json")):
        return content.decode(response.encoding or "utf-8", errors="replace")
    return {"media_type": media, "base64": base64.b64encode(content).decode()}


def status_error(
    where: str,
    response: httpx.Response,
    body: bytes,
    redact: Callable[[str], str],
    *,
    tool: str | None = None,
) -> ToolStatusError:
    """The typed error of a non-success status; the server's words redacted *before* being shortened, so no
    secret is cut in two."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    message = f"{where}: HTTP {status} {response.reason_phrase}"
    detail = shorten(redact(body.decode("utf-8", errors="replace"))) if body else ""
    if 300 <= status < 400:
        location = response.headers.get("location")
        if location is not None:
            location = redact(location)
            message += f" to {shorten(location)}"
        return ToolRedirectError(message, status_code=status, location=location, tool=tool)
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
        cls = ToolStatusError
    return cls(message, status_code=status, tool=tool, retry_after=retry_after)
