"""The request as it goes out: httpx's own request, built without re-deriving the client's fixed parts per call.

``AsyncClient.build_request`` merges a request with the client's settings on every call: it copies the
client's default headers into a new ``Headers``, replaces the request's own by a case-insensitive search of
that copy for each, re-wraps the URL and rebuilds the timeout extension — ~80,000 instructions a request with
two headers of ours (callgrind), as much as the rest of the request's building. Of those settings only the
default headers and the timeout apply to our client (no ``base_url``, no ``params``, cookies only once a
server set one), and they do not change while it is open: :class:`Wire` reads them once and builds the same
``httpx.Request`` — the same headers in the same order, the same extensions — directly. While the client's
cookie jar holds cookies a server set, requests are built by ``build_request`` itself, which adds them.
"""

from __future__ import annotations

from typing import Any

import httpx

from penguiflow.tools.transports.http.auth import Credentials
from penguiflow.tools.transports.http.serialize import encode_query

__all__ = ["Wire", "authenticate"]


class Wire:
    """Builds the requests of one client, as its ``build_request`` would (read its settings when created)."""

    __slots__ = ("_client", "_defaults", "_timeout")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        # (name, lower-case name, value) of each default header, in the client's order
        self._defaults = [(name, name.lower(), value) for name, value in client.headers.raw]
        self._timeout = client.timeout.as_dict()

    def request(
        self, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None
    ) -> httpx.Request:
        # httpx encodes str header values as ASCII; a Latin-1 value (checked before) goes as its bytes
        wire = [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]
        client = self._client
        if client.cookies:
            return client.build_request(method, url, headers=wire, content=content)
        # build_request's merge: a header of the request replaces the client's of that name, whatever its case,
        # and the request's own follow the client's that are left
        ours = {name.lower() for name, _ in wire}
        merged: Any = [(name, value) for name, lower, value in self._defaults if lower not in ours]
        merged += wire
        extensions = {"timeout": dict(self._timeout)}  # each request its own, as build_request makes them
        return httpx.Request(method, url, headers=merged, content=content, extensions=extensions)


def authenticate(request: httpx.Request, credentials: Credentials) -> None:
    """Add ``credentials``' headers, query key and cookies to ``request`` (same-origin requests only)."""
    for name, value in credentials.headers.items():
        request.headers[name] = value
    if credentials.query:  # appended as text: re-encoding the query would change what the styles wrote
        extra = encode_query([(name, value, False) for name, value in credentials.query])
        query = request.url.query.decode("ascii")
        request.url = request.url.copy_with(query=(f"{query}&{extra}" if query else extra).encode("ascii"))
    if credentials.cookies:
        jar = "; ".join(f"{k}={v}" for k, v in credentials.cookies)
        existing = request.headers.get("cookie")
        request.headers["cookie"] = f"{existing}; {jar}" if existing else jar
