"""A real HTTP API with an OpenAPI document, served on 127.0.0.1, that measures what reaches it.

The demo, the tests and the benchmarks point ``ToolNode(transport=HTTP)`` at it. It misbehaves on request
(slow, flaky, rate-limited, hanging, not found) and counts, server side, how many requests of each operation
are in flight at once — the ground truth that a client-side limit is really enforced.

With ``chaos=ChaosConfig(...)`` it also publishes a ``chaos`` operation that misbehaves at random — 429 with
``Retry-After``, 503, a stall past any sane client timeout, a connection reset with no response at all — drawn from
a seeded RNG per (key, attempt), so a rerun injects the same faults into the same calls (the reliability suite).

>>> with HttpApiServer() as api:                          # a uvicorn server in a background thread
...     config = ExternalToolConfig(name="api", transport=TransportType.HTTP, connection=api.url)
...     ...
...     api.stats.peak("slow"), api.stats.count("flaky"), api.stats.headers("echo")[-1]["traceparent"]

``async with HttpApiServer() as api:`` does the same without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from penguiflow.demo.backends.api_document import openapi_document
from penguiflow.demo.backends.capacity import CapacityGate
from penguiflow.demo.backends.chaos import FAULT_KINDS, ChaosConfig
from penguiflow.demo.backends.server_stats import ServerStats

__all__ = ["FAULT_KINDS", "ChaosConfig", "HttpApiServer", "ServerStats", "openapi_document"]


Endpoint = Callable[[Request], Awaitable[Response]]


class HttpApiServer:
    """The demo API on ``127.0.0.1`` (port 0 = any free port) in a background thread.

    ``rate_limit_threshold``: more than this many ``rate_limited`` requests at once are answered 429 with
    ``Retry-After: retry_after_s``. ``flaky_failures``: default number of 503s per key of ``flaky``.
    ``chaos``: publish the ``chaos`` operation, misbehaving as configured (:class:`ChaosConfig`); the
    faults it injected are counted in ``stats.faults()``. ``bearer_token``: every operation then answers 401
    without ``Authorization: Bearer <token>``, and, like careless real servers, ``flaky``'s 503 quotes the
    Authorization header back — what a client must never pass on into its errors, logs or spans.
    ``capacity`` / ``capacity_service_s``: the ``capacity`` operation's hidden capacity and service time (a
    :class:`~penguiflow.demo.backends.capacity.CapacityGate` per ``lane``); :meth:`set_capacity` or
    ``POST /capacity?capacity=N`` changes it while it runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_threshold: int = 1,
        retry_after_s: int = 1,
        flaky_failures: int = 2,
        chaos: ChaosConfig | None = None,
        bearer_token: str | None = None,
        capacity: int = 8,
        capacity_service_s: float = 0.1,
    ) -> None:
        self.host = host
        self.bearer_token = bearer_token
        self.port = port
        self.rate_limit_threshold = rate_limit_threshold
        self.retry_after_s = retry_after_s
        self.flaky_failures = flaky_failures
        self.chaos = chaos
        self.stats = ServerStats()
        self.capacity = capacity
        self.capacity_service_s = capacity_service_s
        self.lanes: dict[str, CapacityGate] = {}  # the capacity operation's backends, one per lane
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, once a capacity request came
        # chaos requests now running, each with the connection it came on (see _chaos_measured)
        self._chaos_live: dict[int, _Live] = {}
        self.app = self._build_app()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:53127``; the OpenAPI document is at ``{url}/openapi.json``."""
        if self._thread is None:
            raise RuntimeError("the server is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    # --- life cycle ------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> str:
        """Start serving; returns :attr:`url` once the server accepts connections."""
        import uvicorn  # an optional (demo) dependency: only needed by whoever serves

        if self._thread is not None:
            return self.url
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the proto says TCP;
        # without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._stopping.clear()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"http-api:{self.port}", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the demo HTTP API did not start")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving; hanging requests are released first."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        self._stopping.set()
        server.should_exit = True
        thread.join(timeout_s)
        self._thread = self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- the capacity operation ----------------------------------------------------------------------------
    def set_capacity(self, capacity: int) -> None:
        """Change the hidden capacity of every lane of the ``capacity`` operation now (from any thread)."""
        self.capacity = capacity
        loop = self._loop
        if loop is None or loop.is_closed():
            for gate in self.lanes.values():
                gate.set_capacity(capacity)
            return
        loop.call_soon_threadsafe(self._apply_capacity, capacity)

    def _apply_capacity(self, capacity: int) -> None:
        for gate in self.lanes.values():
            gate.set_capacity(capacity)

    def lane(self, name: str) -> CapacityGate:
        gate = self.lanes.get(name)
        if gate is None:
            gate = self.lanes[name] = CapacityGate(self.capacity, self.capacity_service_s)
        return gate

    # --- the app -----------------------------------------------------------------------------------------
    def _measured(self, operation: str, endpoint: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            self.stats.enter(operation, {k.lower(): v for k, v in request.headers.items()})
            try:
                if self.bearer_token is not None and not hmac.compare_digest(
                    request.headers.get("authorization", ""), f"Bearer {self.bearer_token}"
                ):
                    return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401)
                return await endpoint(request)
            finally:
                self.stats.leave(operation)

        return run

    # --- chaos ---------------------------------------------------------------------------------------------
    def _connection(self, request: Request) -> Any:
        """uvicorn's protocol object (with its ``transport``) of the connection ``request`` came on."""
        client = request.scope.get("client")
        server = self._server
        if client is None or server is None:
            return None
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == tuple(client):
                return connection
        return None

    def _reap_abandoned(self) -> None:
        """Count out every chaos request whose client has hung up (its socket saw the peer's FIN or RST).

        The server learns of a hang-up one event-loop step after the kernel does; a client that closes a
        stalled connection and at once sends its next request could otherwise be seen with one request too
        many. A client that sent a request while still waiting on another stays counted: the peak is exact.
        """
        for key, live in list(self._chaos_live.items()):
            if live.counted and _peer_gone(live.connection):
                live.counted = False
                del self._chaos_live[key]
                self.stats.leave("chaos")

    def _chaos_measured(self, endpoint: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            self._reap_abandoned()
            self.stats.enter("chaos", {k.lower(): v for k, v in request.headers.items()})
            live = _Live(self._connection(request))
            self._chaos_live[id(live)] = live
            try:
                return await endpoint(request)
            finally:
                self._chaos_live.pop(id(live), None)
                if live.counted:
                    self.stats.leave("chaos")

        return run

    async def _until_disconnected(self, request: Request, limit_s: float) -> None:
        """Wait until the client hangs up, the server stops or ``limit_s`` passes."""
        deadline = time.monotonic() + limit_s
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(0.1):
                    message = await request.receive()
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                return

    def _build_app(self) -> Starlette:
        document = openapi_document(chaos=self.chaos is not None)

        async def echo(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"detail": "body is not JSON"}, status_code=400)
            return JSONResponse({"echo": body})

        async def get_item(request: Request) -> Response:
            raw_path = request.scope.get("raw_path", b"").decode("latin-1")
            return JSONResponse({"id": request.path_params["item_id"], "raw_path": raw_path})

        async def slow(request: Request) -> Response:
            ms = _int(request, "ms", 0)
            await asyncio.sleep(ms / 1000)
            return JSONResponse({"slept_ms": ms})

        async def flaky(request: Request) -> Response:
            key = request.query_params.get("key", "")
            attempt = self.stats.attempt("flaky", key)
            if attempt <= _int(request, "failures", self.flaky_failures):
                detail = "temporarily unavailable"
                if self.bearer_token is not None:
                    detail += f" (request had Authorization: {request.headers.get('authorization')})"
                return JSONResponse({"detail": detail}, status_code=503)
            return JSONResponse({"key": key, "attempt": attempt})

        async def rate_limited(request: Request) -> Response:
            if self.stats.in_flight("rate_limited") > self.rate_limit_threshold:
                return JSONResponse(
                    {"detail": "too many requests"},
                    status_code=429,
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            ms = _int(request, "ms", 0)
            await asyncio.sleep(ms / 1000)
            return JSONResponse({"ok": True})

        async def hang(request: Request) -> Response:
            # Wait until the client hangs up or the server stops, so shutdown never waits on us.
            while True:
                if self._stopping.is_set() or await request.is_disconnected():
                    break
                await asyncio.sleep(0.05)
            return JSONResponse({"detail": "released"}, status_code=503)

        async def capacity(request: Request) -> Response:
            self._loop = asyncio.get_running_loop()
            gate = self.lane(request.query_params.get("lane", ""))
            if not await gate.serve():
                return JSONResponse(
                    {"detail": "over capacity"},
                    status_code=429,
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            return JSONResponse({"ok": True})

        async def set_capacity(request: Request) -> Response:
            self._loop = asyncio.get_running_loop()
            self.capacity = _int(request, "capacity", self.capacity)
            self._apply_capacity(self.capacity)
            return Response(status_code=204)

        async def capacity_stats(request: Request) -> Response:
            return JSONResponse(
                {
                    lane: {"served": g.served, "refused": g.refused, "peak_present": g.peak_present}
                    for lane, g in self.lanes.items()
                }
            )

        async def not_found(request: Request) -> Response:
            return JSONResponse({"detail": "no such thing"}, status_code=404)

        async def unauthorized(request: Request) -> Response:
            received = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
            return JSONResponse({"detail": f"credentials {received!r} are not valid"}, status_code=401)

        async def chaos(request: Request) -> Response:
            config = self.chaos or ChaosConfig()
            key = request.query_params.get("key", "")
            attempt = self.stats.attempt("chaos", key)
            fault = config.draw(key, attempt)
            if fault is not None:
                self.stats.fault(fault)
            if fault == "rate_limited":
                return JSONResponse(
                    {"detail": "too many requests"},
                    status_code=429,
                    headers={"Retry-After": str(config.retry_after_s)},
                )
            if fault == "unavailable":
                return JSONResponse({"detail": "temporarily unavailable"}, status_code=503)
            if fault == "reset":
                connection = self._connection(request)
                if connection is not None:
                    sock = connection.transport.get_extra_info("socket")
                    if sock is not None:  # linger 0: close() sends RST, not FIN
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    connection.transport.abort()
                await self._until_disconnected(request, 5.0)
                return Response(status_code=500)  # never sent: the connection is gone
            if fault == "stall":
                await self._until_disconnected(request, config.stall_max_s)
                return JSONResponse({"detail": "stalled"}, status_code=503)
            ms = _int(request, "ms", 0)
            await asyncio.sleep(ms / 1000)
            return JSONResponse({"key": key, "attempt": attempt})

        async def openapi(request: Request) -> Response:
            return JSONResponse(document)

        async def stats(request: Request) -> Response:
            return JSONResponse(self.stats.snapshot())

        async def reset(request: Request) -> Response:
            self.stats.reset()
            return Response(status_code=204)

        measured = {
            "echo": ("/echo", ["POST"], echo),
            # ``:path`` because servers decode %2F before routing: an id containing "/" must still reach get_item.
            "get_item": ("/items/{item_id:path}", ["GET"], get_item),
            "slow": ("/slow", ["GET"], slow),
            "flaky": ("/flaky", ["GET"], flaky),
            "rate_limited": ("/rate_limited", ["GET"], rate_limited),
            "capacity": ("/capacity", ["GET"], capacity),
            "hang": ("/hang", ["GET"], hang),
            "not_found": ("/not_found", ["GET"], not_found),
            "unauthorized": ("/unauthorized", ["GET"], unauthorized),
        }
        routes = [
            Route(path, self._measured(name, endpoint), methods=methods, name=name)
            for name, (path, methods, endpoint) in measured.items()
        ]
        routes.append(Route("/chaos", self._chaos_measured(chaos), methods=["GET"], name="chaos"))
        routes += [
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/stats/reset", reset, methods=["POST"]),
            Route("/capacity", set_capacity, methods=["POST"]),
            Route("/capacity/stats", capacity_stats, methods=["GET"]),
        ]
        return Starlette(routes=routes)


@dataclass(eq=False)
class _Live:
    """A chaos request in progress: the connection it came on, and whether it is still counted in flight."""

    connection: Any
    counted: bool = True


def _peer_gone(connection: Any) -> bool:
    """Whether the client of ``connection`` has closed or reset it (asked of the kernel, without reading)."""
    if connection is None:
        return False
    transport = connection.transport
    if transport.is_closing():  # checked first: a closing transport's descriptor may already be reused
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    peek = socket.socket(fileno=sock.fileno())
    try:
        return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # open, nothing to read: the client is waiting
    except OSError:
        return True  # reset
    finally:
        peek.detach()  # the descriptor stays the transport's


def _int(request: Request, name: str, default: int) -> int:
    with contextlib.suppress(ValueError):
        return int(request.query_params.get(name, default))
    return default
