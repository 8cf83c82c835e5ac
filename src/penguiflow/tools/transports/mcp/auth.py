"""OAuth for MCP over HTTP: penguiflow's :class:`~penguiflow.tools.McpOAuth` and
:class:`~penguiflow.tools.McpClientCredentials` as fastmcp's OAuth providers (fastmcp drives the MCP SDK's
OAuth 2.1 client: discovery, dynamic registration, PKCE, refresh, scope step-up). Penguiflow adds only the
headless authorization step: :class:`_HeadlessOAuth` hands the authorization URL to the application's
``authorize`` callback instead of a browser, and reads the code from the URL it returns.
"""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from fastmcp.client.auth import ClientCredentialsOAuthProvider, OAuth, PrivateKeyJWTOAuthProvider
from mcp.client.auth import OAuthFlowError
from mcp.client.auth.extensions.client_credentials import SignedJWTParameters
from mcp.shared.auth import AuthorizationCodeResult

from penguiflow.tools.hooks import Authorize, McpClientCredentials, McpOAuth

__all__ = ["provider"]


class _HeadlessOAuth(OAuth):
    """fastmcp's OAuth with the browser step replaced by the application's ``authorize`` callback."""

    def __init__(self, authorize: Authorize, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._authorize = authorize
        self._authorization_url: str | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        self._authorization_url = authorization_url

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self._authorization_url is None:
            raise OAuthFlowError("no authorization URL to authorize")
        url, self._authorization_url = self._authorization_url, None
        redirected = await self._authorize(url)
        query = parse_qs(urlsplit(redirected).query)
        if "error" in query:
            detail = query.get("error_description", [""])[0]
            raise OAuthFlowError(f"authorization refused: {query['error'][0]} {detail}".strip())
        if "code" not in query:
            raise OAuthFlowError("the authorize callback returned a URL without a code")
        return AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )


def _scopes(scopes: Any) -> str | list[str] | None:
    return list(scopes) if scopes is not None and not isinstance(scopes, str) else scopes


def provider(oauth: McpOAuth | McpClientCredentials | None, url: str) -> httpx2.Auth | None:
    """The fastmcp OAuth provider for ``oauth``, bound to the MCP endpoint ``url``."""
    if oauth is None:
        return None
    with warnings.catch_warnings():
        # fastmcp warns that in-memory tokens do not survive a restart: that is the documented default here.
        warnings.filterwarnings("ignore", message="Using in-memory token storage")
        if isinstance(oauth, McpClientCredentials):
            return _client_credentials(oauth, url)
        port = urlsplit(oauth.redirect_uri).port
        host = urlsplit(oauth.redirect_uri).hostname or "localhost"
        common: dict[str, Any] = {
            "mcp_url": url,
            "scopes": _scopes(oauth.scopes),
            "client_name": oauth.client_name,
            "token_storage": oauth.token_store,
            "callback_port": port,
            "callback_host": host,
            "callback_timeout": oauth.callback_timeout_s,
            "client_metadata_url": oauth.client_metadata_url,
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "issuer": oauth.issuer,
        }
        method = oauth.token_endpoint_auth_method
        if method is None and oauth.client_secret is not None:
            method = "client_secret_basic"  # RFC 7591's default (fastmcp's would be client_secret_post)
        if method is not None:
            common["additional_client_metadata"] = {"token_endpoint_auth_method": method}
        if oauth.authorize is None:
            return OAuth(**common)
        return _HeadlessOAuth(oauth.authorize, **common)


def _client_credentials(oauth: McpClientCredentials, url: str) -> httpx2.Auth:
    if oauth.private_key is not None:
        signer = SignedJWTParameters(
            issuer=oauth.client_id,
            subject=oauth.client_id,
            signing_key=oauth.private_key,
            signing_algorithm=oauth.signing_algorithm,
        )
        return PrivateKeyJWTOAuthProvider(
            url,
            client_id=oauth.client_id,
            assertion_provider=signer.create_assertion_provider(),
            scopes=_scopes(oauth.scopes),
            issuer=oauth.issuer,
            token_storage=oauth.token_store,
        )
    assert oauth.client_secret is not None
    return ClientCredentialsOAuthProvider(
        url,
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        scopes=_scopes(oauth.scopes),
        token_endpoint_auth_method=oauth.token_endpoint_auth_method,
        issuer=oauth.issuer,
        token_storage=oauth.token_store,
    )
