"""``ExternalToolConfig``: how to reach one tool source, and the limits that protect it (the guide's Level 3).

Secrets are configured as ``${VAR}`` references and expanded from the environment only at connect time
(:meth:`ExternalToolConfig.auth_headers`, :meth:`ExternalToolConfig.resolved_env`). ``auth_config`` and ``env``
values are held as :class:`pydantic.SecretStr`, so neither ``repr()``, ``str()``, ``model_dump()`` nor
``model_dump_json()`` of a config can leak them, and no error message quotes a value.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Final, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from penguiflow.errors import ConfigurationError
from penguiflow.middleware.adaptive.policy import AdaptivePolicy
from penguiflow.middleware.retry import RetryPolicy

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "REDACTED",
    "AdaptivePolicy",
    "AuthType",
    "ExternalToolConfig",
    "RetryPolicy",
    "TransportType",
    "expand_vars",
    "split_userinfo",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MIN_SECRET: Final = 4
REDACTED: Final = "***"
DEFAULT_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
"""The default of :attr:`ExternalToolConfig.max_response_bytes` (16 MiB)."""


class TransportType(StrEnum):
    """How penguiflow talks to a tool source."""

    MCP = "mcp"
    HTTP = "http"
    UTCP = "utcp"


class AuthType(StrEnum):
    """How requests to the source authenticate; the credentials live in ``auth_config``."""

    NONE = "none"
    # auth_config: {"header": "X-API-Key", "value": "${KEY}"}; over HTTP {"value": ...} alone places the key
    # where the OpenAPI document's apiKey security scheme says (a header, the query or a cookie).
    API_KEY = "api_key"
    BEARER = "bearer"  # auth_config: {"token": "${GITHUB_TOKEN}"}
    BASIC = "basic"  # auth_config: {"username": "${STRIPE_KEY}", "password": ""}


_AUTH_KEYS: dict[AuthType, tuple[frozenset[str], ...]] = {
    AuthType.NONE: (frozenset(),),
    AuthType.API_KEY: (frozenset({"header", "value"}), frozenset({"value"})),
    AuthType.BEARER: (frozenset({"token"}),),
    AuthType.BASIC: (frozenset({"username", "password"}),),
}


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without its userinfo, user, password)`` of an ``http://alice:pw@host/...`` URL (decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user), unquote(password) if colon else None


def _masked_url(value: Any) -> Any:
    """``value`` with the password of its userinfo replaced by ``***`` (for repr and dumps)."""
    if not isinstance(value, str):
        return value
    clean, user, password = split_userinfo(value)
    if user is None and password is None:
        return value
    parts = urlsplit(clean)
    netloc = f"{quote(user or '', safe='')}:{REDACTED}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def expand_vars(value: str, field: str, environ: dict[str, str] | None = None) -> str:
    """Replace every ``${VAR}`` in ``value`` from the environment.

    A missing variable raises :class:`~penguiflow.errors.ConfigurationError` naming ``field`` and the variable,
    never the value around it (which may be a partial secret).
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = env.get(name)
        if resolved is None:
            raise ConfigurationError(field, f"environment variable {name!r} is not set")
        return resolved

    return _VAR.sub(substitute, value)


