"""``UtcpTransport``: the tools of a UTCP manual (or an OpenAPI document, which UTCP converts), through the
``utcp`` client and its HTTP plugin (``utcp-http``, the optional extra ``penguiflow[utcp]``).

``connection`` is the manual's URL. UTCP allows plain HTTP on loopback only; anything else must be HTTPS. The
config's auth headers are sent for discovery and, for the tools an OpenAPI document describes, as each tool's
``auth_tools``. UTCP names tools ``{manual}.{tool}``; the transport hands the node the source-local ``{tool}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from penguiflow.errors import (
    ConfigurationError,
    ToolClientError,
    ToolConnectionError,
    ToolError,
    ToolExecutionError,
    ToolNotFoundError,
    ToolRateLimitedError,
    ToolServerError,
)
from penguiflow.middleware.retry import parse_retry_after
from penguiflow.tools.config import ExternalToolConfig
from penguiflow.tools.transports.base import IDEMPOTENT_METHODS, ToolSpec, safe_cause, shorten

if TYPE_CHECKING:
    from utcp.utcp_client import UtcpClient

__all__ = ["UtcpTransport"]

_log = logging.getLogger("penguiflow.tools.utcp")
_INSTALL: Final = "pip install 'penguiflow[utcp]' (utcp and utcp-http)"


class UtcpTransport:
    """One UTCP manual, registered in its own ``UtcpClient``."""

    def __init__(self, config: ExternalToolConfig) -> None:
        if not isinstance(config.connection, str) or not config.connection.startswith(
            ("http://", "https://")
        ):
            raise ConfigurationError(
                "connection", "the utcp transport needs the http(s):// URL of a UTCP manual"
            )
        self.config = config
        self._client: UtcpClient | None = None
        self._manual = ""  # the manual's name as UTCP registered it (UTCP sanitizes names)
        self._secrets: tuple[str, ...] = ()  # the secrets resolved when the manual was registered
        self._lock = asyncio.Lock()

    def _template(self) -> dict[str, Any]:
        self._secrets = tuple(self.config.secret_values())  # resolved now, with the headers below
        template: dict[str, Any] = {
            "name": self.config.name,
            "call_template_type": "http",
            "url": self.config.connection,
            "http_method": "GET",
        }
        headers = self.config.auth_headers()
        if headers:
            ((header, value),) = headers.items()
            template["headers"] = dict(headers)
            template["auth_tools"] = {
                "auth_type": "api_key",
                "api_key": value,
                "var_name": header,
                "location": "header",
            }
        return template

    async def connect(self) -> list[ToolSpec]:
        async with self._lock:
            if self._client is None:
                self._client = await self._open()
            client = self._client
        tools = await client.config.tool_repository.get_tools_by_manual(self._manual) or []
        prefix = f"{self._manual}."
        return [
            ToolSpec(
                tool.name.removeprefix(prefix),
                tool.description or "",
                {"type": "object", **tool.inputs.model_dump(mode="json", by_alias=True, exclude_none=True)},
                idempotent=_idempotent(tool),
            )
            for tool in tools
        ]

    async def _open(self) -> UtcpClient:
        try:
            from utcp.data.call_template import CallTemplateSerializer
            from utcp.utcp_client import UtcpClient
        except ImportError as exc:  # the optional extra is missing
            raise ConfigurationError("transport", f"the utcp transport needs {_INSTALL}: {exc}") from exc
        template = self._validated_template(CallTemplateSerializer())
        client = await UtcpClient.create(config={})
        result = await self._register(client, template)
        if not result.success:
            with contextlib.suppress(Exception):
                await client.close()
            # utcp puts a whole traceback in its errors; the last line says what went wrong.
            last = (result.errors[-1].strip().splitlines() or [""])[-1] if result.errors else "unknown error"
            raise ToolConnectionError(
                f"{self.config.name}: could not load the UTCP manual: {self._redact(last)}", tool=None
            )
        self._manual = result.manual_call_template.name
        await self._authenticate_tools(client)
        return client

    def _validated_template(self, serializer: Any) -> Any:
        try:
            return serializer.validate_dict(self._template())
        except Exception as exc:
            error = ConfigurationError(
                "connection",
                f"not a usable UTCP HTTP manual URL ({type(exc).__name__}); is utcp-http installed?",
            )
            cause = self._cause(exc)  # a validation error quotes the template, auth headers included
        raise error from cause  # outside the except block: see safe_cause

    async def _register(self, client: UtcpClient, template: Any) -> Any:
        try:
            return await client.register_manual(template)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await client.close()
            error = ToolConnectionError(
                f"{self.config.name}: could not register the UTCP manual: {self._redact(str(exc))}"
            )
            cause = self._cause(exc)
        raise error from cause  # outside the except block: see safe_cause

    def _cause(self, exc: BaseException) -> BaseException | None:
        return safe_cause(exc, lambda text: self.config.redact(text, also=self._secrets))

    async def _authenticate_tools(self, client: UtcpClient) -> None:
        """Send the config's auth headers with every tool call. UTCP's OpenAPI conversion applies ``auth_tools``
        only to operations that declare a security scheme, but the config's auth is for the whole source; tools
        that carry an auth of their own keep it."""
        headers = self.config.auth_headers()
        if not headers:
            return
        repository = client.config.tool_repository
        manual = await repository.get_manual(self._manual)
        template = await repository.get_manual_call_template(self._manual)
        if manual is None or template is None:
            return
        for tool in manual.tools:
            call = tool.tool_call_template
            if hasattr(call, "headers") and getattr(call, "auth", None) is None:
                call.headers = {**(call.headers or {}), **headers}
        await repository.save_manual(template, manual)

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        client = self._client
        if client is None:
            await self.connect()
            client = self._client
            assert client is not None
        try:
            return await client.call_tool(f"{self._manual}.{tool}", arguments)
        except Exception as exc:
            error = self._error(f"{self.config.name}.{tool}", exc)
            cause = exc.__cause__ if error is exc else self._cause(exc)
        raise error from cause  # outside the except block: see safe_cause

    def _redact(self, text: str) -> str:
        """``text`` with every configured secret masked, then shortened to one line."""
        return shorten(self.config.redact(text, also=self._secrets))

    def _error(self, name: str, exc: Exception) -> ToolError:
        import aiohttp

        if isinstance(exc, ToolError):
            return exc
        if isinstance(exc, aiohttp.ClientResponseError):
            reason = self._redact(exc.message or "")
            message = f"{name}: HTTP {exc.status}" + (f": {reason}" if reason else "")
            if exc.status == 429:
                headers: Mapping[str, str] = exc.headers or {}
                retry_after = parse_retry_after(headers.get("Retry-After"))
                return ToolRateLimitedError(message, status_code=429, tool=name, retry_after=retry_after)
            if exc.status >= 500:
                return ToolServerError(message, status_code=exc.status, tool=name)
            return ToolClientError(message, status_code=exc.status, tool=name)
        if isinstance(exc, aiohttp.ClientError | ConnectionError | OSError):
            return ToolConnectionError(f"{name}: cannot reach the UTCP tool: {type(exc).__name__}", tool=name)
        if isinstance(exc, ValueError) and str(exc).startswith("Tool not found"):
            return ToolNotFoundError(f"{name}: not in the UTCP manual", tool=name)
        return ToolExecutionError(f"{name}: {type(exc).__name__}: {self._redact(str(exc))}", tool=name)


def _idempotent(tool: Any) -> bool:
    """From the tool's HTTP method, when its call template has one; not safe to re-send otherwise."""
    method = getattr(tool.tool_call_template, "http_method", None)
    return isinstance(method, str) and method.upper() in IDEMPOTENT_METHODS
