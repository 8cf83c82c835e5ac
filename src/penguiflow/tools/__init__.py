"""Tool sources and catalog entries: ``ToolNode`` for external sources, ``@tool`` for Python functions.

>>> from penguiflow.tools import ToolNode, ExternalToolConfig, TransportType, RetryPolicy
"""

from penguiflow.middleware.adaptive.policy import AdaptivePolicy
from penguiflow.middleware.retry import RetryPolicy
from penguiflow.registry import ModelRegistry
from penguiflow.tools.catalog import ToolEntry
from penguiflow.tools.config import AuthType, ExternalToolConfig, TransportType
from penguiflow.tools.hooks import (
    Elicitation,
    ElicitationReply,
    McpClientCredentials,
    McpOAuth,
    Sampling,
)
from penguiflow.tools.native import NativeTool, tool
from penguiflow.tools.node import NotConnectedError, PendingTools, ToolNode
from penguiflow.tools.transports.base import ToolSpec, Transport
from penguiflow.tools.validation import ValidateArguments

__all__ = [
    "AdaptivePolicy",
    "AuthType",
    "Elicitation",
    "ElicitationReply",
    "ExternalToolConfig",
    "McpClientCredentials",
    "McpOAuth",
    "ModelRegistry",
    "NativeTool",
    "NotConnectedError",
    "PendingTools",
    "RetryPolicy",
    "Sampling",
    "ToolEntry",
    "ToolNode",
    "ToolSpec",
    "Transport",
    "TransportType",
    "ValidateArguments",
    "tool",
]
