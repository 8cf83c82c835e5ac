"""The stdio session with a bounded reader: no message from the server longer than ``max_response_bytes``.

The ``mcp`` SDK's own stdio client joins a line's chunks by string concatenation, so one long line costs time
quadratic in its length (a 32 MB line took 13 s) and memory without bound. This one reads bytes into one
buffer and splits lines as they come (linear); a line that grows past the limit is not read further: the
session is closed — the calls in flight fail with
:class:`~penguiflow.errors.ToolResponseTooLargeError`, not retried — and the next call starts a fresh server.

The process handling (spawn in its own process group, the MCP shutdown sequence: close stdin, wait, signal the
tree) is the SDK's, reused as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

import anyio
from fastmcp.client.transports.base import ClientTransport, TransportOptions
from mcp import ClientSession
from mcp.client import stdio as sdk
from mcp.shared.message import SessionMessage

__all__ = ["BoundedStdioTransport"]


class BoundedStdioTransport(ClientTransport):
    """A fastmcp transport for one stdio server process per session (see the module docstring)."""

    def __init__(
        self,
        command: str,
        args: list[str],
        *,
        env: dict[str, str],
        errlog: TextIO,
        limit: int,
        on_too_large: Callable[[int], None],
    ) -> None:
        self.command = command
        self.args = args
        self.env = env
        self.errlog = errlog
        self.limit = limit
        self.on_too_large = on_too_large

    @contextlib.asynccontextmanager
    async def connect_session(
        self, *, transport_options: TransportOptions | None = None, **session_kwargs: Any
    ) -> AsyncIterator[ClientSession]:
        options = transport_options or TransportOptions()
        async with (
            self._streams() as (read, write),
            options.session_class(read, write, **session_kwargs) as session,
        ):
            yield session

    @contextlib.asynccontextmanager
    async def _streams(self) -> AsyncIterator[tuple[Any, Any]]:
        command = await sdk._get_executable_command(self.command)
        process = await sdk._create_platform_compatible_process(
            command=command, args=self.args, env=sdk.get_default_environment() | self.env, errlog=self.errlog
        )
        reader_send, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write, writer_receive = anyio.create_memory_object_stream[SessionMessage](0)

        async def read_stdout() -> None:
            assert process.stdout is not None
            buffer = bytearray()
            async with reader_send:
                with contextlib.suppress(
                    anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream
                ):
                    async for chunk in process.stdout:
                        buffer += chunk
                        start = 0
                        while (end := buffer.find(b"\n", start)) >= 0:
                            line = buffer[start:end].decode("utf-8", "replace")
                            start = end + 1
                            await reader_send.send(sdk._parse_line(line))
                        del buffer[:start]
                        if len(buffer) > self.limit:
                            self.on_too_large(len(buffer))
                            return  # closing the read stream ends the session; the process is stopped below

        async def write_stdin() -> None:
            assert process.stdin is not None
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                async with writer_receive:
                    async for message in writer_receive:
                        data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                        await process.stdin.send(data.encode())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_stdout)
            tasks.start_soon(write_stdin)
            try:
                yield read, write
            finally:
                with anyio.CancelScope(shield=True):
                    await read.aclose()
                    await write.aclose()
                    await sdk._stop_server_process(process)
                tasks.cancel_scope.cancel()
