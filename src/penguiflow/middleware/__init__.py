"""The middleware engine: layers around a tool invocation.

A layer is any object (or ``async def``) called as ``await layer(call, call_next)``. :func:`wrap` puts a function
behind layers; :class:`Stack` puts any handler behind them. The built-in layers, in their default order for an
external tool source (outermost first)::

    log_flow_events → Retry → ConcurrencyLimit → Timeout → transport

Retry is outside the limits on purpose: a call sleeping in back-off holds no slot, at any level. The caller's
limits (a planner's Levels 1 and 2, ``call.limits``) are admitted by the engine together with the innermost
admission point of the stack, in one decision (:mod:`penguiflow.middleware.admission`).
``AdaptiveConcurrencyLimit`` takes ``ConcurrencyLimit``'s place when the limit should find the backend's capacity.
"""

from penguiflow.middleware import client_errors
from penguiflow.middleware.adaptive import AdaptiveConcurrencyLimit, AdaptivePolicy
from penguiflow.middleware.admission_point import Admission, CallerLimits, admit
from penguiflow.middleware.call import Call, CallNext, Handler, LatencyCallback, Middleware
from penguiflow.middleware.concurrency import ConcurrencyLimit
from penguiflow.middleware.events import EVENT_TYPES, FlowEvent, FlowEventLogger, log_flow_events
from penguiflow.middleware.failures import Failure, classify, register_classifier
from penguiflow.middleware.retry import Retry, RetryPolicy, parse_retry_after
from penguiflow.middleware.stack import Stack, Wrapped, wrap
from penguiflow.middleware.timeout import Timeout

# The errors of httpx, aiohttp, requests and the OpenAI/Anthropic SDKs mean what they say to Retry and the
# outcome metrics from the start; registering imports none of those libraries.
client_errors.install()

__all__ = [
    "EVENT_TYPES",
    "AdaptiveConcurrencyLimit",
    "AdaptivePolicy",
    "Admission",
    "Call",
    "CallNext",
    "CallerLimits",
    "ConcurrencyLimit",
    "Failure",
    "FlowEvent",
    "FlowEventLogger",
    "Handler",
    "LatencyCallback",
    "Middleware",
    "Retry",
    "RetryPolicy",
    "Stack",
    "Timeout",
    "Wrapped",
    "admit",
    "classify",
    "log_flow_events",
    "parse_retry_after",
    "register_classifier",
    "wrap",
]
