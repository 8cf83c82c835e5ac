"""penguiflow: observability-first middleware for the tool calls of AI agents."""

__version__ = "0.1.0"

from penguiflow.middleware import FlowEvent, log_flow_events, wrap
from penguiflow.registry import ModelRegistry
from penguiflow.tools.native import tool

__all__ = ["FlowEvent", "ModelRegistry", "__version__", "log_flow_events", "tool", "wrap"]
