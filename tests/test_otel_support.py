"""The session's in-memory SDK keeps every test's series apart, however many the session records."""

from __future__ import annotations

from opentelemetry import metrics

from tests.support import otel


def test_the_reader_keeps_more_series_than_the_sdks_default_cardinality_limit() -> None:
    # Each test records under names of its own; with the SDK's default limit (2000 attribute sets per
    # metric) the later ones would be folded into one otel.metric.overflow point and read as 0.
    counter = metrics.get_meter("tests.support").create_counter("tests.support.series")
    prefix = otel.unique("series")
    for index in range(3000):
        counter.add(index + 1, {"series": f"{prefix}.{index}"})
    assert otel.value("tests.support.series", series=f"{prefix}.2999") == 3000
    assert otel.points("tests.support.series", **{"otel.metric.overflow": True}) == []
