"""HTTP transport on the real API documents: ``connect()`` time on GitHub REST and Stripe 2023-08-16 (served as
published over HTTP from 127.0.0.1), the longest event-loop stall while connecting (wall clock, a 1 ms ticker) and
the longest CPU time the loop's thread spent in one step, RSS after discovery; and the per-call client overhead of
a form-encoded and a JSON call through a ToolNode against a local server, next to a bare httpx client making the
same request (alternating rounds, medians).

Targets (issue 10): connect ≤ 1.5 s on GitHub, ≤ 0.5 s on Stripe, longest stall ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bench  # noqa: E402
import httpx  # noqa: E402

from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType  # noqa: E402

SPECS = Path(os.environ.get("PENGUIFLOW_SPECS_DIR", HERE.parent.parent / "shared" / "specs"))
if not SPECS.exists():
    SPECS = Path("/work/shared/specs")
DOCUMENTS = {"github": "github-api.json", "stripe": "stripe-2023-08-16.json"}

# A tiny keep-alive HTTP/1.1 server (its own process) answering every request with a small JSON body, and
# /openapi.json with a document of one form and one JSON operation.
SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    DOC = json.dumps({
        "openapi": "3.0.3", "info": {"title": "bench", "version": "1"},
        "paths": {
            "/v1/customers": {"post": {"operationId": "form", "requestBody": {"content": {
                "application/x-www-form-urlencoded": {
                    "encoding": {"metadata": {"style": "deepObject", "explode": True}},
                    "schema": {"type": "object", "properties": {
                        "email": {"type": "string"}, "metadata": {"type": "object"}}}}}}}},
            "/repos/{owner}/{repo}/issues": {"post": {"operationId": "json", "parameters": [
                {"name": "owner", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "repo", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"title": {"type": "string"},
                    "labels": {"type": "array", "items": {"type": "string"}}}}}}}}},
        }}).encode()
    OK = b'{"id": 1, "ok": true}'
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                body = DOC if head.startswith(b"GET /openapi.json") else OK
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: "
                             + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(main())
    """
)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


class Stalls:
    """Longest wall-clock gap of a 1 ms ticker, and longest CPU time of one loop step."""

    def __init__(self) -> None:
        self.gap = 0.0
        self.step = 0.0

    async def __aenter__(self) -> Stalls:
        self._running = True
        self._task = asyncio.create_task(self._tick())
        original = asyncio.events.Handle._run
        self._original = original

        def timed(handle: asyncio.events.Handle) -> None:
            start = time.thread_time()
            try:
                original(handle)
            finally:
                self.step = max(self.step, time.thread_time() - start)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        await asyncio.sleep(0)
        return self

    async def _tick(self) -> None:
        last = time.perf_counter()
        while self._running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gap = max(self.gap, now - last - 0.001)
            last = now

    async def __aexit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]
        self._running = False
        await self._task


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def start(command: list[str]) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # our server prints its port; http.server "Serving HTTP on ... port N"
    return process, int(re.findall(r"\d+", line.split("port")[-1])[0])


async def connect_round(name: str, port: int) -> dict[str, Any]:
    config = ExternalToolConfig(
        name=name,
        transport=TransportType.HTTP,
        connection=f"http://127.0.0.1:{port}",
        openapi_url=f"http://127.0.0.1:{port}/{DOCUMENTS[name]}",
        auth_type=AuthType.BEARER if name == "stripe" else AuthType.NONE,
        auth_config={"token": "sk_test_bench"} if name == "stripe" else {},
        timeout_s=60.0,
    )
    gc.collect()
    before = rss_mb()
    node = ToolNode(config)
    async with Stalls() as stalls:
        start_s = time.perf_counter()
        tools = await node.connect()
        elapsed = time.perf_counter() - start_s
    after = rss_mb()
    await node.close()
    del node
    return {"s": elapsed, "gap_ms": stalls.gap * 1000, "step_ms": stalls.step * 1000, "tools": len(tools),
            "rss_mb": after - before}  # fmt: skip


