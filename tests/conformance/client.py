"""The client under test for the official MCP conformance suite (npm ``@modelcontextprotocol/conformance``).

The suite starts a scenario server and runs ``python -m tests.conformance.client <server-url>`` with the scenario
in ``MCP_CONFORMANCE_SCENARIO`` (and, for some, credentials in ``MCP_CONFORMANCE_CONTEXT``). Only penguiflow's
public API is used — a ``ToolNode`` with the hooks an application would give it — so what passes is what a
user gets. Each scenario does what an agent would: connect (which lists the tools) and call the tool the
scenario is about. The exit code is 0 when the session did what the scenario asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import httpx

from penguiflow.tools import (
    ExternalToolConfig,
    McpClientCredentials,
    McpOAuth,
    RetryPolicy,
    ToolNode,
    TransportType,
)
from penguiflow.tools.hooks import Elicitation

# A CIMD document URL (SEP-991): the auth scenarios that offer client ID metadata documents accept this one.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"

# The tool each scenario's server offers, and its arguments ("*": every tool the server lists, no arguments).
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "tools_call": ("add_numbers", {"a": 5, "b": 3}),
    "elicitation-sep1034-client-defaults": ("test_client_elicitation_defaults", {}),
    "sse-retry": ("test_reconnection", {}),
}


async def follow_authorization(url: str) -> str:
    """Headless authorization: the scenario's authorization server approves at once, so its answer to the
    authorization URL is the redirect back to us; return where it points (code and state in the query)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(url, follow_redirects=False)
    location = response.headers.get("location")
    if not location:
        raise RuntimeError(f"the authorization endpoint answered {response.status_code} without a redirect")
    return location


async def accept_with_defaults(request: Elicitation) -> dict[str, Any]:
    """Accept, leaving every field out: penguiflow fills in the schema's defaults (SEP-1034)."""
    return {}


def oauth_for(scenario: str, context: dict[str, Any]) -> McpOAuth | McpClientCredentials | None:
    if not scenario.startswith("auth/"):
        return None
    if scenario == "auth/client-credentials-basic":
        return McpClientCredentials(client_id=context["client_id"], client_secret=context["client_secret"])
    if scenario == "auth/client-credentials-jwt":
        return McpClientCredentials(
            client_id=context["client_id"],
            private_key=context["private_key_pem"],
            signing_algorithm=context.get("signing_algorithm") or "ES256",
        )
    if "client_id" in context:  # pre-registered credentials
        return McpOAuth(
            authorize=follow_authorization,
            client_id=context["client_id"],
            client_secret=context.get("client_secret"),
        )
    return McpOAuth(authorize=follow_authorization, client_metadata_url=CLIENT_METADATA_URL)


async def run(scenario: str, url: str, context: dict[str, Any]) -> None:
    config = ExternalToolConfig(
        name="conformance",
        transport=TransportType.MCP,
        connection=url,
        timeout_s=20,
        connect_timeout_s=20,
        retry_policy=RetryPolicy(max_attempts=1),
    )
    node = ToolNode(config, elicitation_handler=accept_with_defaults, oauth=oauth_for(scenario, context))
    async with node:
        tools = [entry.name.split(".", 1)[1] for entry in node.get_tools()]
        print(f"{scenario}: tools {tools}")
        if scenario in CALLS:
            tool, arguments = CALLS[scenario]
            result = await node.call(tool, arguments)
            print(f"{scenario}: {tool} -> {json.dumps(result, default=str)[:500]}")
        elif scenario.startswith("auth/") and "test-tool" in tools:
            result = await node.call("test-tool", {})
            print(f"{scenario}: test-tool -> {json.dumps(result, default=str)[:500]}")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    try:
        asyncio.run(run(scenario, argv[-1], context))
    except Exception as exc:
        print(f"{scenario}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
