"""Small real servers on 127.0.0.1 for the reliability tests: an HTTP server whose routes the test scripts (any
status, any bytes, a body trickled forever), and a Chat Completions endpoint that replays scripted replies."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

GARBAGE_COMMAND = (
    f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name('garbage_mcp_server.py')))}"
)
"""The command line that starts the misbehaving MCP server of ``garbage_mcp_server.py`` over stdio."""


@contextmanager
def script_server(script: Path) -> Iterator[str]:
    """Run the server ``script`` in its own process (so its buffers are not in the test's RSS); it prints its
    port and serves until its stdin closes. Yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        process.wait(10)


@dataclass
class Route:
    """What one path answers: ``status`` with ``body`` (bytes, or JSON-encoded otherwise). ``length=False``
    sends no Content-Length (the body ends when the connection closes); ``trickle_s`` sends headers, then one
    byte every ``trickle_s`` seconds until the client hangs up."""

    body: Any = b""
    status: int = 200
    content_type: str = "application/json"
    length: bool = True
    trickle_s: float | None = None
    respond: Callable[[dict[str, str], bytes], tuple[int, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class ScriptedHttpServer:
    """``routes`` by path (query ignored); every request is counted per path, with its headers and body."""

    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    targets: list[tuple[str, str]] = field(default_factory=list)  # (method, raw target with its query)
    default: Route | None = None  # what a path without a route answers (404 when None)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                path = self.path.split("?", 1)[0]
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.hits[path] += 1
                server.requests.append((path, headers, body))
                server.targets.append((self.command, self.path))
                route = server.routes.get(path, server.default)
                if route is None:
                    return self._send(Route({"detail": f"no route {path}"}, status=404))
                if route.delay_s:
                    time.sleep(route.delay_s)
                if route.respond is not None:
                    status, payload = route.respond(headers, body)
                    return self._send(
                        Route(payload, status=status, content_type=route.content_type, headers=route.headers)
                    )
                return self._send(route)

            def _send(self, route: Route) -> None:
                data = route.payload()
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.trickle_s is not None:
                    self.send_header("Connection", "close")  # no length: the body ends when we hang up
                    self.end_headers()
                    self._trickle(route.trickle_s)
                    return
                if route.length:
                    self.send_header("Content-Length", str(len(data)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _trickle(self, every_s: float) -> None:
                self.close_connection = True
                try:
                    while not server._stopping.is_set():
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(every_s)
                except OSError:  # the client hung up: what we wait for
                    return

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


class ChatCompletions:
    """``POST /v1/chat/completions`` answering with the next of ``replies`` (a callable gets the request body):
    a dict is sent as a JSON body with status 200, a ``(status, bytes)`` pair as it is."""

    def __init__(self, replies: list[Any] | Callable[[dict[str, Any]], Any]) -> None:
        self.replies = replies
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.server = ScriptedHttpServer({"/v1/chat/completions": Route(respond=self._respond)})
        self.url = f"{self.server.url}/v1"

    def _respond(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        request = json.loads(body)
        self.bodies.append(request)
        self.headers.append(headers)
        if callable(self.replies):
            reply = self.replies(request)
        elif self.replies:
            reply = self.replies.pop(0)
        else:
            return 500, {"error": {"message": "script exhausted"}}
        if isinstance(reply, tuple):
            return reply
        return 200, reply

    def __enter__(self) -> Self:
        self.server.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.__exit__(exc_type, exc, tb)


def chat_reply(content: Any = None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One Chat Completions reply body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }


def function_call(name: Any, arguments: Any, call_id: str = "call_0") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def iter_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything chained under it (causes and contexts)."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
