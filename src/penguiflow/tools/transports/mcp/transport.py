"""``McpTransport``: the tools of an MCP server, through one ``fastmcp.Client`` session per node.

The session opens on ``connect()`` and is shared by concurrent calls: MCP multiplexes requests over it, and the
node's ``ConcurrencyLimit`` — not the transport — decides how many run. A session that breaks (the server died)
fails the calls in flight with :class:`~penguiflow.errors.ToolConnectionError`, which the retry layer may retry
(for a tool that is not ``readOnlyHint``/``idempotentHint``, only if the policy says so), and the next call
opens a fresh session (a fresh subprocess for stdio).

Opening is bounded: ``connect_timeout_s`` covers starting the server, ``initialize`` and ``tools/list``
together; a server that never answers fails ``connect()`` with a ``ToolConnectionError`` at that bound.

Telemetry: penguiflow's spans are the client side of every request (see
:mod:`~penguiflow.tools.transports.mcp.telemetry`); the W3C trace context still goes to the server in
``params._meta``, so its spans join the caller's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from fastmcp import Client
from mcp.types import Tool

from penguiflow.errors import ToolError
from penguiflow.telemetry import names
from penguiflow.tools.config import ExternalToolConfig
from penguiflow.tools.hooks import ClientHooks
from penguiflow.tools.transports.base import CURRENT_CALL, ToolSpec, safe_cause, shorten
from penguiflow.tools.transports.mcp import connection as connections
from penguiflow.tools.transports.mcp import direct, operations
from penguiflow.tools.transports.mcp.capabilities import Capabilities, callable_tools
from penguiflow.tools.transports.mcp.command import StderrLog
from penguiflow.tools.transports.mcp.content import result_value, tool_fields, wrapped_tools
from penguiflow.tools.transports.mcp.failures import Failures
from penguiflow.tools.transports.mcp.notifications import Notifications
from penguiflow.tools.transports.mcp.telemetry import own_spans, set_attributes, set_checked_attributes

__all__ = ["McpTransport"]

_log = logging.getLogger("penguiflow.tools.mcp")


class McpTransport:
    """One MCP server. See :mod:`~penguiflow.tools.transports.mcp.connection` for ``connection``."""

    def __init__(self, config: ExternalToolConfig, hooks: ClientHooks | None = None) -> None:
        self.config = config
        self.hooks = hooks or ClientHooks()
        self._client: Client[Any] | None = None
        self._opening: asyncio.Task[Client[Any]] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # broken sessions being released
        self._wrapped: set[str] = set()  # tools whose structured result is {"result": value}
        self._secrets: tuple[str, ...] = ()  # the secrets resolved for the session (env, auth headers)
        self._target = connections.describe(config)  # also checks the command line, before anything runs
        self._network = connections.network_attributes(config)
        # Built once, not per call: what every tools/call span gets, and what the open session adds to it.
        self._call_attributes = {**self._network, names.MCP_METHOD_NAME: "tools/call"}
        self._session_attrs: dict[str, Any] = {}
        self._open_call_attributes = self._call_attributes  # both, in one update of the span
        self.notifications = Notifications(config.name, self._redact, self.hooks.progress_callback)
        self._capabilities = Capabilities(self.hooks, config.name)
        self.failures = Failures(config.name, self._target, self._redact, oauth=self.hooks.oauth is not None)

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
        self._secrets = tuple(self.config.secret_values())  # resolved now, with the env and headers below
        self.failures.auth_status = self.failures.too_large = None
        opening = connections.Opening()
        stderr = StderrLog(self.notifications.log, self.config.name, self._redact)
        client: Client[Any] | None = None
        try:
            with own_spans():
                async with asyncio.timeout(self.config.connect_timeout_s):
                    client = await connections.new_client(
                        self.config,
                        opening=opening,
                        init_timeout=self.config.connect_timeout_s,
                        stderr=stderr,
                        on_too_large=self._too_large,
                        oauth=self.hooks.oauth,
                        log_handler=self.notifications.on_log,
                        **self._capabilities.client_kwargs(),
                    )
                    try:
                        await client.__aenter__()  # type: ignore[no-untyped-call]  # fastmcp leaves it bare
                    finally:
                        opening.spawned()
        except BaseException as exc:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()  # type: ignore[no-untyped-call]
            stderr.close()
            if not isinstance(exc, Exception):
                raise
            self.failures.auth_status = opening.auth_status
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within connect_timeout_s={self.config.connect_timeout_s:g}")
            error, _ = self.failures.typed(exc, name=self.config.name, opening=True)
            cause = self._cause(error, exc)
        else:
            opening.on_auth_status = self._saw_auth_status
            self._session_attrs = _session_attributes(client)
            self.notifications.opened(client.session.protocol_version)
            self._open_call_attributes = {  # no None values: set on every call's span as it is
                key: value
                for key, value in {**self._call_attributes, **self._session_attrs}.items()
                if value is not None
            }
            self._client = client
            return client
        raise error from cause  # outside the except block: see safe_cause

    def _too_large(self, size: int) -> None:
        self.failures.too_large = (size, self.config.max_response_bytes)

    def _saw_auth_status(self, status: int | None) -> None:
        self.failures.auth_status = status

    async def _discard(self, client: Client[Any]) -> None:
        """Forget a broken session (once, whichever failing call gets here first) and release it."""
        if self._client is not client:
            return
        self._client = None
        _log.warning("%s: MCP session to %s broke; the next call reconnects", self.config.name, self._target)
        # Closed in the background: stopping a stdio server takes seconds (stdin closed, a grace period, then
        # signals), which must not delay the error of the call (or connect) that found the session broken.
        closing = asyncio.create_task(_close_quietly(client))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def connect(self) -> list[ToolSpec]:
        set_attributes(self._network)
        bound = self.config.connect_timeout_s
        client: Client[Any] | None = None
        try:
            async with asyncio.timeout(bound):  # the opening bounds itself too; this adds tools/list
                client = await self._session()
                self._session_attributes(client)
                with own_spans():
                    tools = await client.list_tools()
        except Exception as exc:
            if client is None and not isinstance(exc, TimeoutError):
                raise  # the opening's own typed error
            if isinstance(exc, TimeoutError):
                step = "the handshake" if client is None else "tools/list"
                error: ToolError = self.failures.connection_error(
                    TimeoutError(f"{step} not answered within connect_timeout_s={bound:g}"),
                    "could not connect",
                    sent=False,
                )
                broken = True
            else:
                error, broken = self.failures.typed(exc, name=self.config.name)
            if broken and client is not None:
                await self._discard(client)
            cause = self._cause(error, exc)
        else:
            return self._specs(callable_tools(tools, self.notifications.log, self.config.name))
        raise error from cause  # outside the except block: see safe_cause

    def _session_attributes(self, client: Client[Any]) -> None:
        set_attributes(self._session_attrs if client is self._client else _session_attributes(client))

    def _specs(self, tools: list[Tool]) -> list[ToolSpec]:
        self._wrapped = wrapped_tools(tools)
        return [
            ToolSpec(
                tool.name,
                tool.description or "",
                dict(tool.input_schema) if tool.input_schema else {"type": "object", "properties": {}},
                idempotent=_idempotent(tool),
                **tool_fields(tool),
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
        name = self._name(tool)
        client = self._client
        if client is not None:
            set_checked_attributes(self._open_call_attributes)
        else:
            set_checked_attributes(self._call_attributes)
            client = await self._session()
            self._session_attributes(client)
        try:
            lean = direct.usable(client)  # see the direct module: fastmcp's layers add nothing here
            key, on_progress, meta = self.notifications.start(CURRENT_CALL.get())
            try:
                with own_spans(method_set=True, fastmcp=not lean):
                    if lean:
                        result = await direct.call_tool(client, tool, arguments, on_progress, meta)
                    else:
                        result = await client.call_tool_mcp(  # fastmcp copies meta (typed as a dict)
                            tool,
                            arguments,
                            progress_handler=on_progress,
                            meta=cast("dict[str, Any] | None", meta),
                        )
            finally:
                self.notifications.end(key)
        except Exception as exc:
            error = await self._failure(client, exc, name=name)
            cause = self._cause(error, exc)
        else:
            return result_value(name, result, wrapped=tool in self._wrapped, redact=self._redact)
        raise error from cause  # outside the except block: see safe_cause

    async def request(self, method: str, arguments: dict[str, Any]) -> Any:
        """One resources or prompts request (see :mod:`~penguiflow.tools.transports.mcp.operations`)."""
        name = self._name(method)
        set_attributes({**self._network, **operations.attributes(method, arguments, self._redact)})
        client = await self._session()
        self._session_attributes(client)
        try:
            with own_spans():
                return await operations.perform(client, method, arguments, name)
        except Exception as exc:
            error = await self._failure(client, exc, name=name)
            cause = self._cause(error, exc)
        raise error from cause  # outside the except block: see safe_cause

    async def _failure(self, client: Client[Any], exc: Exception, *, name: str) -> ToolError:
        """The typed error for ``exc``; a broken session is discarded so the next call reconnects."""
        error, broken = self.failures.typed(exc, name=name)
        if broken:
            await self._discard(client)
        return error

    def _cause(self, error: ToolError, exc: BaseException) -> BaseException | None:
        """What to chain ``error`` (made from ``exc``) to: ``exc``, unless it quotes a secret."""
        if error is exc:
            return exc.__cause__
        return safe_cause(exc, lambda text: self.config.redact(text, also=self._secrets))

    def _name(self, tool: str) -> str:
        return f"{self.config.name}.{tool}"

    def _redact(self, text: str) -> str:
        """``text`` with every configured secret masked, then shortened to one line (in this order: a secret
        cut in two by the shortening would no longer be recognised)."""
        return shorten(self.config.redact(text, also=self._secrets))


def _session_attributes(client: Client[Any]) -> dict[str, Any]:
    """The MCP conventions' attributes of an open session (fixed for its life: it is numbered at initialize)."""
    with contextlib.suppress(Exception):  # attributes are a nicety: never fail a call for them
        return {
            names.MCP_SESSION_ID: client.transport.get_session_id(),
            names.MCP_PROTOCOL_VERSION: client.protocol_version,
        }
    return {}


async def _close_quietly(client: Client[Any]) -> None:
    with contextlib.suppress(Exception):
        await client.close()  # type: ignore[no-untyped-call]


def _idempotent(tool: Tool) -> bool:
    """What the server says of re-running the tool: safe if it is read-only or idempotent. The MCP defaults
    of both hints are false, so a tool without annotations is taken as not safe to re-send."""
    annotations = tool.annotations
    if annotations is None:
        return False
    return annotations.read_only_hint is True or annotations.idempotent_hint is True
