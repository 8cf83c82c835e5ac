"""Transports: how a ToolNode reaches its source. Each module implements :class:`.base.Transport`; the node
imports them by name only when it connects, so optional dependencies (UTCP) are needed only by their users."""

from penguiflow.tools.transports.base import ToolSpec, Transport

__all__ = ["ToolSpec", "Transport"]
