"""``docs/telemetry.md`` is generated from ``penguiflow.telemetry.names`` and must be up to date and complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from penguiflow.telemetry import doc, names

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "telemetry.md"


def test_docs_telemetry_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == doc.render(), (
        "docs/telemetry.md is out of date: run `python -m penguiflow.telemetry.doc`"
    )


def test_the_module_checks_and_writes(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "penguiflow.telemetry.doc", "--check"]
    assert subprocess.run([*check, str(DOC)], capture_output=True).returncode == 0
    stale = tmp_path / "telemetry.md"
    stale.write_text("old\n")
    done = subprocess.run([*check, str(stale)], capture_output=True, text=True)
    assert done.returncode == 1 and "out of date" in done.stderr
    assert doc.main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == doc.render()


def declared() -> dict[str, str]:
    """Every name constant of the module: upper-case string constants, but the scope and operation values."""
    return {
        constant: value
        for constant, value in vars(names).items()
        if constant.isupper()
        and isinstance(value, str)
        and constant != "SCOPE"
        and not constant.startswith("OPERATION_")
    }


def test_every_declared_name_is_in_the_table() -> None:
    table = doc.render()
    documented = {spec.name for spec in (*names.SPANS, *names.EVENTS, *names.ATTRIBUTES)}
    documented |= {spec.name for spec in names.METRICS}
    for constant, value in declared().items():
        assert value in documented, f"names.{constant} = {value!r} has no row in the table"
        assert f"`{value}`" in table


def test_every_attribute_a_span_event_or_metric_uses_is_declared() -> None:
    attributes = {spec.name for spec in names.ATTRIBUTES}
    for spec in (*names.SPANS, *names.EVENTS, *names.METRICS):
        assert set(spec.attributes) <= attributes, spec.name


def test_the_table_has_every_column_for_a_metric() -> None:
    row = next(
        line
        for line in doc.render().splitlines()
        if line.startswith("| `penguiflow.limiter.queued` | metric")
    )
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "`penguiflow.limiter.queued`",
        "metric (gauge)",
        "`{call}`",
        "`penguiflow.limiter.name`",
        "`penguiflow_limiter_queued`",
        "Waiting calls this limiter holds up now; each waiting call counts at the one limiter it waits for.",
    ]
    assert "## Default layer order" in doc.render() and "Why Retry sits outside the limits" in doc.render()
