"""A server that floods its clients, in its own process (so its buffers are not in the test's RSS): run as
``python flood_server.py``; prints its port. Each route sends 300 MB one way or another, or never stops."""

from __future__ import annotations

import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MB = 1024 * 1024
TOTAL = 300 * MB
CHUNK = b"a" * MB


def _bomb() -> bytes:
    """300 MB of zeros, gzip-compressed (~300 kB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    parts = [compressor.compress(zeros) for _ in range(TOTAL // MB)]
    parts.append(compressor.flush())
    return b"".join(parts)


BOMB = _bomb()
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "flood", "version": "1"},
    "paths": {
        f"/{name}": {"get": {"operationId": name}} for name in ("big", "declared", "bomb", "endless", "error")
    },
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/openapi.json":
                data = json.dumps(DOCUMENT).encode()
                self._head(200, {"Content-Length": str(len(data))})
                self.wfile.write(data)
            elif path == "/declared":
                self._head(200, {"Content-Length": str(TOTAL)})
                self._flood()
            elif path == "/bomb":
                self._head(200, {"Content-Length": str(len(BOMB)), "Content-Encoding": "gzip"})
                self.wfile.write(BOMB)
            elif path in ("/big", "/error", "/doc-error/openapi.json", "/endless"):
                status = 200 if path in ("/big", "/endless") else 500 if path == "/error" else 404
                self._head(status, {"Connection": "close"})
                self.close_connection = True
                self._flood(forever=path == "/endless")
            else:
                self._head(404, {"Content-Length": "0"})
        except OSError:  # the client hung up: what the tests expect
            return

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _flood(self, forever: bool = False) -> None:
        sent = 0
        while forever or sent < TOTAL:
            self.wfile.write(CHUNK)
            sent += len(CHUNK)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> None:
    """Serve ``handler`` on a free port of 127.0.0.1, print the port, and serve until stdin closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # serve until the test closes our stdin (or dies)


if __name__ == "__main__":
    serve(Handler)
