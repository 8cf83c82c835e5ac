"""Stdio servers: the command line (never a shell) and the server's stderr (captured, capped, masked).

A stdio server's stderr is *its* log. It is not handed to our stderr — a server may print megabytes there, or
the secrets of its environment — but read from a pipe and logged under ``penguiflow.mcp.<source>`` (INFO),
one record per line: each line masked (the source's configured secrets) and cut to :data:`MAX_LINE`
characters, at most :data:`MAX_LOGGED` bytes per session logged (then one WARNING; the rest is read and
dropped, so the server never blocks on a full pipe). Reading is asynchronous and costs one small buffer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from collections.abc import Callable
from typing import Final, TextIO, cast

from penguiflow.errors import ConfigurationError
from penguiflow.tools.transports.base import shorten

__all__ = ["MAX_LINE", "MAX_LOGGED", "StderrLog", "split_command"]

_SHELL_OPERATORS: Final = frozenset("();<>|&")
_LINE_BREAKS: Final = ("\n", "\r", "\x00")
MAX_LINE: Final = 2000
"""Characters of one stderr line that are logged (the line is masked first, then cut)."""
MAX_LOGGED: Final = 256 * 1024
"""Bytes of a session's stderr that are logged at most."""
_KEEP: Final = 8 * 1024  # bytes of a line held while it is read: a longer one is cut, never buffered whole


def split_command(connection: str) -> list[str]:
    """The argv of a stdio command line. Raises ``ConfigurationError`` for an empty line, one holding a line
    break or NUL (one command line is one line: a second one would be read as arguments), or one that needs a
    shell to mean what it says (an unquoted ``;``, ``&&``, ``|``, redirection…): nothing here runs a shell."""
    if any(char in connection for char in _LINE_BREAKS):
        raise ConfigurationError(
            "connection", "the MCP command line holds a line break or NUL: give one command on one line"
        )
    lexer = shlex.shlex(connection, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
        argv = shlex.split(connection)
    except ValueError as exc:  # unbalanced quotes
        raise ConfigurationError("connection", f"cannot parse the command line: {exc}") from exc
    operators = [token for token in tokens if token and set(token) <= _SHELL_OPERATORS]
    if operators:
        raise ConfigurationError(
            "connection",
            f"shell operator {operators[0]!r} in the MCP command line: the command is run directly, without a "
            "shell; put a pipeline or several commands in a script and run that",
        )
    if not argv:
        raise ConfigurationError("connection", "the MCP command line is empty")
    return argv


class StderrLog(asyncio.Protocol):
    """Logs one stdio session's stderr (see the module docstring). :meth:`open` gives the file the subprocess
    writes to; call :meth:`spawned` once it has started (or failed to), to close our copy of it."""

    def __init__(self, log: logging.Logger, source: str, redact: Callable[[str], str]) -> None:
        self.log = log
        self.source = source
        self._redact = redact
        self._line = bytearray()
        self._cut = False  # the current line is longer than _KEEP: the rest of it is dropped
        self._logged = 0
        self._full = False
        self._writer: TextIO | None = None
        self._transport: asyncio.BaseTransport | None = None

    async def open(self) -> TextIO:
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        reader = os.fdopen(read_fd, "rb", buffering=0)
        try:
            self._transport, _ = await loop.connect_read_pipe(lambda: self, reader)
        except BaseException:
            reader.close()
            os.close(write_fd)
            raise
        self._writer = cast(TextIO, os.fdopen(write_fd, "w"))
        return self._writer

    def spawned(self) -> None:
        """Close our end of the pipe: the subprocess holds its own, and EOF comes when it exits."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def close(self) -> None:
        self.spawned()
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.Protocol ------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:
                self._hold(data[start:])
                return
            self._hold(data[start:end])
            self._flush()
            start = end + 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._line or self._cut:
            self._flush()

    # --- lines -----------------------------------------------------------------------------------------------
    def _hold(self, chunk: bytes) -> None:
        room = _KEEP - len(self._line)
        if len(chunk) > room:
            self._cut = True
            chunk = chunk[: max(room, 0)]
        self._line += chunk

    def _flush(self) -> None:
        raw, cut = bytes(self._line), self._cut
        self._line.clear()
        self._cut = False
        if self._full:
            return
        self._logged += len(raw)
        if self._logged > MAX_LOGGED:
            self._full = True
            self.log.warning(
                "%s: the MCP server wrote more than %d bytes to stderr; the rest of it is not logged",
                self.source,
                MAX_LOGGED,
            )
            return
        text = shorten(self._redact(raw.decode("utf-8", "replace")), MAX_LINE)
        if text:
            self.log.info("%s%s", text, " …" if cut and not text.endswith("…") else "")
