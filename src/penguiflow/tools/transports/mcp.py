"""``McpTransport``: the tools of an MCP server, through one ``fastmcp.Client`` session per node.

``connection`` is one of:

- a command line (``npx -y @modelcontextprotocol/server-github``, ``python server.py``): split with
  :func:`shlex.split` and started as a stdio subprocess, **never through a shell**. Unquoted shell operators
  (``;``, ``&&``, ``|``, ``>`` …) are refused with a :class:`~penguiflow.errors.ConfigurationError` instead of being
  handed to the program as odd arguments. The subprocess gets the config's ``env`` on top of a minimal inherited
  environment (``PATH``, ``HOME``, …: the MCP SDK's safe list), not the caller's whole environment;
- an ``http(s)://`` URL: streamable HTTP, with the config's auth headers;
- an in-process ``fastmcp.FastMCP`` server object (tests, embedding).

The session opens on ``connect()`` and is shared by concurrent calls: MCP multiplexes requests over it, and the
node's ``ConcurrencyLimit`` — not the transport — decides how many run. A session that breaks (the server died)
fails the calls in flight with :class:`~penguiflow.errors.ToolConnectionError`, which the retry layer may retry,
and the next call opens a fresh session (a fresh subprocess for stdio).

Trace context: fastmcp 4's client injects the current span's W3C ``traceparent`` into each request's ``_meta``
itself (unless ``FASTMCP_TELEMETRY_MODE=off``), so with the ``execute_tool`` span current the server's spans join
the caller's trace. fastmcp's own *client* spans are suppressed (:func:`_own_spans`): penguiflow's spans are the
client side of every call, and fastmcp's would put a failed tool's raw error text in their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
import httpx
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.telemetry import suppress_fastmcp_telemetry
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, TextContent, Tool

from penguiflow.errors import (
    ConfigurationError,
    ToolConnectionError,
    ToolError,
    ToolExecutionError,
    ToolNotFoundError,
)
from penguiflow.tools.config import ExternalToolConfig
from penguiflow.tools.transports.base import ToolSpec, safe_cause, shorten

__all__ = ["CONNECT_TIMEOUT_S", "McpTransport", "split_command"]

_log = logging.getLogger("penguiflow.tools.mcp")

_SHELL_OPERATORS: Final = frozenset("();<>|&")
CONNECT_TIMEOUT_S: Final = 60.0  # at least this long to start a server and complete the MCP handshake
_WRAP_KEY: Final = "x-fastmcp-wrap-result"  # fastmcp wraps a non-object result as {"result": value}
_METHOD_NOT_FOUND: Final = -32601
_INVALID_PARAMS: Final = -32602
# What the MCP client raises (as RuntimeError) for a result that does not match the tool's output schema.
_INVALID_RESULT: Final = re.compile(
    r"(Invalid structured content returned by tool|Tool .* has an output schema but did not return"
    r"|Invalid schema for tool)"
)

# What a broken session surfaces as, depending on where the failure is noticed first.
_BROKEN: Final = (
    ConnectionError,
    OSError,
    EOFError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    httpx.TransportError,
)


def _own_spans() -> contextlib.AbstractContextManager[None]:
    """No fastmcp client spans inside ours: ``execute_tool`` and its attempts are the MCP call's spans, and
    fastmcp's would copy a failed tool's raw text — secrets a server echoed included — into their status.
    The W3C trace context still goes to the server, so its spans join our trace."""
    return suppress_fastmcp_telemetry()


def split_command(connection: str) -> list[str]:
    """The argv of a stdio command line. Raises ``ConfigurationError`` for an empty line or one that needs a
    shell to mean what it says (an unquoted ``;``, ``&&``, ``|``, redirection…): nothing here runs a shell."""
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


class McpTransport:
    """One MCP server. See the module docstring for ``connection``."""

    def __init__(self, config: ExternalToolConfig) -> None:
        self.config = config
        self._client: Client[Any] | None = None
        self._opening: asyncio.Task[Client[Any]] | None = None
        self._wrapped: set[str] = set()  # tools whose structured result is {"result": value}
        self._secrets: tuple[str, ...] = ()  # the secrets resolved for the session (env, auth headers)
        self._target = self._describe()  # also checks the command line, before anything runs

    def _describe(self) -> str:
        """What the connection is, for messages: never the command's arguments or a URL's credentials."""
        connection = self.config.connection
        if isinstance(connection, FastMCP):
            return f"in-process server {connection.name!r}"
        if isinstance(connection, str):
            if connection.startswith(("http://", "https://")):
                url = httpx.URL(connection)
                return f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"
            return f"command {split_command(connection)[0]!r}"
        raise ConfigurationError(
            "connection",
            f"an MCP connection is a command line, an http(s):// URL or a FastMCP server, "
            f"not {type(connection).__name__}",
        )

    def _new_client(self) -> Client[Any]:
        connection = self.config.connection
        self._secrets = tuple(self.config.secret_values())  # resolved now, with the env and headers below
        # Starting a server (``npx -y`` may download it) is not a tool call: it gets its own, longer bound.
        timeout = max(self.config.timeout_s, CONNECT_TIMEOUT_S)
        if isinstance(connection, FastMCP):
            return Client(connection, init_timeout=timeout)
        assert isinstance(connection, str)
        if connection.startswith(("http://", "https://")):
            return Client(
                StreamableHttpTransport(connection, headers=self.config.auth_headers()), init_timeout=timeout
            )
        command, *args = split_command(connection)
        # keep_alive=False: closing the client ends the subprocess; a dead one is replaced, never reused.
        stdio = StdioTransport(
            command, args, env=self.config.resolved_env(), keep_alive=False, log_file=server_stderr()
        )
        return Client(stdio, init_timeout=timeout)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    # --- life cycle ----------------------------------------------------------------------------------------
    async def _session(self) -> Client[Any]:
        """The open client, opening one (again) if there is none.

        The opening runs in a task of its own that callers await shielded: a call whose ``Timeout`` fires while
        the server is still starting gives up alone, and the next call finds the connection ready instead of
        starting (and abandoning) yet another subprocess.
        """
        if self._client is not None:
            return self._client
        if self._opening is None:
            self._opening = asyncio.create_task(
                self._open(), name=f"penguiflow-mcp-connect-{self.config.name}"
            )
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, task: asyncio.Task[Client[Any]]) -> None:
        if self._opening is task:
            self._opening = None
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have given up on it already

    async def _open(self) -> Client[Any]:
        client = self._new_client()
        try:
            with _own_spans():
                await client.__aenter__()  # type: ignore[no-untyped-call]  # fastmcp leaves it unannotated
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await client.close()  # type: ignore[no-untyped-call]
            if not isinstance(exc, Exception):
                raise
            error = self._connection_error(exc, "could not connect")
            cause = self._cause(error, exc)
        else:
            self._client = client
            return client
        raise error from cause  # outside the except block: see safe_cause

    async def _discard(self, client: Client[Any]) -> None:
        """Forget a broken session (once, whichever failing call gets here first) and release it."""
        if self._client is not client:
            return
        self._client = None
        _log.warning("%s: MCP session to %s broke; the next call reconnects", self.config.name, self._target)
        with contextlib.suppress(Exception):
            await client.close()  # type: ignore[no-untyped-call]

    async def connect(self) -> list[ToolSpec]:
        client = await self._session()
        try:
            with _own_spans():
                tools = await client.list_tools()
            return self._specs(tools)
        except Exception as exc:
            error = await self._failure(client, exc, tool=None)
            cause = self._cause(error, exc)
        raise error from cause  # outside the except block: see safe_cause

    def _specs(self, tools: list[Tool]) -> list[ToolSpec]:
        self._wrapped = {tool.name for tool in tools if (tool.output_schema or {}).get(_WRAP_KEY)}
        return [
            ToolSpec(
                tool.name,
                tool.description or "",
                dict(tool.input_schema) if tool.input_schema else {"type": "object", "properties": {}},
                idempotent=_idempotent(tool),
            )
            for tool in tools
        ]

    async def close(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
        client, self._client = self._client, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]

    # --- calls ---------------------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        client = await self._session()
        try:
            with _own_spans():
                result = await client.call_tool_mcp(tool, arguments)
        except Exception as exc:
            error = await self._failure(client, exc, tool=tool)
            cause = self._cause(error, exc)
        else:
            return self._result(tool, result)
        raise error from cause  # outside the except block: see safe_cause

    def _cause(self, error: ToolError, exc: BaseException) -> BaseException | None:
        """What to chain ``error`` (made from ``exc``) to: ``exc``, unless it quotes a secret."""
        if error is exc:
            return exc.__cause__
        return safe_cause(exc, lambda text: self.config.redact(text, also=self._secrets))

    def _result(self, tool: str, result: CallToolResult) -> Any:
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        if result.is_error:
            reason = self._redact(" ".join(texts)) or "no message"
            raise ToolExecutionError(
                f"{self._name(tool)}: the tool reported an error: {reason}", tool=self._name(tool)
            )
        structured = result.structured_content
        if structured is not None:
            if tool in self._wrapped and isinstance(structured, dict) and "result" in structured:
                return structured["result"]
            return structured
        if len(texts) == len(result.content):
            return texts[0] if len(texts) == 1 else "\n".join(texts)
        return [block.model_dump(mode="json", exclude_none=True) for block in result.content]

    def _name(self, tool: str) -> str:
        return f"{self.config.name}.{tool}"

    async def _failure(self, client: Client[Any], exc: Exception, *, tool: str | None) -> ToolError:
        """The typed error for ``exc``; a broken session is discarded so the next call reconnects."""
        name = self._name(tool) if tool is not None else self.config.name
        if isinstance(exc, ToolError):
            return exc
        if isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED:
            reason = self._redact(exc.message)
            if exc.code in (_METHOD_NOT_FOUND, _INVALID_PARAMS) and "unknown tool" in reason.lower():
                return ToolNotFoundError(f"{name}: not found on the MCP server: {reason}", tool=name)
            return ToolExecutionError(f"{name}: MCP error {exc.code}: {reason}", tool=name)
        if isinstance(exc, RuntimeError) and _INVALID_RESULT.match(str(exc)):
            # The client checked the result against the tool's output schema and it did not match: the tool's
            # failure, not the session's (reconnecting or retrying would get the same garbage).
            return ToolExecutionError(f"{name}: invalid result: {self._redact(str(exc))}", tool=name)
        if isinstance(exc, (MCPError, RuntimeError, *_BROKEN)):
            await self._discard(client)
            return self._connection_error(exc, "connection lost", tool=name)
        return ToolExecutionError(f"{name}: {type(exc).__name__}: {self._redact(str(exc))}", tool=name)

    def _redact(self, text: str) -> str:
        """``text`` with every configured secret masked, then shortened to one line (in this order: a secret
        cut in two by the shortening would no longer be recognised)."""
        return shorten(self.config.redact(text, also=self._secrets))

    def _connection_error(
        self, exc: BaseException, what: str, *, tool: str | None = None
    ) -> ToolConnectionError:
        # The message names the target by its program or host only: arguments, URLs and env may hold secrets.
        reason = self._redact(str(exc))
        return ToolConnectionError(
            f"{tool or self.config.name}: {what} to the MCP server ({self._target}): {type(exc).__name__}"
            + (f": {reason}" if reason else ""),
            tool=tool,
        )


def server_stderr() -> TextIO | Path:
    """Where a stdio server's stderr goes: ours if it is a real file, else the process's original stderr.

    The subprocess needs a file descriptor, and ``sys.stderr`` is often not one (Jupyter, pytest's ``capsys``,
    log redirections): fastmcp's default would then fail every connect with ``fileno``."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is None:
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        return stream
    return Path(os.devnull)


def _idempotent(tool: Tool) -> bool:
    """What the server says of re-running the tool: safe if it is read-only or idempotent. The MCP defaults
    of both hints are false, so a tool without annotations is taken as not safe to re-send."""
    annotations = tool.annotations
    if annotations is None:
        return False
    return annotations.read_only_hint is True or annotations.idempotent_hint is True
