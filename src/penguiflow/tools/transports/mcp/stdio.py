"""The stdio session with a bounded reader: no message from the server longer than ``max_response_bytes``.

The ``mcp`` SDK's own stdio client joins a line's chunks by string concatenation, so one long line costs time
quadratic in its length (a 32 MB line took 13 s) and memory without bound. This one reads bytes into one
buffer and splits lines as they come (linear); a line that grows past the limit is not read further: the
session is closed — the calls in flight fail with
:class:`~penguiflow.errors.ToolResponseTooLargeError`, not retried — and the next call starts a fresh server.

Between the pipes and the session, no task of its own where none is needed: a request is written into the
server's stdin by the task that sends it (the SDK's client puts a memory stream and a writer task there, two
more turns of the event loop per request), and a parsed message is handed to the session's reader directly
when it is already waiting for one.

The process handling (spawn in its own process group, the MCP shutdown sequence: close stdin, wait, signal the
tree) is the SDK's, reused as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

import anyio
from fastmcp.client.transports.base import ClientTransport, TransportOptions, VersionAwareClientSession
from mcp import ClientSession
from mcp.client import stdio as sdk
from mcp.shared.message import SessionMessage

from penguiflow.tools.transports.mcp.session import LeanSession

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
        session_class = options.session_class
        if session_class is VersionAwareClientSession:  # fastmcp's default; a caller's own class stays
            session_class = LeanSession
        async with (
            self._streams() as (read, write),
            session_class(read, write, **session_kwargs) as session,
        ):
            yield session

    @contextlib.asynccontextmanager
    async def _streams(self) -> AsyncIterator[tuple[Any, Any]]:
        command = await sdk._get_executable_command(self.command)
        process = await sdk._create_platform_compatible_process(
            command=command, args=self.args, env=sdk.get_default_environment() | self.env, errlog=self.errlog
        )
        reader_send, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        assert process.stdin is not None
        write = _StdinWriter(process.stdin)

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
                            message = sdk._parse_line(line)
                            try:  # the session's reader is usually waiting: no loop turn to hand it over
                                reader_send.send_nowait(message)
                            except anyio.WouldBlock:
                                await reader_send.send(message)
                        del buffer[:start]
                        if len(buffer) > self.limit:
                            self.on_too_large(len(buffer))
                            return  # closing the read stream ends the session; the process is stopped below

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_stdout)
            try:
                yield read, write
            finally:
                with anyio.CancelScope(shield=True):
                    await read.aclose()
                    await write.aclose()
                    await sdk._stop_server_process(process)
                tasks.cancel_scope.cancel()


class _StdinWriter:
    """The session's write stream: each message goes into the server's stdin from the task that sends it.

    A message is one ``write`` of a whole line, so concurrent senders never interleave. The pipe is written
    through asyncio's ``StreamWriter`` under anyio's wrapper when there is one: anyio's ``send`` adds a
    checkpoint before and a cancel-shielded one after (a turn of the event loop per request) that a write into
    a pipe does not need; ``drain()`` still waits while the pipe is full. A closed or broken pipe raises
    ``BrokenResourceError``, which the SDK's dispatcher turns into ``CONNECTION_CLOSED`` for that request;
    after :meth:`aclose`, ``ClosedResourceError``.
    """

    def __init__(self, stdin: anyio.abc.ByteSendStream) -> None:
        self._stdin = stdin
        pipe = getattr(stdin, "_stream", None)  # anyio's StreamWriterWrapper; any other stream: its own send
        self._pipe = pipe if isinstance(pipe, asyncio.StreamWriter) else None
        self._closed = False

    async def send(self, message: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        pipe = self._pipe
        try:
            if pipe is None:
                await self._stdin.send(data)
                return
            if pipe.is_closing():
                raise anyio.BrokenResourceError
            pipe.write(data)
            await pipe.drain()  # returns at once unless the pipe is full (or broke)
        except (ConnectionError, RuntimeError, OSError) as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> _StdinWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
