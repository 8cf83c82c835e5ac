"""The HTTP transport's shortcuts through httpx give what httpx's own calls give: ``Wire.request`` the request
``AsyncClient.build_request`` builds (headers in the same order, the same extensions and body), and
``fixed_headers`` what ``response.headers.get`` answers for each header a call reads."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from penguiflow.tools.transports.http.responses import fixed_headers
from penguiflow.tools.transports.http.wire import Wire

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEADER_SETS: list[dict[str, str]] = [
    {"accept-encoding": "gzip, deflate"},
    {"accept-encoding": "gzip, deflate", "traceparent": TRACEPARENT, "tracestate": "vendor=value"},
    # header parameters named like the client's defaults, in other cases: they replace them
    {"accept-encoding": "gzip, deflate", "User-Agent": "mine/1", "ACCEPT": "application/json"},
    {"accept-encoding": "gzip, deflate", "connection": "close", "X-Cafe": "naïve"},
    {"accept-encoding": "gzip, deflate", "content-type": "application/json", "Idempotency-Key": "k-1"},
    {"accept-encoding": "gzip, deflate", "X-A": "1", "x-a": "2", "cookie": "a=1; b=2"},
    {"accept-encoding": "gzip, deflate", "host": "example.org:8080", "content-length": "2"},
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # as HttpTransport.connect builds it
    async with httpx.AsyncClient(
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        timeout=httpx.Timeout(65),
        follow_redirects=False,
        trust_env=False,
    ) as client:
        yield client


def encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]


def facts(request: httpx.Request) -> tuple[Any, ...]:
    return (request.method, str(request.url), request.headers.raw, request.extensions, request.read())


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "POST", "PUT", "PATCH"])
async def test_the_request_is_the_one_build_request_builds(client: httpx.AsyncClient, method: str) -> None:
    wire = Wire(client)
    url = httpx.URL("http://127.0.0.1:8000/items/a%2Fb?q=1&r=%C3%A9")
    for headers, content in itertools.product(HEADER_SETS, (None, b"{}")):
        ours = wire.request(method, url, dict(headers), content)
        theirs = client.build_request(method, url, headers=encoded(headers), content=content)
        assert facts(ours) == facts(theirs), (headers, content)


async def test_each_request_has_its_own_extensions(client: httpx.AsyncClient) -> None:
    wire = Wire(client)
    url = httpx.URL("http://127.0.0.1:8000/")
    first, second = (wire.request("GET", url, {}, None) for _ in range(2))
    assert first.extensions == second.extensions
    first.extensions["timeout"]["read"] = 1.0
    assert second.extensions["timeout"]["read"] == 65


async def test_cookies_a_server_set_go_out_as_build_request_sends_them(client: httpx.AsyncClient) -> None:
    wire = Wire(client)
    url = httpx.URL("http://127.0.0.1:8000/items/1")
    client.cookies.set("session", "s-1", domain="127.0.0.1", path="/")
    sent = []
    for headers in (
        {"accept-encoding": "gzip, deflate"},
        {"accept-encoding": "gzip, deflate", "cookie": "a=1"},
    ):
        ours = wire.request("GET", url, dict(headers), None)
        theirs = client.build_request("GET", url, headers=encoded(headers), content=None)
        assert facts(ours) == facts(theirs)
        sent.append(ours.headers["cookie"])
    assert sent == ["session=s-1", "a=1"]  # the jar's, unless the request has a cookie header of its own


RESPONSE_HEADERS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"Content-Type", b"application/json"), (b"Content-Length", b"2"), (b"Server", b"x")],
    [(b"location", b"/next"), (b"CONTENT-ENCODING", b"gzip"), (b"content-encoding", b"deflate")],
    [(b"Content-Length", b"2"), (b"content-length", b"2"), (b"content-type", b"text/plain; charset=utf-8")],
    [(b"X-Name", "naïve".encode()), (b"Location", "/caf\u00e9".encode())],  # utf-8: decoded as httpx does
    [(b"X-Name", "naïve".encode("latin-1")), (b"Location", "/caf\u00e9".encode("latin-1"))],  # latin-1
    [(b"Date", b"Tue, 01 Dec 2026 20:00:00 GMT"), (b"Set-Cookie", b"a=1"), (b"Vary", b"accept")],
]


@pytest.mark.parametrize("raw", RESPONSE_HEADERS)
def test_fixed_headers_are_what_headers_get_answers(raw: list[tuple[bytes, bytes]]) -> None:
    response = httpx.Response(200, headers=raw)
    read = fixed_headers(response)
    for name in ("location", "content-length", "content-encoding", "content-type"):
        assert read.get(name) == response.headers.get(name), name
    assert set(read) <= {"location", "content-length", "content-encoding", "content-type"}
