"""A stdio session's ``tools/call`` straight on the ``mcp`` SDK's ``ClientSession``, past fastmcp's client.

fastmcp's ``call_tool_mcp`` runs each request as a task of its own raced (``asyncio.wait``) against the
session's runner task — twice per call: the request, then the SEP-2322 input-required driver — opens a client
span (suppressed by ours) and injects the W3C trace context that the SDK injects again. The race is there for
HTTP, where a server's 4xx/5xx surfaces in the runner task while the request would wait forever. Over stdio
nothing waits forever: a server that dies, or a line over ``max_response_bytes``, ends the read stream, and the
SDK's dispatcher fails every pending request with ``CONNECTION_CLOSED`` whichever way its loop ends.

fastmcp stays for what it serves: the transports, the handshake, auth, the callback table (elicitation,
sampling, roots, logging), and the input-required rounds (a server asking for elicitation, sampling or roots
inside a call's result), which this module hands to fastmcp's own driver. Claimed extension results (SEP-2133)
keep fastmcp's path: :func:`usable` says no when the client registered a claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from fastmcp import Client
from fastmcp.telemetry import suppress_fastmcp_telemetry
from mcp.shared.dispatcher import ProgressFnT
from mcp.types import CallToolResult, InputRequiredResult, InputResponses, RequestParamsMeta

from penguiflow.tools.transports.mcp.stdio import BoundedStdioTransport

__all__ = ["call_tool", "usable"]


def usable(client: Client[Any]) -> bool:
    """Whether :func:`call_tool` does for ``client`` all that fastmcp's ``call_tool_mcp`` would."""
    return isinstance(client.transport, BoundedStdioTransport) and not getattr(
        client, "_claim_by_model", True
    )


async def call_tool(
    client: Client[Any],
    tool: str,
    arguments: dict[str, Any],
    on_progress: ProgressFnT | None,
    meta: Mapping[str, Any] | None = None,
) -> CallToolResult:
    """One ``tools/call`` on ``client``'s open session; the result as the server sent it."""
    session = client.session

    async def send(
        responses: InputResponses | None = None, state: str | None = None
    ) -> CallToolResult | InputRequiredResult:
        return await session.call_tool(
            tool,
            arguments,
            progress_callback=on_progress,
            meta=cast("RequestParamsMeta | None", meta),  # the SDK types it as a TypedDict
            input_responses=responses,
            request_state=state,
            allow_input_required=True,
        )

    first = await send()
    if isinstance(first, CallToolResult):
        return first
    # fastmcp's driver: each embedded request through the session's callback table, then the call re-sent
    # (its spans switched off here: the caller's own_spans leaves fastmcp's switch to this module).
    with suppress_fastmcp_telemetry():
        driven: CallToolResult = await client._drive_input_required(first, send)
    return driven