class ExternalToolConfig(BaseModel):
    """One external tool source: an MCP server, an HTTP API with an OpenAPI document, or a UTCP manual.

    ``connection`` is, per transport: MCP — a command line (``npx -y ...``), an ``http(s)://`` URL or an
    in-process ``fastmcp.FastMCP`` server; HTTP — the base URL that the OpenAPI paths are appended to;
    UTCP — the URL of a UTCP manual. ``tool_filter`` keeps only the source's tools whose (source-local) names
    match one of its ``fnmatch`` patterns. ``connect_timeout_s`` bounds opening the source and discovering its
    tools (MCP: starting the server, ``initialize`` and ``tools/list`` together); it is longer than a call's
    ``timeout_s`` by default because ``npx -y`` may first download the server.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=64)
    transport: TransportType
    connection: Any
    max_concurrency: int = Field(10, ge=1, le=10_000, strict=True)
    timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(60.0, gt=0)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    auth_type: AuthType = AuthType.NONE
    auth_config: dict[str, SecretStr] = Field(default_factory=dict)
    tool_filter: list[str] | None = None
    openapi_url: str | None = None
    max_queue: int | None = Field(None, ge=0, strict=True)
    max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1, strict=True)
    """The most bytes one response from the source may have, counted *decoded* (a gzip bomb stops early);
    more is a :class:`~penguiflow.errors.ToolResponseTooLargeError`, not retried, and the connection is
    dropped. Also bounds the OpenAPI document, whatever its status."""
    idempotency_key: str | None = Field(None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=64)
    """HTTP: the name of a header the API reads as an idempotency key (Stripe: ``Idempotency-Key``). When
    set, every POST and PATCH carries one (the caller's, or a fresh one per call, the same for all its
    retries), which makes them safe to re-send: their tools are then idempotent."""

    @field_serializer("connection", "openapi_url")
    def _mask_userinfo(self, value: Any) -> Any:
        return _masked_url(value)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, _masked_url(value) if key in ("connection", "openapi_url") else value

    # True (the defaults) or an AdaptivePolicy: the limit finds the source's capacity, max_concurrency its ceiling
    adaptive: bool | AdaptivePolicy = False

    @field_validator("adaptive", mode="before")
    @classmethod
    def _adaptive(cls, value: Any) -> Any:
        if isinstance(value, str):  # adaptive="aimd": the algorithm by name, its defaults
            return AdaptivePolicy(algorithm=value)  # type: ignore[arg-type]
        return value

    @property
    def adaptive_policy(self) -> AdaptivePolicy | None:
        """The adaptive policy in force (``adaptive=True``: the defaults), or ``None`` for a static limit."""
        if self.adaptive is True:
            return AdaptivePolicy()
        return self.adaptive or None

    @field_validator("timeout_s", "connect_timeout_s", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would take True for 1.0 second
            raise ValueError("must be a number of seconds, not a bool")
        return value

    @field_validator("timeout_s", "connect_timeout_s")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @field_validator("connection")
    @classmethod
    def _connection(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("must not be empty")
        return value

    @field_validator("tool_filter")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not pattern for pattern in value):
            raise ValueError("patterns must be non-empty strings")
        return value

    @field_validator("openapi_url")
    @classmethod
    def _openapi_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.transport is not TransportType.MCP and not isinstance(self.connection, str):
            raise ValueError(f"connection: the {self.transport.value} transport needs a URL string")
        if self.transport is TransportType.HTTP and not self.connection.startswith(("http://", "https://")):
            raise ValueError("connection: the http transport needs an http(s):// base URL")
        policy = self.adaptive_policy
        problem = policy.bounds_error(self.max_concurrency) if policy is not None else None
        if problem is not None:
            field, message = problem
            raise ValueError(f"adaptive.{field}: {message.replace('the ceiling', 'max_concurrency')}")
        expected = _AUTH_KEYS[self.auth_type]
        given = set(self.auth_config)
        if given not in expected:
            wanted = " or ".join(", ".join(sorted(keys)) or "no keys" for keys in expected)
            raise ValueError(
                f"auth_config: auth_type {self.auth_type.value!r} needs {wanted}; got keys {sorted(given)}"
            )
        return self

    def resolved_env(self) -> dict[str, str]:
        """The configured ``env`` with ``${VAR}`` references expanded from ``os.environ`` (only these keys)."""
        return {key: expand_vars(secret.get_secret_value(), f"env.{key}") for key, secret in self.env.items()}

    def auth_value(self, key: str) -> str:
        """``auth_config[key]`` with its ``${VAR}`` references expanded (now, from the environment)."""
        return expand_vars(self.auth_config[key].get_secret_value(), f"auth_config.{key}")

    def auth_headers(self) -> dict[str, str]:
        """The HTTP headers that authenticate to the source, with ``${VAR}`` references expanded.

        An ``api_key`` without a ``header`` has no header of its own (the HTTP transport places it where the
        OpenAPI document says): asking for its headers is a ``ConfigurationError``."""
        if self.auth_type is AuthType.BEARER:
            token = expand_vars(self.auth_config["token"].get_secret_value(), "auth_config.token")
            return {"Authorization": f"Bearer {token}"}
        if self.auth_type is AuthType.BASIC:
            pair = f"{self.auth_value('username')}:{self.auth_value('password')}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if self.auth_type is AuthType.API_KEY:
            if "header" not in self.auth_config:
                raise ConfigurationError(
                    "auth_config.header",
                    f"{self.name}: the {self.transport.value} transport needs the header to send the key in",
                )
            header = expand_vars(self.auth_config["header"].get_secret_value(), "auth_config.header")
            value = expand_vars(self.auth_config["value"].get_secret_value(), "auth_config.value")
            return {header: value}
        return {}

    def secret_values(self) -> list[str]:
        """Every secret that resolves now, as it may show up in a message: each ``auth_config`` value (but the
        header *name*) and each ``env`` value, as configured and expanded, the value of every ``${VAR}`` they
        reference, and the credential of a ``"<scheme> <credential>"`` value (``Bearer ...``) on its own.
        Longest first; values shorter than 4 characters are left out (masking them would mangle messages)."""
        found: set[str] = set()
        for key, secret in (*self.auth_config.items(), *self.env.items()):
            if key == "header":  # a header *name* is not a secret, and redacting it would mangle messages
                continue
            raw = secret.get_secret_value()
            candidates = [raw, *(os.environ.get(name, "") for name in _VAR.findall(raw))]
            with contextlib.suppress(ConfigurationError):  # an unset variable: nothing of it can leak
                candidates.append(expand_vars(raw, key))
            for value in candidates:
                if _VAR.fullmatch(value):
                    continue  # a bare ``${VAR}`` reference is configuration, not a secret
                found.add(value)
                found.update(part for part in value.split() if len(part) >= 8)  # "Bearer <credential>"
        pairs: list[tuple[str, str]] = []
        if self.auth_type is AuthType.BASIC:
            with contextlib.suppress(ConfigurationError):
                pairs.append((self.auth_value("username"), self.auth_value("password")))
        for url in (self.connection, self.openapi_url):
            if isinstance(url, str):
                _, user, password = split_userinfo(url)
                if password:
                    found.add(password)
                    pairs.append((user or "", password))
        for user, password in pairs:  # what goes on the wire: "user:password", base64-encoded
            found.add(f"{user}:{password}")
            found.add(base64.b64encode(f"{user}:{password}".encode()).decode())
        return sorted((v for v in found if len(v) >= _MIN_SECRET), key=lambda v: (-len(v), v))

    def redact(self, text: str, *, also: Iterable[str] = ()) -> str:
        """``text`` with every secret of this config (see :meth:`secret_values`) replaced by ``***``, also as a
        server may echo it: percent-encoded in either case (``%2F``, ``%2f``), form-encoded, JSON-escaped (with
        ``\\/`` too), in any mix of these and upper- or lower-cased.

        ``also`` adds values resolved earlier: a transport passes the secrets it resolved at connect time, so a
        credential still in use is masked even after its environment variable changed. The one place every
        transport masks what a server sends back before it goes into an error message.
        """
        if not text:
            return text
        secrets: set[str] = {value for value in also if len(value) >= _MIN_SECRET}
        secrets.update(self.secret_values())
        if not secrets:
            return text
        return _pattern(frozenset(secrets)).sub(REDACTED, text)


def _char(c: str) -> str:
    """A pattern for one character of a secret as a server may echo it: itself, percent-encoded (``%2F`` or
    ``%2f``), form-encoded (``+`` for a space), JSON-escaped (``\\u00e9``, ``\\/``)."""
    if c.isascii() and (c.isalnum() or c in "-_.~"):
        return re.escape(c)
    alternatives = {re.escape(c), re.escape("".join(f"%{byte:02X}" for byte in c.encode()))}
    if ord(c) < 0x10000:
        alternatives.add(re.escape(f"\\u{ord(c):04x}"))
    if c in '/"\\':
        alternatives.add(re.escape("\\" + c))
    if c == " ":
        alternatives.add(re.escape("+"))
    return "(?:" + "|".join(sorted(alternatives, key=len, reverse=True)) + ")"


_PATTERNS: dict[frozenset[str], re.Pattern[str]] = {}


def _pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    pattern = _PATTERNS.get(secrets)
    if pattern is None:
        ordered = sorted(secrets, key=lambda v: (-len(v), v))  # longest first: no half-masked secret
        # each character in any of its echo forms, in any mix, and in any case (an upper-cased token too)
        pattern = re.compile("|".join("".join(_char(c) for c in secret) for secret in ordered), re.IGNORECASE)
        if len(_PATTERNS) > 64:  # secrets change rarely; keep the cache small
            _PATTERNS.clear()
        _PATTERNS[secrets] = pattern
    return pattern
