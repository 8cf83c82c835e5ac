"""What an MCP failure means, as one of penguiflow's typed errors.

The retry layer decides from the type (see :mod:`penguiflow.middleware.failures`):

- the session broke (server died, stream closed) → :class:`ToolConnectionError`, retryable; ``request_sent``
  is ``False`` only when the request certainly never left (the session could not even be opened);
- the server answered with a JSON-RPC error → :class:`ToolExecutionError` (or :class:`ToolNotFoundError`):
  the server processed the request and said no, so it is *not* retried — unless ``RetryPolicy.retry_if`` says
  so; JSON-RPC errors carry no HTTP status for ``retry_on_status`` to list;
- HTTP 401/403 → :class:`ToolAuthenticationError`, never retried, with what to configure;
- a message over ``max_response_bytes`` → :class:`ToolResponseTooLargeError`, never retried.

Every message quotes the server only after masking the configured secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import httpx
import httpx2
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED

from penguiflow.errors import (
    ToolAuthenticationError,
    ToolConnectionError,
    ToolError,
    ToolExecutionError,
    ToolNotFoundError,
    ToolResponseTooLargeError,
)
from penguiflow.tools.transports.mcp.bounded_http import TOO_LARGE

__all__ = ["BROKEN", "Failures", "auth_error"]

_METHOD_NOT_FOUND: Final = -32601
_INVALID_PARAMS: Final = -32602
# What the MCP client raises (as RuntimeError) for a result that does not match the tool's output schema.
_INVALID_RESULT: Final = re.compile(
    r"(Invalid structured content returned by tool|Tool .* has an output schema but did not return"
    r"|Invalid schema for tool)"
)

_SSE_TOO_LARGE: Final = re.compile(r"Server-sent event exceeded the (\d+) byte limit")

# What a broken session surfaces as, depending on where the failure is noticed first.
BROKEN: Final = (
    ConnectionError,
    OSError,
    EOFError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    httpx.TransportError,
    httpx2.TransportError,
)


def _too_large(message: str) -> int | None:
    """The limit an answer went past, if ``message`` is the SDK's error for one."""
    over = _SSE_TOO_LARGE.search(message) or TOO_LARGE.search(message)
    return None if over is None else int(over.group(1))


def auth_error(name: str, status: int, target: str, *, oauth: bool) -> ToolAuthenticationError:
    """The typed error for an HTTP 401/403 from the MCP server at ``target``."""
    if status == 403:
        how = (
            "the credentials are valid but not allowed to do this: give them the rights (scopes) it needs"
            + (" (McpOAuth(scopes=...))" if oauth else "")
        )
    elif oauth:
        how = "the OAuth flow did not produce a token the server accepts: check McpOAuth's client and scopes"
    else:
        how = (
            "set auth_type='bearer' with auth_config={'token': '${VAR}'} (or 'api_key'), or give the node "
            "oauth=McpOAuth(...) / McpClientCredentials(...) for a server that uses OAuth"
        )
    return ToolAuthenticationError(
        f"{name}: the MCP server ({target}) answered HTTP {status}; {how}", status_code=status, tool=name
    )


@dataclass
class Failures:
    """Maps exceptions of one MCP source to typed errors. ``auth_status`` is the last 401/403 its HTTP client
    saw (the ``mcp`` SDK turns those into a status-less JSON-RPC error); ``too_large`` is set by the stream
    that refused a message over ``max_response_bytes``."""

    source: str
    target: str
    redact: Callable[[str], str]
    oauth: bool = False
    auth_status: int | None = None
    too_large: tuple[int, int] | None = None  # (bytes read, limit)

    def typed(self, exc: BaseException, *, name: str, opening: bool = False) -> tuple[ToolError, bool]:
        """``(error, broken)``: the typed error for ``exc`` and whether the session is broken (to discard)."""
        if isinstance(exc, ToolError):
            return exc, False
        if self.too_large is not None:
            size, limit = self.too_large
            return ToolResponseTooLargeError(
                f"{name}: the MCP server sent a message longer than max_response_bytes={limit} ({size} bytes "
                "read); the session was closed",
                limit=limit,
                tool=name,
            ), True
        if isinstance(exc, MCPError) and (over := _too_large(exc.message)) is not None:
            # The SDK's SSE reader refused an event over max_sse_event_size (our max_response_bytes), or our
            # bounded HTTP client cut an answer short: this request's answer only; the session stays usable.
            return ToolResponseTooLargeError(
                f"{name}: the MCP server sent an answer longer than max_response_bytes={over}; the rest was not "
                "read and its connection was dropped",
                limit=over,
                tool=name,
            ), False
        if self.auth_status is not None:
            return auth_error(name, self.auth_status, self.target, oauth=self.oauth), True
        if isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED and not opening:
            reason = self.redact(exc.message)
            if exc.code in (_METHOD_NOT_FOUND, _INVALID_PARAMS) and "unknown tool" in reason.lower():
                return ToolNotFoundError(f"{name}: not found on the MCP server: {reason}", tool=name), False
            return ToolExecutionError(f"{name}: MCP error {exc.code}: {reason}", tool=name), False
        if isinstance(exc, RuntimeError) and _INVALID_RESULT.match(str(exc)):
            # The client checked the result against the tool's output schema and it did not match: the tool's
            # failure, not the session's (reconnecting or retrying would get the same garbage).
            return ToolExecutionError(f"{name}: invalid result: {self.redact(str(exc))}", tool=name), False
        if opening or isinstance(exc, (MCPError, RuntimeError, *BROKEN)):
            what = "could not connect" if opening else "connection lost"
            return self.connection_error(exc, what, tool=name, sent=not opening), True
        return ToolExecutionError(f"{name}: {type(exc).__name__}: {self.redact(str(exc))}", tool=name), False

    def connection_error(
        self, exc: BaseException, what: str, *, tool: str | None = None, sent: bool = True
    ) -> ToolConnectionError:
        # The message names the target by its program or host only: arguments, URLs and env may hold secrets.
        reason = self.redact(str(exc))
        return ToolConnectionError(
            f"{tool or self.source}: {what} to the MCP server ({self.target}): {type(exc).__name__}"
            + (f": {reason}" if reason else ""),
            tool=tool,
            request_sent=sent,
        )
