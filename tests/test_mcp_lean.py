"""The lean stdio call path (``transports/mcp/direct.py``, ``stdio.py``) against the demo's real fastmcp server
in a subprocess: one exported span per call (ours), no task started per call, whole requests written from the
calling task even when the pipe is full."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

import pytest

from penguiflow.demo.backends import mcp_server
from penguiflow.telemetry import names
from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType
from tests.support import otel

pytestmark = pytest.mark.timeout(60)


def _config(prefix: str, **kw: Any) -> ExternalToolConfig:
    return ExternalToolConfig(
        name=otel.unique(prefix).replace(".", "_"),
        transport=TransportType.MCP,
        connection=mcp_server.command(),
        env={"PENGUIFLOW_MCP_DELAY_S": "0"},
        **kw,
    )


async def test_a_stdio_call_exports_one_span_ours_and_none_of_the_client_libraries(spans: object) -> None:
    async with ToolNode(_config("onespan")) as node:
        otel.SPANS.clear()
        for i in range(3):
            await node.call(f"{node.name}.get_user", {"username": f"u{i}"})
        exported = otel.SPANS.get_finished_spans()
    # Neither fastmcp's "tools/call get_user" nor the mcp SDK's "MCP send tools/call get_user" (scope
    # mcp-python-sdk): only our execute_tool span, one per call, a root each.
    assert [(s.instrumentation_scope.name if s.instrumentation_scope else "", s.name) for s in exported] == [
        (names.SCOPE, f"execute_tool {node.name}.get_user")
    ] * 3
    ids = {s.context.span_id for s in exported}
    assert all(s.parent is None or s.parent.span_id not in ids for s in exported)
    for span in exported:  # the SDK's request attributes kept, on our span
        assert span.attributes[names.MCP_METHOD_NAME] == "tools/call"
        assert span.attributes[names.JSONRPC_REQUEST_ID]
        assert span.attributes[names.NETWORK_TRANSPORT] == "pipe"


class _TaskCount:
    """Counts the tasks the running loop creates while installed."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_task_factory()

    def _factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
        **kw: Any,
    ) -> asyncio.Future[Any]:
        self.created.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **kw)

    def __enter__(self) -> _TaskCount:
        self._loop.set_task_factory(self._factory)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.set_task_factory(self._previous)


async def test_a_stdio_call_starts_no_task_of_its_own() -> None:
    # fastmcp's call_tool_mcp ran each call as two tasks raced against its session task, and a writer task took
    # every request off a memory stream: per-call cost the stdio path does not need (see direct.py).
    async with ToolNode(_config("notask")) as node:
        await node.call(f"{node.name}.get_user", {"username": "warm"})
        with _TaskCount() as tasks:
            for i in range(5):
                assert (await node.call(f"{node.name}.get_user", {"username": f"u{i}"}))["login"] == f"u{i}"
    assert tasks.created == []


async def test_concurrent_requests_larger_than_the_pipe_arrive_whole() -> None:
    # Each request is written by its own task straight into stdin; 256 KiB each fills the pipe (64 KiB), so the
    # writers wait in drain() while the server reads, and their lines must not interleave.
    bodies = [chr(ord("a") + i) * (256 * 1024) for i in range(8)]
    async with ToolNode(_config("bigwrite", max_concurrency=8, timeout_s=30)) as node:
        issues = await asyncio.gather(
            *(
                node.call(f"{node.name}.create_issue", {"repo": "a/b", "title": str(i), "body": body})
                for i, body in enumerate(bodies)
            )
        )
    assert [issue["body"] for issue in issues] == bodies
