from __future__ import annotations

import pytest

from tests.support import otel

otel.install()


@pytest.fixture
def spans() -> object:
    """The session's in-memory span exporter, cleared for this test."""
    otel.SPANS.clear()
    return otel.SPANS
