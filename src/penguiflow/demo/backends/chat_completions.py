"""A Chat Completions endpoint on 127.0.0.1 that plays a script: the n-th request gets the n-th reply (the last
repeats). A reply is a list of tool calls ``(name, arguments)`` — all in one assistant message — or a text. It
drives real clients (the OpenAI SDK under the Agents SDK) offline; every request body is kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ToolCalls = Sequence[tuple[str, dict[str, Any]]]
Script = Sequence[ToolCalls | str]


class ChatCompletionsServer:
    def __init__(self, script: Script) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                self._send(200, server._reply(body))

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

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
        step = self.script[min(index, len(self.script) - 1)]
        if isinstance(step, str):
            message: dict[str, Any] = {"role": "assistant", "content": step}
            finish = "stop"
        else:
            calls = [
                {
                    "id": f"call_{index}_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for n, (name, arguments) in enumerate(step)
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def tool_results(self) -> list[dict[str, Any]]:
        """The ``role: tool`` messages of the last request: what the client sent back for the tool calls."""
        return [m for m in self.requests[-1]["messages"] if m.get("role") == "tool"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def chat_completions_server(script: Script) -> Iterator[ChatCompletionsServer]:
    server = ChatCompletionsServer(script)
    try:
        yield server
    finally:
        server.close()
