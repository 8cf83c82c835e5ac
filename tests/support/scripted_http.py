"""A real HTTP server on 127.0.0.1 whose paths answer from scripts: ``503`` then ``200``, a ``Retry-After``, a
slow reply. Each path's script is played in order and its last entry repeats; every request is counted."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = "ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hangup: bool = False  # close the connection without answering


class ScriptedServer:
    def __init__(self, port: int = 0) -> None:
        self._scripts: dict[str, list[Reply]] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def script(self, path: str, *replies: Reply) -> str:
        """Play ``replies`` on ``path`` (the last one repeats); returns the path's URL."""
        with self._lock:
            self._scripts[path] = list(replies) or [Reply()]
            self._hits[path] = 0
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            script = self._scripts.get(path)
            index = self._hits.get(path, 0)
            self._hits[path] = index + 1
        reply = Reply(404, "no script") if script is None else script[min(index, len(script) - 1)]
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.hangup:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        data = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header(
                "Content-Type", "text/plain" if isinstance(reply.body, str) else "application/json"
            )
            handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
