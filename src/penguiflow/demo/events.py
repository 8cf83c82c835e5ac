"""Recent retries, timeouts and adaptive limit changes for the demo's view, taken from log records.

Every tool stack starts with ``log_flow_events()``, which logs to ``penguiflow.flow``. The demo keeps those records
off the terminal (the live view is the output) and shows the latest retries and timeouts, back-off waits included.
"""

from __future__ import annotations

import logging
from collections import deque

FLOW_LOGGER = "penguiflow.flow"
ADAPTIVE_LOGGER = "penguiflow.middleware.adaptive"  # an adaptive limit's changes, at INFO


class RecentEvents(logging.Handler):
    """Keeps the last ``size`` retry and timeout records as short lines (and counts every record by type)."""

    def __init__(self, size: int = 6) -> None:
        super().__init__(level=logging.INFO)  # the loggers' own levels choose (flow events: WARNING and up)
        self.lines: deque[str] = deque(maxlen=size)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        if "limiter" in fields and "reason" in fields:  # an adaptive limit changed
            self.counts["limit_changed"] = self.counts.get("limit_changed", 0) + 1
            self.lines.append(
                f"limit   {fields['limiter']} {fields.get('limit_before', '?')} -> {fields.get('limit', '?')} "
                f"({fields['reason']})"
            )
            return
        event = str(fields.get("event_type", record.getMessage()))
        self.counts[event] = self.counts.get(event, 0) + 1
        tool = fields.get("node_name", "?")
        attempt = fields.get("attempt", "?")
        if event == "node_retry":
            line = (
                f"retry   {tool} attempt {attempt} failed ({fields.get('reason', '?')}), "
                f"back-off {float(fields.get('wait_s', 0.0)):.2f}s"
            )
        elif event == "node_timeout":
            line = f"timeout {tool} attempt {attempt} after {fields.get('timeout_s', '?')}s"
        else:  # failed calls are counted in the table; the lines are for what the layers did about them
            return
        self.lines.append(line)


def capture() -> RecentEvents:
    """Route ``penguiflow.flow`` records to a :class:`RecentEvents` only (not to the terminal)."""
    handler = RecentEvents()
    for name, level in ((FLOW_LOGGER, logging.WARNING), (ADAPTIVE_LOGGER, logging.INFO)):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler


def release(handler: RecentEvents) -> None:
    for name in (FLOW_LOGGER, ADAPTIVE_LOGGER):
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.propagate = True
