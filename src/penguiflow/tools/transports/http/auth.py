"""Credentials: from the source's ``auth_config``, placed where the document's ``securitySchemes`` say, and
sent only to the source's own origin.

* ``bearer`` → ``Authorization: Bearer …``; ``basic`` → ``Authorization: Basic …``; ``api_key`` with a
  ``header`` → that header; ``api_key`` with only a ``value`` → where the document's ``apiKey`` scheme puts it
  (a header, the query string or a cookie) — or, when the document only declares ``http`` schemes, as a bearer
  token (Stripe takes its key so).
* A URL's userinfo (``http://alice:pw@host``, as ``connection`` or ``openapi_url``) is basic authentication:
  the URL goes to httpx without it, the credentials as its ``auth``, so that httpx's own log lines never
  show them.
* :meth:`Credentials.applies_to` is the one origin check (scheme, host, port): the document fetch from another
  origin and a redirect that leaves the origin carry none of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from penguiflow.errors import ConfigurationError
from penguiflow.tools.config import AuthType, ExternalToolConfig, split_userinfo

__all__ = ["Credentials", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL | str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, the port made explicit."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


@dataclass(slots=True)
class Credentials:
    """What authenticates one request to the source, resolved once at connect."""

    origin: tuple[str, str, int]
    headers: dict[str, str] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)
    cookies: list[tuple[str, str]] = field(default_factory=list)
    basic: tuple[str, str] | None = None  # userinfo of the URL, given to httpx as its auth

    @classmethod
    def resolve(cls, config: ExternalToolConfig, base_url: str) -> Credentials:
        """The credentials of ``config`` before the document is known (``${VAR}``\\ s expanded now)."""
        clean, user, password = split_userinfo(base_url)
        credentials = cls(origin(clean))
        if user is not None or password is not None:
            credentials.basic = (user or "", password or "")
        if config.auth_type is not AuthType.NONE and not (
            config.auth_type is AuthType.API_KEY and "header" not in config.auth_config
        ):
            credentials.headers.update(config.auth_headers())
        return credentials

    def place_key(self, config: ExternalToolConfig, document: Mapping[str, Any]) -> None:
        """Place an ``api_key`` without a ``header`` where the document's security schemes say."""
        if config.auth_type is not AuthType.API_KEY or "header" in config.auth_config:
            return
        value = config.auth_value("value")
        schemes = _schemes(document)
        for scheme in schemes:
            if scheme.get("type") == "apiKey" and isinstance(scheme.get("name"), str):
                where = scheme.get("in")
                if where == "header":
                    self.headers[scheme["name"]] = value
                elif where == "query":
                    self.query.append((scheme["name"], value))
                elif where == "cookie":
                    self.cookies.append((scheme["name"], value))
                else:
                    continue
                return
        for scheme in schemes:
            if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
                self.headers["Authorization"] = f"Bearer {value}"
                return
        raise ConfigurationError(
            "auth_config.header",
            f"{config.name}: the OpenAPI document declares no apiKey (or http bearer) security scheme to place "
            "the key by; give auth_config a 'header'",
        )

    @property
    def header_names(self) -> set[str]:
        return {name.lower() for name in self.headers}

    @property
    def cookie_names(self) -> set[str]:
        return {name for name, _ in self.cookies}

    @property
    def query_names(self) -> set[str]:
        return {name for name, _ in self.query}

    def applies_to(self, url: httpx.URL) -> bool:
        return origin(url) == self.origin

    def httpx_auth(self) -> httpx.BasicAuth | None:
        return httpx.BasicAuth(*self.basic) if self.basic is not None else None


def _schemes(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The document's security schemes, those its top-level ``security`` names first."""
    components = document.get("components")
    declared = components.get("securitySchemes") if isinstance(components, Mapping) else None
    if not isinstance(declared, Mapping):
        return []
    order: list[str] = []
    security = document.get("security")
    if isinstance(security, list):
        for requirement in security:
            if isinstance(requirement, Mapping):
                order.extend(str(name) for name in requirement)
    order.extend(str(name) for name in declared)
    return [declared[name] for name in dict.fromkeys(order) if isinstance(declared.get(name), Mapping)]
