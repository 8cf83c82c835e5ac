"""The README's telemetry table is the one in names.py: every metric with its kind, unit and attributes, and
every span and event name."""

from __future__ import annotations

import re
from pathlib import Path

from penguiflow_middleware import names

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_metric_table_matches_names() -> None:
    rows = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`penguiflow."):
            rows[cells[0].strip("`")] = (
                cells[1],
                cells[2].strip("`"),
                re.findall(r"`([^`]+)`", cells[3]),
                cells[4],
            )
    assert rows == {
        spec.name: (spec.kind, spec.unit, list(spec.attributes), spec.description) for spec in names.METRICS
    }


def test_every_span_and_event_name_is_documented() -> None:
    text = README.read_text()
    declared = {
        value
        for key, value in vars(names).items()
        if key.startswith(("SPAN_", "EVENT_")) and isinstance(value, str)
    }
    assert declared
    assert {name for name in declared if f"`{name}`" not in text and f"`{name} " not in text} == set()
