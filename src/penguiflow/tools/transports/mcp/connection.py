"""How one session is opened: the fastmcp client for a command line, a URL or an in-process server.

``connection`` is one of:

- a command line (``npx -y @modelcontextprotocol/server-github``, ``python server.py``): split with
  :func:`~penguiflow.tools.transports.mcp.command.split_command` and started as a stdio subprocess, **never
  through a shell**. The subprocess gets the config's ``env`` on top of a minimal inherited environment
  (``PATH``, ``HOME``, …: the MCP SDK's safe list), not the caller's whole environment; its stderr is logged,
  not printed (:class:`~penguiflow.tools.transports.mcp.command.StderrLog`);
- an ``http(s)://`` URL: streamable HTTP, with the config's auth headers, or the node's OAuth;
- an in-process ``fastmcp.FastMCP`` server object (tests, embedding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import httpx2
from fastmcp import Client, FastMCP
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import Implementation

from penguiflow import __version__
from penguiflow.errors import ConfigurationError
from penguiflow.telemetry import names
from penguiflow.tools.config import ExternalToolConfig
from penguiflow.tools.transports.mcp import auth
from penguiflow.tools.transports.mcp.bounded_http import bound_responses
from penguiflow.tools.transports.mcp.command import StderrLog, split_command
from penguiflow.tools.transports.mcp.stdio import BoundedStdioTransport

__all__ = ["Opening", "describe", "network_attributes", "new_client"]

_AUTH_STATUSES = frozenset({401, 403})


def _is_url(connection: object) -> bool:
    return isinstance(connection, str) and connection.startswith(("http://", "https://"))


def describe(config: ExternalToolConfig) -> str:
    """What the connection is, for messages: never the command's arguments or a URL's credentials."""
    connection = config.connection
    if isinstance(connection, FastMCP):
        return f"in-process server {connection.name!r}"
    if isinstance(connection, str):
        if _is_url(connection):
            url = httpx.URL(connection)
            return f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"
        return f"command {split_command(connection)[0]!r}"
    raise ConfigurationError(
        "connection",
        f"an MCP connection is a command line, an http(s):// URL or a FastMCP server, "
        f"not {type(connection).__name__}",
    )


def network_attributes(config: ExternalToolConfig) -> dict[str, Any]:
    """The MCP conventions' network attributes of the source (``network.transport`` …)."""
    connection = config.connection
    if _is_url(connection):
        url = httpx.URL(connection)
        return {
            names.NETWORK_TRANSPORT: "tcp",
            names.NETWORK_PROTOCOL_NAME: "http",
            names.SERVER_ADDRESS: url.host,
            names.SERVER_PORT: url.port or (443 if url.scheme == "https" else 80),
        }
    if isinstance(connection, str):
        return {names.NETWORK_TRANSPORT: "pipe"}
    return {}


@dataclass
class Opening:
    """What opening one session needs besides the client: the stderr pipe of a stdio server, and the last
    401/403 the HTTP client saw (the ``mcp`` SDK reports those as a status-less JSON-RPC error)."""

    stderr: StderrLog | None = None
    auth_status: int | None = None
    on_auth_status: Callable[[int | None], None] | None = field(default=None, repr=False)

    def spawned(self) -> None:
        if self.stderr is not None:
            self.stderr.spawned()


def _http_factory(opening: Opening, limit: int) -> Callable[..., httpx2.AsyncClient]:
    """The SDK's HTTP client, with a hook noting a 401/403 (the status the SDK's error loses), every answer read
    within ``limit`` bytes (:mod:`~penguiflow.tools.transports.mcp.bounded_http`)."""

    async def on_response(response: httpx2.Response) -> None:
        # The last response decides: an OAuth flow answers a 401 with a token and a retried request.
        status = response.status_code if response.status_code in _AUTH_STATUSES else None
        opening.auth_status = status
        if opening.on_auth_status is not None:
            opening.on_auth_status(status)

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **_: Any,  # follow_redirects: left off, as by the SDK's own client (it follows same-origin redirects)
    ) -> httpx2.AsyncClient:
        client = bound_responses(create_mcp_http_client(headers=headers, timeout=timeout, auth=auth), limit)
        client.event_hooks.setdefault("response", []).append(on_response)
        return client

    return factory


# Who is calling, in every request's _meta (2026-07-28) or the initialize request: this library, not fastmcp,
# which would name itself by default.
CLIENT_INFO: Final = Implementation(name="penguiflow", version=__version__)


async def new_client(
    config: ExternalToolConfig,
    *,
    opening: Opening,
    init_timeout: float,
    stderr: StderrLog,
    on_too_large: Callable[[int], None],
    oauth: Any,
    **handlers: Any,
) -> Client[Any]:
    """A fastmcp client for ``config`` (not entered yet). ``handlers`` are the fastmcp handler keywords."""
    client = Client(
        await _target(config, opening, stderr, on_too_large, oauth),
        init_timeout=init_timeout,
        client_info=CLIENT_INFO,
        **handlers,
    )
    # No session-wide progress handler (fastmcp installs one that logs): each call passes its own or None, and
    # a call_tool_mcp without one would otherwise fall back to it and send a progress token nobody hears
    # (fastmcp has no public switch for this).
    client._progress_handler = None  # type: ignore[assignment]
    return client


async def _target(
    config: ExternalToolConfig,
    opening: Opening,
    stderr: StderrLog,
    on_too_large: Callable[[int], None],
    oauth: Any,
) -> FastMCP[Any] | StreamableHttpTransport | BoundedStdioTransport:
    """What ``config.connection`` names: an in-process server, or the transport to the server it names."""
    connection = config.connection
    if isinstance(connection, FastMCP):
        return connection
    assert isinstance(connection, str)
    if _is_url(connection):
        return StreamableHttpTransport(
            connection,
            max_sse_event_size=config.max_response_bytes,
            headers=config.auth_headers(),
            auth=auth.provider(oauth, connection),
            httpx_client_factory=_http_factory(opening, config.max_response_bytes),
        )
    command, *args = split_command(connection)
    opening.stderr = stderr
    # One subprocess per session: closing the client ends it; a dead one is replaced, never reused.
    return BoundedStdioTransport(
        command,
        args,
        env=config.resolved_env(),
        errlog=await stderr.open(),
        limit=config.max_response_bytes,
        on_too_large=on_too_large,
    )
