"""Every ``ToolNode(...)`` snippet of the concurrency guide, pasted verbatim (connection strings unchanged).

Each must construct with no network, no subprocess and no transport import, and report its configured limits
back. A guard fails the test if construction opens a socket, resolves a name or starts a process.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from penguiflow import ModelRegistry
from penguiflow.middleware import ConcurrencyLimit, Retry, Timeout
from penguiflow.middleware.events import FlowEventLogger
from penguiflow.tools import NotConnectedError, PendingTools, RetryPolicy

TRANSPORT_MODULES = (
    "penguiflow.tools.transports.mcp",
    "penguiflow.tools.transports.utcp",
    "penguiflow.tools.transports.http",
)


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """Construction must not touch the network or start a process: any attempt fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"constructing a ToolNode tried to reach out: {args!r:.100}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", refuse)
    monkeypatch.setattr(asyncio, "create_subprocess_shell", refuse)
    loaded = {name for name in TRANSPORT_MODULES if name in sys.modules}
    guard = {"check_imports": True}
    yield guard
    if guard["check_imports"]:
        # Constructing imports no transport (MCP and UTCP bring optional dependencies).
        assert {name for name in TRANSPORT_MODULES if name in sys.modules} == loaded


def assert_default_stack(node: Any, *, name: str, limit: int, timeout_s: float, policy: RetryPolicy) -> None:
    assert node.name == name
    assert node.max_concurrency == limit
    assert node.timeout_s == timeout_s
    assert node.retry_policy == policy
    assert node.limiter is not None and node.limiter.limit == limit and node.limiter.name == name
    kinds = [type(layer) for layer in node.layers]
    assert kinds[:2] == [FlowEventLogger, Retry] and kinds[-2:] == [ConcurrencyLimit, Timeout]
    timeout = node.layers[-1]
    assert isinstance(timeout, Timeout) and timeout.seconds == timeout_s
    assert not node.connected


def test_level_3_snippet(registry: ModelRegistry) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    github = ToolNode(
        config=ExternalToolConfig(
            name="github",
            transport=TransportType.MCP,
            connection="npx -y @modelcontextprotocol/server-github",
            max_concurrency=10,  # Default: 10
        ),
        registry=registry,
    )

    assert_default_stack(github, name="github", limit=10, timeout_s=30.0, policy=RetryPolicy())
    assert github.config.connection == "npx -y @modelcontextprotocol/server-github"
    assert github.registry is registry


def test_high_throughput_snippet(registry: ModelRegistry) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    data_api = ToolNode(
        config=ExternalToolConfig(
            name="data_api",
            transport=TransportType.UTCP,
            connection="https://internal-api.company.com/.well-known/utcp.json",
            max_concurrency=50,  # High concurrency for internal service
            timeout_s=60,  # Longer timeout for batch operations
        ),
        registry=registry,
    )

    assert_default_stack(data_api, name="data_api", limit=50, timeout_s=60.0, policy=RetryPolicy())


def test_rate_limited_snippet(registry: ModelRegistry) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    twitter = ToolNode(
        config=ExternalToolConfig(
            name="twitter",
            transport=TransportType.UTCP,
            connection="https://api.twitter.com/.well-known/utcp.json",
            max_concurrency=3,  # Very limited (Twitter rate limits)
            retry_policy=RetryPolicy(
                max_attempts=5,
                wait_exponential_min_s=1.0,
                wait_exponential_max_s=60.0,
                retry_on_status=[429, 500, 502, 503, 504],
            ),
        ),
        registry=registry,
    )

    policy = RetryPolicy(
        max_attempts=5,
        wait_exponential_min_s=1.0,
        wait_exponential_max_s=60.0,
        retry_on_status=[429, 500, 502, 503, 504],
    )
    assert_default_stack(twitter, name="twitter", limit=3, timeout_s=30.0, policy=policy)
    retry = twitter.layers[1]
    assert isinstance(retry, Retry) and retry.policy.max_attempts == 5


