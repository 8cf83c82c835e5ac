"""penguiflow: observability-first middleware for the tool calls of AI agents.

``import penguiflow`` loads nothing but this module: each name below is imported on first use (PEP 562), so a
program pays for pydantic, tenacity or jsonschema only when it uses what needs them
(``tests/test_import_cost.py`` holds the list of what ``import penguiflow`` may load).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

import logging as _logging

# A library's manners: without the application's logging configured, nothing of ours reaches Python's
# last-resort handler (which prints WARNING and above to stderr). Every logger of ours is below this one.
_logging.getLogger("penguiflow").addHandler(_logging.NullHandler())

# name -> the module that defines it
_EXPORTS = {
    "FlowEvent": "penguiflow.middleware",
    "log_flow_events": "penguiflow.middleware",
    "wrap": "penguiflow.middleware",
    "ModelRegistry": "penguiflow.registry",
    "tool": "penguiflow.tools.native",
}

if TYPE_CHECKING:
    from penguiflow.middleware import FlowEvent, log_flow_events, wrap
    from penguiflow.registry import ModelRegistry
    from penguiflow.tools.native import tool

__all__ = ["FlowEvent", "ModelRegistry", "__version__", "log_flow_events", "tool", "wrap"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'penguiflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
