"""What an application plugs into a ``ToolNode`` for the requests and notifications a *server* sends: progress,
elicitation (the server asks the user something), sampling (the server asks the application's LLM), roots
(the directories the server may work in) and OAuth.

Only the MCP transport uses them today; they are plain Python types so that constructing a node imports no
transport. The defaults are safe for an unattended agent: without a hook its MCP capability is not declared,
so a server neither asks for user input, an LLM completion or roots, nor lists the tools that need them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.events import FlowEvent
from penguiflow.tools.config import AuthType, ExternalToolConfig, TransportType

__all__ = [
    "Authorize",
    "ClientHooks",
    "Elicitation",
    "ElicitationHandler",
    "ElicitationReply",
    "McpClientCredentials",
    "McpOAuth",
    "ProgressCallback",
    "Sampling",
    "SamplingHandler",
    "check_roots",
    "node_hooks",
]

ProgressCallback = Callable[[FlowEvent], None]
"""Called with every ``node_progress`` event of the node's calls (``event.attributes``: ``progress``,
``total``, ``message``); it runs on the event loop, so it must return quickly. One that raises is logged."""


@dataclass(frozen=True, slots=True)
class Elicitation:
    """A server asks the user for input while one of its tools runs (MCP ``elicitation/create``).

    ``mode`` is ``"form"`` (``requested_schema`` describes the fields wanted) or ``"url"`` (the user should open
    ``url`` in a browser). ``source`` is the node's name."""

    source: str
    message: str
    mode: Literal["form", "url"] = "form"
    requested_schema: Mapping[str, Any] | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ElicitationReply:
    """An explicit answer: ``action`` ``"accept"`` (with ``content``), ``"decline"`` or ``"cancel"``."""

    action: Literal["accept", "decline", "cancel"]
    content: Mapping[str, Any] | None = None


ElicitationHandler = Callable[
    [Elicitation], Awaitable[Mapping[str, Any] | ElicitationReply | None] | Mapping[str, Any] | None
]
"""Answers an :class:`Elicitation`: a mapping accepts with that content (the schema's defaults fill the fields
it leaves out), ``None`` declines, an :class:`ElicitationReply` says exactly what to answer."""


@dataclass(frozen=True, slots=True)
class Sampling:
    """A server asks the application's LLM for a completion (MCP ``sampling/createMessage``).

    ``messages`` are in MCP's JSON shape (``{"role": "user", "content": {"type": "text", "text": ...}}``);
    ``params`` holds the rest of the request (``maxTokens``, ``systemPrompt``, ``modelPreferences`` …)."""

    source: str
    messages: Sequence[Mapping[str, Any]]
    params: Mapping[str, Any] = field(default_factory=dict)


SamplingHandler = Callable[[Sampling], Awaitable[str | Mapping[str, Any]] | str | Mapping[str, Any]]
"""Answers a :class:`Sampling` request: a string is the assistant's text reply; a mapping is a whole MCP
``CreateMessageResult`` (``role``, ``content``, ``model``, ``stopReason``). Raising declines the request."""


@dataclass(frozen=True, slots=True)
class ClientHooks:
    """The hooks of one node (see :class:`~penguiflow.tools.ToolNode`'s keyword arguments)."""

    progress_callback: ProgressCallback | None = None
    elicitation_handler: ElicitationHandler | None = None
    sampling_handler: SamplingHandler | None = None
    roots: tuple[str, ...] | None = None
    oauth: McpOAuth | McpClientCredentials | None = None


def check_roots(roots: object) -> tuple[str, ...] | None:
    """``roots`` as ``file://`` URIs; raises ``ConfigurationError`` for anything else."""
    if roots is None:
        return None
    if isinstance(roots, str) or not isinstance(roots, list | tuple):
        raise ConfigurationError("roots", "must be a list of file:// URIs or absolute paths")
    uris = []
    for root in roots:
        text = str(root)
        if text.startswith("file://"):
            uris.append(text)
        elif Path(text).is_absolute():
            uris.append(Path(text).as_uri())
        else:
            raise ConfigurationError("roots", f"{text!r} is neither a file:// URI nor an absolute path")
    return tuple(uris)


