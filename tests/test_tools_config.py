"""ExternalToolConfig and ModelRegistry: bad values fail at construction naming the field; secrets stay secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from penguiflow import ModelRegistry
from penguiflow.errors import ConfigurationError, ToolNotFoundError, ToolValidationError
from penguiflow.middleware import RetryPolicy as EngineRetryPolicy
from penguiflow.tools import AuthType, ExternalToolConfig, RetryPolicy, ToolNode, TransportType

BASE: dict[str, Any] = {
    "name": "svc",
    "transport": TransportType.HTTP,
    "connection": "https://api.example.com/v1",
}


def config(**overrides: Any) -> ExternalToolConfig:
    return ExternalToolConfig(**{**BASE, **overrides})


def test_defaults_are_the_guides() -> None:
    c = config()
    assert c.max_concurrency == 10
    assert c.timeout_s == 30.0
    assert c.retry_policy == RetryPolicy()
    assert c.auth_type is AuthType.NONE and c.auth_config == {} and c.env == {}
    assert c.tool_filter is None and c.openapi_url is None and c.max_queue is None
    assert RetryPolicy is EngineRetryPolicy


def test_enums_accept_their_strings() -> None:
    assert [t.value for t in TransportType] == ["mcp", "http", "utcp"]
    assert [a.value for a in AuthType] == ["none", "api_key", "bearer", "basic"]
    c = config(transport="http", auth_type="bearer", auth_config={"token": "t0ken"})
    assert c.transport is TransportType.HTTP and c.auth_type is AuthType.BEARER


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "1starts_with_digit"}, "name"),
        ({"name": "dotted.name"}, "name"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 10_001}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": float("inf")}, "timeout_s"),
        ({"max_queue": -1}, "max_queue"),
        ({"connection": ""}, "connection"),
        ({"transport": "grpc"}, "transport"),
        ({"auth_type": "oauth"}, "auth_type"),
        ({"tool_filter": [""]}, "tool_filter"),
        ({"openapi_url": "file:///etc/passwd"}, "openapi_url"),
        ({"concurrency": 5}, "concurrency"),  # a typo is an error, not silently ignored
        ({"retry_policy": {"max_attempts": 0}}, "max_attempts"),
    ],
)
def test_bad_values_fail_at_construction_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**overrides)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (
            {"connection": "old-system.internal/api"},
            "connection: the http transport needs an http(s):// base URL",
        ),
        ({"transport": TransportType.UTCP, "connection": 42}, "connection: the utcp transport needs a URL"),
        ({"auth_type": AuthType.BEARER}, "auth_config: auth_type 'bearer' needs token"),
        ({"auth_type": AuthType.API_KEY, "auth_config": {"header": "X-Key"}}, "needs header, value or value"),
        ({"auth_config": {"token": "t"}}, "auth_config: auth_type 'none' needs no keys"),
    ],
)
def test_inconsistent_fields_are_named(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**overrides)
    assert needle in str(info.value)


def test_mcp_connection_may_be_an_object() -> None:
    server = object()  # stands for an in-process fastmcp.FastMCP
    c = ExternalToolConfig(name="inproc", transport=TransportType.MCP, connection=server)
    assert c.connection is server


def test_auth_headers_and_env_expand_variables_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    bearer = config(auth_type=AuthType.BEARER, auth_config={"token": "${PF_CFG_TOKEN}"})
    api_key = config(
        auth_type=AuthType.API_KEY, auth_config={"header": "X-API-Key", "value": "k-${PF_CFG_KEY}"}
    )
    env = config(env={"GITHUB_TOKEN": "${PF_CFG_TOKEN}", "PLAIN": "value"})
    monkeypatch.setenv("PF_CFG_TOKEN", "tok-1")
    monkeypatch.setenv("PF_CFG_KEY", "42")
    assert bearer.auth_headers() == {"Authorization": "Bearer tok-1"}
    assert api_key.auth_headers() == {"X-API-Key": "k-42"}
    assert env.resolved_env() == {"GITHUB_TOKEN": "tok-1", "PLAIN": "value"}
    assert config().auth_headers() == {}
    monkeypatch.setenv("PF_CFG_TOKEN", "tok-2")  # read when asked, not at construction
    assert bearer.auth_headers() == {"Authorization": "Bearer tok-2"}


def test_missing_variable_names_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PF_CFG_MISSING", raising=False)
    c = config(auth_type=AuthType.BEARER, auth_config={"token": "prefix-${PF_CFG_MISSING}"})
    with pytest.raises(ConfigurationError) as info:
        c.auth_headers()
    assert info.value.field == "auth_config.token"
    assert "'PF_CFG_MISSING' is not set" in str(info.value) and "prefix" not in str(info.value)
    e = config(env={"GH": "${PF_CFG_MISSING}"})
    with pytest.raises(ConfigurationError, match=r"env\.GH: environment variable 'PF_CFG_MISSING'"):
        e.resolved_env()


def test_secrets_never_show_in_repr_str_or_dumps() -> None:
    secret, env_secret = "ghp_literalSecretToken", "envSecretValue99"
    c = config(auth_type=AuthType.BEARER, auth_config={"token": secret}, env={"TOKEN": env_secret})
    node = ToolNode(c)
    texts = [
        repr(c),
        str(c),
        repr(c.model_dump()),
        c.model_dump_json(),
        json.dumps(c.model_dump(mode="json")),
    ]
    texts += [repr(node), str(node)]
    for text in texts:
        assert secret not in text and env_secret not in text
    assert c.auth_headers() == {"Authorization": f"Bearer {secret}"}


def test_config_is_immutable() -> None:
    c = config()
    with pytest.raises(ValidationError):
        c.max_concurrency = 3  # type: ignore[misc]


# --- ModelRegistry -----------------------------------------------------------------------------------------


class Issue(BaseModel):
    title: str
    labels: list[str] = []


SCHEMA = {
    "type": "object",
    "properties": {"repo": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
    "required": ["repo"],
    "additionalProperties": False,
}


def test_registry_registers_schemas_and_models() -> None:
    registry = ModelRegistry()
    registry.register("github.list", SCHEMA)
    registry.register("github.create_issue", Issue)
    assert registry.names() == ["github.list", "github.create_issue"]
    assert "github.list" in registry and "nope" not in registry and len(registry) == 2
    assert registry.get("github.list") == SCHEMA
    assert registry.get("github.create_issue")["required"] == ["title"]
    assert registry.model("github.create_issue") is Issue and registry.model("github.list") is None
    assert registry.validate("github.list", {"repo": "a/b", "count": 2}) == {"repo": "a/b", "count": 2}
    assert registry.validate("github.create_issue", {"title": "t"}) == {"title": "t", "labels": []}
    with pytest.raises(ToolNotFoundError):
        registry.get("nope")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "github.list: missing required argument 'repo'"),
        ({"repo": "a", "colour": "sensitive-value"}, "unexpected argument(s): 'colour'"),
        ({"repo": "a", "count": 0}, "argument 'count' fails 'minimum' (1)"),
        ({"repo": ["sensitive-value"]}, "argument 'repo' fails 'type' ('string')"),
    ],
)
def test_validation_names_the_argument_never_the_value(arguments: dict[str, Any], message: str) -> None:
    registry = ModelRegistry()
    registry.register("github.list", SCHEMA)
    with pytest.raises(ToolValidationError) as info:
        registry.validate("github.list", arguments)
    assert message in str(info.value)
    assert "sensitive-value" not in str(info.value)
    assert info.value.tool == "github.list"


def test_model_validation_errors_name_the_argument() -> None:
    registry = ModelRegistry()
    registry.register("github.create_issue", Issue)
    with pytest.raises(ToolValidationError, match=r"argument 'labels\.0': Input should be a valid string"):
        registry.validate("github.create_issue", {"title": "t", "labels": [{"sensitive-value": 1}]})


def test_invalid_schema_is_refused_at_registration() -> None:
    registry = ModelRegistry()
    with pytest.raises(ConfigurationError) as info:
        registry.register("bad", {"type": "objekt"})
    assert info.value.field == "schema"
    with pytest.raises(ConfigurationError):
        registry.register("bad", 42)  # type: ignore[arg-type]


async def test_a_transport_that_cannot_be_imported_fails_only_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from penguiflow.tools import node as node_module

    missing = {**node_module._TRANSPORTS, TransportType.UTCP: ("penguiflow.tools.transports.nowhere", "X")}
    monkeypatch.setattr(node_module, "_TRANSPORTS", missing)
    node = ToolNode(
        ExternalToolConfig(name="later", transport=TransportType.UTCP, connection="https://x/utcp.json")
    )
    with pytest.raises(ConfigurationError) as info:
        await node.connect()
    assert info.value.field == "transport" and "utcp transport is not available" in str(info.value)
    assert not node.connected