def test_sequential_only_snippet(registry: ModelRegistry) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    legacy_api = ToolNode(
        config=ExternalToolConfig(
            name="legacy",
            transport=TransportType.HTTP,
            connection="https://old-system.internal/api",
            max_concurrency=1,  # Strictly sequential
            timeout_s=120,  # Legacy systems may be slow
        ),
        registry=registry,
    )

    assert_default_stack(legacy_api, name="legacy", limit=1, timeout_s=120.0, policy=RetryPolicy())


async def test_mixed_workload_snippet(registry: ModelRegistry) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    # Fast, reliable internal API
    internal = ToolNode(
        config=ExternalToolConfig(
            name="internal",
            transport=TransportType.UTCP,
            connection="https://api.internal/.well-known/utcp.json",
            max_concurrency=30,
        ),
        registry=registry,
    )

    # Rate-limited external API
    github = ToolNode(
        config=ExternalToolConfig(
            name="github",
            transport=TransportType.MCP,
            connection="npx -y @modelcontextprotocol/server-github",
            max_concurrency=10,
        ),
        registry=registry,
    )

    # Expensive external API (costs per call)
    openai_tools = ToolNode(
        config=ExternalToolConfig(
            name="openai",
            transport=TransportType.HTTP,
            connection="https://api.openai.com/v1",
            max_concurrency=5,  # Limit spend rate
        ),
        registry=registry,
    )

    assert_default_stack(internal, name="internal", limit=30, timeout_s=30.0, policy=RetryPolicy())
    assert_default_stack(github, name="github", limit=10, timeout_s=30.0, policy=RetryPolicy())
    assert_default_stack(openai_tools, name="openai", limit=5, timeout_s=30.0, policy=RetryPolicy())
    # Each node has its own limiter: the limits are independent of each other.
    assert len({id(node.limiter) for node in (internal, github, openai_tools)}) == 3
    # The guide's planner line lists get_tools() of each node before any connect: each gives one placeholder
    # for its whole source (never a silently empty list), which the planner resolves at its first run.
    for node in (internal, github, openai_tools):
        (pending,) = node.get_tools()
        assert isinstance(pending, PendingTools) and pending.node is node
        with pytest.raises(NotConnectedError, match=r"await node\.connect\(\)"):
            await pending.invoke({})


def test_retry_configuration_snippet() -> None:
    from penguiflow.tools import RetryPolicy

    # Aggressive retry for transient failures
    fast_retry = RetryPolicy(
        max_attempts=3,
        wait_exponential_min_s=0.1,
        wait_exponential_max_s=2.0,
        retry_on_status=[500, 502, 503, 504],  # Server errors only
    )

    # Conservative retry for rate limits
    rate_limit_retry = RetryPolicy(
        max_attempts=5,
        wait_exponential_min_s=1.0,
        wait_exponential_max_s=60.0,
        retry_on_status=[429, 500, 502, 503, 504],  # Include rate limit
    )

    # No retry for critical operations
    no_retry = RetryPolicy(
        max_attempts=1,
        retry_on_status=[],
    )

    assert fast_retry.retry_on_status == (500, 502, 503, 504)
    assert rate_limit_retry.max_attempts == 5 and 429 in rate_limit_retry.retry_on_status
    assert no_retry.max_attempts == 1 and no_retry.retry_on_status == ()


async def test_the_guard_catches_a_connect(no_network: dict[str, bool]) -> None:
    from penguiflow.tools import ExternalToolConfig, ToolNode, TransportType

    node = ToolNode(
        ExternalToolConfig(
            name="guard", transport=TransportType.HTTP, connection="https://old-system.internal/api"
        )
    )
    with pytest.raises(AssertionError, match="tried to reach out"):
        await node.connect()
    no_network["check_imports"] = False  # connecting imports the transport, as it should