Authorize = Callable[[str], Awaitable[str]]
"""The headless half of an OAuth authorization-code flow: given the authorization URL (to show a user, or to
follow in an automated login), return the URL the authorization server redirected back to — the
``redirect_uri`` with ``code`` and ``state`` (or ``error``) in its query."""


@dataclass(frozen=True, slots=True)
class McpOAuth:
    """OAuth 2.1 for an MCP server over HTTP (authorization code + PKCE), as the MCP authorization spec has it:
    the server's protected-resource and authorization-server metadata are discovered, the client registers
    itself (dynamic client registration, or a client ID metadata document at ``client_metadata_url``, or the
    pre-registered ``client_id``/``client_secret``), tokens are refreshed, and a 403 ``insufficient_scope``
    asks for the larger scope (step-up). The flow itself is fastmcp's (the MCP SDK's) OAuth client.

    ``authorize`` makes it headless (see :data:`Authorize`); without it a browser is opened and a local
    callback server on ``redirect_uri``'s port receives the redirect. ``token_store`` is any
    ``key_value.aio`` ``AsyncKeyValue`` (fastmcp's pluggable storage: disk, Redis, encrypted wrappers…);
    tokens are kept in memory by default. ``issuer`` pins pre-registered credentials to their authorization
    server: they are never sent to another. ``token_endpoint_auth_method`` defaults to RFC 7591's
    ``client_secret_basic`` for a pre-registered ``client_secret`` (``none`` for a public client)."""

    scopes: Sequence[str] | str | None = None
    authorize: Authorize | None = None
    token_store: Any = None
    client_name: str = "penguiflow"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_metadata_url: str | None = None
    issuer: str | None = None
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None = None
    redirect_uri: str = "http://localhost:33418/callback"
    callback_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class McpClientCredentials:
    """OAuth 2.1 ``client_credentials`` for an MCP server over HTTP (machine to machine, no user): with
    ``client_secret`` (``token_endpoint_auth_method`` ``client_secret_basic`` or ``client_secret_post``) or
    with ``private_key`` (PEM; ``private_key_jwt``, RFC 7523, signed with ``signing_algorithm``). The token
    endpoint is discovered from the server's metadata; ``issuer`` pins it."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    signing_algorithm: str = "RS256"
    scopes: Sequence[str] | str | None = None
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    issuer: str | None = None
    token_store: Any = None

    def __post_init__(self) -> None:
        if (self.client_secret is None) == (self.private_key is None):
            raise ConfigurationError("oauth", "McpClientCredentials needs client_secret or private_key (one)")


def node_hooks(
    config: ExternalToolConfig,
    progress_callback: ProgressCallback | None,
    elicitation_handler: ElicitationHandler | None,
    sampling_handler: SamplingHandler | None,
    roots: Sequence[str] | None,
    oauth: Any,
) -> ClientHooks:
    """The node's hooks, checked: each must be callable, ``roots`` file URIs, ``oauth`` for an MCP URL."""
    for name, hook in (
        ("progress_callback", progress_callback),
        ("elicitation_handler", elicitation_handler),
        ("sampling_handler", sampling_handler),
    ):
        if hook is not None and not callable(hook):
            raise ConfigurationError(name, f"must be callable, got {type(hook).__name__}")
    if oauth is not None:
        url = config.connection if isinstance(config.connection, str) else ""
        if config.transport is not TransportType.MCP or not url.startswith(("http://", "https://")):
            raise ConfigurationError("oauth", "OAuth applies to an MCP server reached over http(s)://")
        if config.auth_type is not AuthType.NONE:
            raise ConfigurationError("oauth", "give either auth_type/auth_config or oauth, not both")
    return ClientHooks(
        progress_callback=progress_callback,
        elicitation_handler=elicitation_handler,
        sampling_handler=sampling_handler,
        roots=check_roots(roots),
        oauth=oauth,
    )