async def overhead(port: int, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    url = f"http://127.0.0.1:{port}"
    config = ExternalToolConfig(
        name="bench", transport=TransportType.HTTP, connection=url, retry_policy=RetryPolicy(max_attempts=1)
    )
    form_args = {"email": "a@b.co", "metadata": {"order_id": "6735"}}
    json_args = {"owner": "octo", "repo": "cat", "title": "t", "labels": ["a", "b"]}
    results: dict[str, dict[str, list[float]]] = {
        "form": {"node": [], "httpx": []},
        "json": {"node": [], "httpx": []},
    }
    async with ToolNode(config) as node, httpx.AsyncClient(base_url=url) as client:

        async def node_call(kind: str) -> None:
            await node.call(kind, form_args if kind == "form" else json_args)

        async def bare_call(kind: str) -> None:
            if kind == "form":
                r = await client.post("/v1/customers", data={"email": "a@b.co", "metadata[order_id]": "6735"})
            else:
                r = await client.post("/repos/octo/cat/issues", json={"title": "t", "labels": ["a", "b"]})
            r.json()

        for kind in ("form", "json"):
            for fn in (node_call, bare_call):
                for _ in range(20):
                    await fn(kind)  # warm up
        for _ in range(rounds):
            for kind in ("form", "json"):
                for label, fn in (("node", node_call), ("httpx", bare_call)):
                    start_s = time.perf_counter()
                    for _ in range(calls):
                        await fn(kind)
                    results[kind][label].append((time.perf_counter() - start_s) / calls * 1e6)
    return {
        kind: {
            "node_us": _bench.median(values["node"]),
            "httpx_us": _bench.median(values["httpx"]),
            "overhead_us": _bench.median(
                [n - h for n, h in zip(values["node"], values["httpx"], strict=True)]
            ),
        }
        for kind, values in results.items()
    }


async def main() -> None:
    args = _bench.parser(__doc__.splitlines()[0] if __doc__ else "").parse_args()
    rounds = 1 if args.quick else 3
    docs, docs_port = start(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(SPECS)]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(SERVER)
    api, api_port = start([sys.executable, script.name])
    try:
        # the machine's own noise: the same ticker on an idle loop for a second
        async with Stalls() as idle:
            await asyncio.sleep(1.0)
        # and with a worker thread running pure Python for a second: the GIL alone, no penguiflow code
        async with Stalls() as busy:
            await asyncio.to_thread(_spin, 1.0)
        connect: dict[str, list[dict[str, Any]]] = {name: [] for name in DOCUMENTS}
        for _ in range(rounds):
            for name in DOCUMENTS:  # alternated
                connect[name].append(await connect_round(name, docs_port))
        calls = await overhead(api_port, 50 if args.quick else 400, 3 if args.quick else 9)
    finally:
        for process in (docs, api):
            process.terminate()
            process.wait(10)
        os.unlink(script.name)
    rows = []
    summary: dict[str, Any] = {}
    for name, runs in connect.items():
        seconds = [r["s"] for r in runs]
        summary[name] = {
            "connect_s_median": _bench.median(seconds),
            "connect_s_min_max": _bench.spread(seconds),
            "longest_stall_ms": max(r["gap_ms"] for r in runs),
            "longest_loop_step_ms": max(r["step_ms"] for r in runs),
            "tools": runs[0]["tools"],
            "rss_after_discovery_mb": _bench.median([r["rss_mb"] for r in runs]),
        }
        s = summary[name]
        rows.append([name, s["tools"], s["connect_s_median"], f"{min(seconds):.3f}-{max(seconds):.3f}",
                     s["longest_stall_ms"], s["longest_loop_step_ms"], s["rss_after_discovery_mb"]])  # fmt: skip
    rows.append(["(idle loop, 1 s)", "-", "-", "-", idle.gap * 1000, idle.step * 1000, "-"])
    rows.append(["(Python thread, 1 s)", "-", "-", "-", busy.gap * 1000, busy.step * 1000, "-"])
    summary["idle_longest_stall_ms"] = idle.gap * 1000
    summary["python_thread_longest_stall_ms"] = busy.gap * 1000
    print(_bench.table("connect() on the real documents", ["document", "tools", "connect s (median)", "min-max",
                       "longest stall ms", "longest loop step ms", "RSS +MB"], rows))  # fmt: skip
    print()
    print(_bench.table("Per-call client overhead vs bare httpx (local server)", ["call", "ToolNode µs", "httpx µs",
                       "overhead µs"], [[k, v["node_us"], v["httpx_us"], v["overhead_us"]] for k, v in calls.items()]))  # fmt: skip
    _bench.write_json(
        "http_real_apis",
        {
            "connect": summary,
            "per_call": calls,
            "rounds": rounds,
            "targets": {"github_s": 1.5, "stripe_s": 0.5, "stall_ms": 50},
        },
        args.out,
    )


if __name__ == "__main__":
    asyncio.run(main())
