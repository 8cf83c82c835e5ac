"""A hostile MCP server over streamable HTTP, in its own process (so its buffers are not in the test's RSS): run
as ``python flood_mcp_server.py``; prints its port. ``initialize`` and ``tools/list`` are answered properly
(on ``/huge-list/mcp``, ``tools/list`` itself is the flood); each tool's ``tools/call`` answer is a flood of one
kind — 300 MB or endless, plain, chunked, gzip, an error body, one giant SSE event or endless small ones.

``stats`` (a normal tool) says, per tool, how many calls came in, how many bytes of body went out and whether
the client hung up before the end; it first waits for every flood still being written to end, so what it
reports is final.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from flood_server import BOMB, CHUNK, TOTAL, serve

# What "endless" sends at most: 3.4 times the 300 MB and 64 times the default limit, yet a client that does
# read it all (a regression) costs the test a few GB, not the shared machine all its memory.
ENDLESS = 1024 * 1024 * 1024
FLOODS = ("big", "declared", "chunked", "bomb", "error", "sse_giant", "sse_endless")
_lock = threading.Lock()
_stats: dict[str, dict[str, int]] = {}
_writing = threading.Semaphore(64)  # one permit per flood being written; stats takes them all to wait


def _tools(names: tuple[str, ...]) -> list[dict[str, Any]]:
    # read-only: the retry policy would re-send them after a connection failure, so a count of 1 proves the
    # too-large error is not retried
    return [
        {"name": name, "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}
        for name in names
    ]


def _reply(request_id: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode()


def _text_prefix(request_id: Any) -> bytes:
    """The start of a ``tools/call`` result whose text never ends."""
    return (
        b'{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"'
        % json.dumps(request_id).encode()
    )


def _endless_events() -> Iterator[bytes]:
    event = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":'
    for n in itertools.count():
        yield event + b'{"progressToken":"none","progress":%d}}\n\n' % n
        if n * len(event) > ENDLESS:
            return


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # no standalone event stream
        self._head(405, {"Content-Length": "0"})

    def do_DELETE(self) -> None:
        self._head(405, {"Content-Length": "0"})

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:  # a notification
            self._head(202, {"Content-Length": "0"})
        elif method == "initialize":
            version = message["params"]["protocolVersion"]
            info = {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "flood", "version": "1"},
            }
            self._json(_reply(request_id, info))
        elif method == "tools/list" and self.path.startswith("/huge-list/"):
            self._flood("tools/list", 200, {"Connection": "close"}, self._endless_list(request_id))
        elif method == "tools/list":
            self._json(_reply(request_id, {"tools": _tools((*FLOODS, "stats"))}))
        elif method == "tools/call" and message["params"]["name"] == "stats":
            for _ in range(64):
                _writing.acquire()
            for _ in range(64):
                _writing.release()
            with _lock:
                text = json.dumps(_stats)
            self._json(_reply(request_id, {"content": [{"type": "text", "text": text}]}))
        elif method == "tools/call":
            self._call(message["params"]["name"], request_id)
        else:
            error = {"code": -32601, "message": f"no method {method}"}
            self._json(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode())

    def _call(self, tool: str, request_id: Any) -> None:
        plain = itertools.chain([_text_prefix(request_id)], itertools.repeat(CHUNK, ENDLESS // len(CHUNK)))
        body = itertools.islice(plain, TOTAL // len(CHUNK))
        if tool == "big":  # 300 MB, no length: the body ends when the connection closes
            self._flood(tool, 200, {"Connection": "close"}, body)
        elif tool == "declared":  # 300 MB announced
            self._flood(tool, 200, {"Content-Length": str(TOTAL)}, body)
        elif tool == "chunked":  # a chunked body that never ends
            self._flood(
                tool, 200, {"Transfer-Encoding": "chunked"}, (b"%x\r\n%s\r\n" % (len(c), c) for c in plain)
            )
        elif tool == "bomb":  # ~300 kB of gzip inflating to 300 MB
            self._flood(tool, 200, {"Content-Length": str(len(BOMB)), "Content-Encoding": "gzip"}, [BOMB])
        elif tool == "error":  # a 500 with a 300 MB JSON body
            self._flood(tool, 500, {"Connection": "close"}, body)
        elif tool == "sse_giant":  # one event that never ends
            start = b"event: message\ndata: " + _text_prefix(request_id)
            self._flood(tool, 200, {"Connection": "close"}, itertools.chain([start], plain), sse=True)
        elif tool == "sse_endless":  # small events, forever, and never the response
            self._flood(tool, 200, {"Connection": "close"}, _endless_events(), sse=True)

    def _endless_list(self, request_id: Any) -> Iterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":%s,"result":{"tools":[' % json.dumps(request_id).encode()
        for n in itertools.count():
            yield json.dumps(_tools((f"t{n}_" + "x" * 200,))[0]).encode() + b","
            if n * 200 > ENDLESS:
                return

    def _flood(
        self, tool: str, status: int, headers: dict[str, str], parts: Any, *, sse: bool = False
    ) -> None:
        with _writing:
            with _lock:
                stats = _stats.setdefault(tool, {"calls": 0, "sent": 0, "hung_up": 0})
                stats["calls"] += 1
            self.close_connection = True
            content_type = "text/event-stream" if sse else "application/json"
            self._head(status, {"Content-Type": content_type, **headers})
            try:
                for part in parts:
                    self.wfile.write(part)
                    with _lock:
                        stats["sent"] += len(part)
                self.wfile.flush()
                # All written (the socket's buffers took it): the client's hanging up shows as the end of
                # its side; one that kept the connection for another request would not end it.
                self.connection.settimeout(30)
                if self.connection.recv(1):
                    return
            except TimeoutError:  # nor one still holding it
                return
            except OSError:  # the client hung up: what the tests expect
                pass
            with _lock:
                stats["hung_up"] += 1

    def _json(self, data: bytes) -> None:
        self._head(200, {"Content-Type": "application/json", "Content-Length": str(len(data))})
        self.wfile.write(data)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    serve(Handler)
