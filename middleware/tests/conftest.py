"""Shared set-up for the plug-in layers' tests: the session's in-memory OpenTelemetry SDK (the same helper the
core tests use), a real redis-server, and a real HTTP server on 127.0.0.1 that counts concurrent requests."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

# `pytest middleware/tests` run from anywhere: make the repository's `tests` package importable.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import otel  # noqa: E402
from tests.support.redis_server import RedisServer, fresh_redis_server, redis_server  # noqa: E402

otel.install()

__all__ = ["CountingServer", "RedisServer", "fresh_redis_server", "redis_server"]


@pytest.fixture
def spans() -> object:
    """The session's in-memory span exporter, cleared for this test."""
    otel.SPANS.clear()
    return otel.SPANS


class CountingServer:
    """A threaded HTTP server: ``GET /work?ms=50`` sleeps that long; it counts requests running at once."""

    def __init__(self, default_ms: float = 50.0) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.max_concurrent = 0
        self.arrivals: list[float] = []  # time.monotonic() of each request, in this (the test) process
        self.wall_arrivals: list[float] = []  # time.time() of each: comparable with Redis's clock
        self.by_worker: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                ms = float(query.get("ms", [default_ms])[0])
                worker = query.get("worker", ["?"])[0]
                with server.lock:
                    server.current += 1
                    server.max_concurrent = max(server.max_concurrent, server.current)
                    server.arrivals.append(time.monotonic())
                    server.wall_arrivals.append(time.time())
                    server.by_worker[worker] = server.by_worker.get(worker, 0) + 1
                try:
                    time.sleep(ms / 1000)
                finally:
                    with server.lock:
                        server.current -= 1
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()
