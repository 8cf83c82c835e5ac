"""MCP over streamable HTTP at its edges (issue "safe at the edges"): a hostile server in its own process
(``flood_mcp_server.py``) answers ``tools/call`` with 300 MB or endless bodies — plain, chunked, announced,
gzip-bombed, as an error, as one giant SSE event or endless small ones — and ``tools/list`` with an endless
catalog. Each answer is read within ``max_response_bytes`` (RSS growth < 100 MB), fails with
``ToolResponseTooLargeError`` once (the tools are read-only, so a retryable error would be re-sent), and its
connection is dropped: the server counts the bytes it got out and sees the client hang up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from penguiflow.errors import ToolExecutionError, ToolResponseTooLargeError
from penguiflow.tools import ExternalToolConfig, RetryPolicy, ToolNode
from penguiflow.tools.config import DEFAULT_MAX_RESPONSE_BYTES
from tests.reliability.servers import script_server
from tests.reliability.test_mcp_edges import edge_config
from tests.support.memory import PeakRss

pytestmark = pytest.mark.timeout(180)

MB = 1024 * 1024
# The socket buffers of both ends and httpx2's reads: what a server gets out before it sees the hang-up.
IN_FLIGHT = 32 * MB
RETRY3 = RetryPolicy(max_attempts=3, wait_exponential_min_s=0.01, wait_exponential_max_s=0.02)


@pytest.fixture(scope="module")
def flood() -> Iterator[str]:
    with script_server(Path(__file__).with_name("flood_mcp_server.py")) as url:
        yield url


def flood_config(url: str, **overrides: Any) -> ExternalToolConfig:
    return edge_config(connection=url, timeout_s=120, retry_policy=RETRY3, **overrides)


async def _served(node: ToolNode, tool: str) -> dict[str, int]:
    stats: dict[str, dict[str, int]] = json.loads(await node.call(f"{node.name}.stats", {}))
    return stats[tool]


@pytest.mark.parametrize(
    ("tool", "limit"),
    [
        ("big", DEFAULT_MAX_RESPONSE_BYTES),  # 300 MB of application/json, no Content-Length
        ("declared", DEFAULT_MAX_RESPONSE_BYTES),  # 300 MB announced: refused before reading
        ("chunked", DEFAULT_MAX_RESPONSE_BYTES),  # a chunked body with no end in sight (1 GiB)
        ("bomb", DEFAULT_MAX_RESPONSE_BYTES),  # 300 kB of gzip inflating to 300 MB
        ("sse_giant", DEFAULT_MAX_RESPONSE_BYTES),  # one SSE event that never ends
        ("sse_endless", 1 * MB),  # ~100-byte events forever (1 MiB: 10k events, not 170k to dispatch)
    ],
)
async def test_an_answer_is_read_within_max_response_bytes(flood: str, tool: str, limit: int) -> None:
    async with ToolNode(flood_config(f"{flood}/mcp", max_response_bytes=limit)) as node:
        with (
            PeakRss() as rss,
            pytest.raises(ToolResponseTooLargeError, match=f"max_response_bytes={limit}") as failed,
        ):
            await node.call(f"{node.name}.{tool}", {})
        assert failed.value.limit == limit and not failed.value.retryable
        served = await _served(node, tool)  # the session is still usable
    assert rss.growth < 100 * MB, f"RSS grew {rss.growth / MB:.0f} MB"
    assert served["calls"] == 1, served  # not retried
    assert served["hung_up"] == 1, served  # the connection was dropped...
    assert served["sent"] < limit + IN_FLIGHT, served  # ...once the limit was passed, not at the end


async def test_an_error_body_is_read_within_max_response_bytes(flood: str) -> None:
    async with ToolNode(flood_config(f"{flood}/mcp")) as node:
        # the SDK reads a non-2xx body only for a JSON-RPC error in it; cut short, it is its generic error
        with PeakRss() as rss, pytest.raises(ToolExecutionError, match="Server returned an error response"):
            await node.call(f"{node.name}.error", {})
        served = await _served(node, "error")
    assert rss.growth < 100 * MB, f"RSS grew {rss.growth / MB:.0f} MB"
    assert served["calls"] == 1 and served["hung_up"] == 1, served
    assert served["sent"] < DEFAULT_MAX_RESPONSE_BYTES + IN_FLIGHT, served


async def test_an_endless_tool_list_fails_connect_within_max_response_bytes(flood: str) -> None:
    node = ToolNode(flood_config(f"{flood}/huge-list/mcp", max_response_bytes=4 * MB))
    with PeakRss() as rss, pytest.raises(ToolResponseTooLargeError, match=f"max_response_bytes={4 * MB}"):
        await node.connect()
    await node.close()
    assert rss.growth < 100 * MB, f"RSS grew {rss.growth / MB:.0f} MB"
