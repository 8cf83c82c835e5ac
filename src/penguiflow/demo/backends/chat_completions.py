"""A Chat Completions endpoint on 127.0.0.1 that plays a script: the n-th request gets the n-th reply (the last
repeats). A reply is a list of tool calls ``(name, arguments)`` — all in one assistant message — or a text. It
drives real clients (the OpenAI SDK under the Agents SDK) offline, for the examples and the tests; every request
body is kept.

>>> with chat_completions_server([[("search", {"q": "penguins"})], "done"]) as model:
...     client = AsyncOpenAI(base_url=model.url, api_key="not-needed")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatCompletionsServer", "Script", "chat_completions_server", "completion"]

ToolCalls = Sequence[tuple[str, dict[str, Any]]]
Script = Sequence[ToolCalls | str]


class ChatCompletionsServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, answered by :meth:`reply` (by default: the script). Every
    request is kept in ``received`` as (lower-cased headers, body); a ``status`` other than 200 answers every
    request with that error. Started at construction; :meth:`close` stops it."""

    def __init__(self, script: Script = ("done",)) -> None:
        self.script = list(script)
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.status != 200:
                    return self._send(server.status, {"error": {"message": f"status {server.status}"}})
                self._send(200, server.reply(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request bodies, in order."""
        with self._lock:
            return [body for _headers, body in self.received]

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The completion for ``body``: the script's step for this request (the last one repeats)."""
        with self._lock:
            index = len(self.received) - 1
        step = self.script[min(index, len(self.script) - 1)]
        if isinstance(step, str):
            return completion(body, {"role": "assistant", "content": step}, "stop", index)
        calls = [
            {
                "id": f"call_{index}_{n}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for n, (name, arguments) in enumerate(step)
        ]
        return completion(
            body, {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls", index
        )

    def tool_results(self) -> list[dict[str, Any]]:
        """The ``role: tool`` messages of the last request: what the client sent back for the tool calls."""
        return [m for m in self.requests[-1]["messages"] if m.get("role") == "tool"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(
    body: dict[str, Any], message: dict[str, Any], finish_reason: str, index: int = 0
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice, ``message``."""
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "test-model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


@contextmanager
def chat_completions_server(script: Script) -> Iterator[ChatCompletionsServer]:
    server = ChatCompletionsServer(script)
    try:
        yield server
    finally:
        server.close()
