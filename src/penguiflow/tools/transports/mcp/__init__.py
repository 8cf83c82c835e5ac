"""The MCP transport: an MCP server's tools (and resources and prompts) behind a ``ToolNode``.

One idea per module: :mod:`.connection` opens a session (stdio command line, streamable HTTP URL or in-process
server), :mod:`.command` handles stdio command lines and a server's stderr, :mod:`.transport` runs the
session and its calls, :mod:`.content` turns results into values, :mod:`.failures` types the errors,
:mod:`.notifications` surfaces progress and log messages, :mod:`.capabilities` answers the server's own
requests (elicitation, sampling, roots), :mod:`.telemetry` keeps the client libraries' spans out of ours.
"""

from penguiflow.tools.transports.mcp.command import split_command
from penguiflow.tools.transports.mcp.transport import McpTransport

__all__ = ["McpTransport", "split_command"]
