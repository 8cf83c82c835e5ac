"""penguiflow: observability-first middleware for the tool calls of AI agents."""

__version__ = "0.1.0"

from penguiflow.middleware import FlowEvent, log_flow_events, wrap

__all__ = ["FlowEvent", "__version__", "log_flow_events", "wrap"]
