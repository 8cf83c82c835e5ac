"""penguiflow: observability-first middleware for the tool calls of AI agents."""

__version__ = "0.1.0"

import logging as _logging

# A library's manners: without the application's logging configured, nothing of ours reaches Python's
# last-resort handler (which prints WARNING and above to stderr). Every logger of ours is below this one.
_logging.getLogger("penguiflow").addHandler(_logging.NullHandler())

from penguiflow.middleware import FlowEvent, log_flow_events, wrap  # noqa: E402  (after __version__: cycle)
from penguiflow.registry import ModelRegistry  # noqa: E402
from penguiflow.tools.native import tool  # noqa: E402

__all__ = ["FlowEvent", "ModelRegistry", "__version__", "log_flow_events", "tool", "wrap"]
