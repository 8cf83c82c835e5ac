"""One LLM turn of a planner run: the call, its ``chat`` span and its duration and token metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode

from penguiflow.planner.llm.base import LLMClient, LLMReply
from penguiflow.planner.state import RunState
from penguiflow.telemetry import instruments, names

__all__ = ["ask", "open_span"]


async def ask(
    llm: LLMClient, model: str, state: RunState, *, offer_tools: bool = True
) -> tuple[LLMReply, float]:
    """One LLM call of ``state``'s conversation, in its ``chat`` span, with its duration and token metrics;
    returns the reply and its latency in ms."""
    telemetry = instruments.current()
    attributes: dict[str, Any] = {
        names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
        names.GEN_AI_REQUEST_MODEL: model,
    }
    provider = getattr(llm, "provider", None)
    if isinstance(provider, str):
        attributes[names.GEN_AI_PROVIDER_NAME] = provider
    start = time.perf_counter()
    error_type: str | None = None
    with open_span(telemetry, names.SPAN_CHAT.format(model=model), attributes, kind=SpanKind.CLIENT) as span:
        try:
            reply = await llm.complete(list(state.messages), list(state.tools) if offer_tools else [])
        except BaseException as exc:
            error_type = type(exc).__qualname__
            if span is not None:
                span.set_attribute(names.ERROR_TYPE, error_type)
                span.set_status(StatusCode.ERROR, error_type)
            raise
        finally:
            elapsed = time.perf_counter() - start
            if telemetry is not None and telemetry.metrics is not None:
                labels = {
                    names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
                    names.GEN_AI_REQUEST_MODEL: model,
                }
                if error_type is not None:
                    labels[names.ERROR_TYPE] = error_type
                telemetry.metrics.record(names.LLM_DURATION, elapsed, labels)
        state.llm_calls += 1
        if reply.usage is not None:
            state.usage = state.usage + reply.usage
            if span is not None:
                span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, reply.usage.input_tokens)
                span.set_attribute(names.GEN_AI_USAGE_OUTPUT_TOKENS, reply.usage.output_tokens)
            if telemetry is not None and telemetry.metrics is not None:
                for token_type, count in (
                    ("input", reply.usage.input_tokens),
                    ("output", reply.usage.output_tokens),
                ):
                    telemetry.metrics.record(
                        names.LLM_TOKENS,
                        count,
                        {
                            names.GEN_AI_OPERATION_NAME: names.OPERATION_CHAT,
                            names.GEN_AI_REQUEST_MODEL: model,
                            names.GEN_AI_TOKEN_TYPE: token_type,
                        },
                    )
    return reply, elapsed * 1000


@contextlib.contextmanager
def open_span(
    telemetry: instruments.Telemetry | None,
    name: str,
    attributes: Mapping[str, Any],
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span | None]:
    if telemetry is None or telemetry.tracer is None:
        yield None
        return
    with telemetry.tracer.start_as_current_span(
        name, kind=kind, attributes=dict(attributes), record_exception=False, set_status_on_exception=False
    ) as span:
        yield span
