"""``telemetry.propagation.inject`` writes exactly what ``propagate.inject`` writes, whatever the context and
whatever propagator the application set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Setter, TextMapPropagator, default_setter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from penguiflow.telemetry import propagation


class Constant(TextMapPropagator):
    """An application's own propagator: writes a header whatever the context holds."""

    def extract(self, carrier: CarrierT, context: otel_context.Context | None = None, getter: object = None):  # type: ignore[no-untyped-def,override]
        return context or otel_context.Context()

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        setter.set(carrier, "x-tenant", "acme")

    @property
    def fields(self) -> set[str]:
        return {"x-tenant"}


def both() -> tuple[dict[str, str], dict[str, str]]:
    ours: dict[str, str] = {"accept": "x"}
    theirs: dict[str, str] = {"accept": "x"}
    propagation.inject(ours)
    propagate.inject(theirs)
    return ours, theirs


@pytest.fixture
def textmap() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def span_context(state: TraceState | None = None, flags: int = 1) -> SpanContext:
    return SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(flags),
        trace_state=state,
    )


@pytest.mark.parametrize(
    "context",
    [
        None,
        span_context(),
        span_context(flags=0),
        span_context(TraceState([("vendor", "value"), ("other", "1")])),
    ],
    ids=["no span", "sampled", "not sampled", "trace state"],
)
def test_the_default_propagators_headers_are_written_as_they_write_them(context: SpanContext | None) -> None:
    ctx = (
        trace.set_span_in_context(NonRecordingSpan(context))
        if context is not None
        else otel_context.Context()
    )
    token = otel_context.attach(ctx)
    try:
        ours, theirs = both()
    finally:
        otel_context.detach(token)
    assert ours == theirs
    assert ("traceparent" in ours) is (context is not None)


def test_baggage_is_propagated_with_or_without_a_span() -> None:
    for ctx in (
        baggage.set_baggage("tenant", "acme b", otel_context.Context()),
        baggage.set_baggage("k", "v", trace.set_span_in_context(NonRecordingSpan(span_context()))),
    ):
        token = otel_context.attach(ctx)
        try:
            ours, theirs = both()
        finally:
            otel_context.detach(token)
        assert ours == theirs and "baggage" in ours


def test_an_applications_own_propagator_runs_even_with_nothing_in_the_context(textmap: None) -> None:
    propagate.set_global_textmap(CompositePropagator([Constant()]))
    ours, theirs = both()
    assert ours == theirs == {"accept": "x", "x-tenant": "acme"}
    propagate.set_global_textmap(Constant())
    ours, theirs = both()
    assert ours == theirs == {"accept": "x", "x-tenant": "acme"}


def test_inject_returns_the_span_it_propagates(textmap: None) -> None:
    default = propagate.get_global_textmap()
    span = NonRecordingSpan(span_context())
    for ctx in (
        trace.set_span_in_context(span),
        baggage.set_baggage("k", "v", trace.set_span_in_context(span)),
    ):
        token = otel_context.attach(ctx)
        try:
            assert propagation.inject({}) is span
            propagate.set_global_textmap(CompositePropagator([Constant()]))
            assert propagation.inject({}) is span  # an application's propagator: the same span
        finally:
            propagate.set_global_textmap(default)
            otel_context.detach(token)
    assert propagation.inject({}) is trace.INVALID_SPAN  # nothing current
