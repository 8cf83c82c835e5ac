"""The errors the plug-in layers raise, all :class:`penguiflow.errors.PenguiflowError` subclasses.

Refusals by a layer (open circuit, rate-limit wait too long) subclass the core's
:class:`~penguiflow.errors.LimiterRejectedError`, so the stack counts them with outcome ``rejected`` and
``Retry`` does not retry them (``retryable = False``): the layer already decided the call must not run now.
"""

from __future__ import annotations

from penguiflow.errors import LimiterRejectedError, PenguiflowError


class CircuitOpenError(LimiterRejectedError):
    """The circuit breaker ``circuit`` is open (or half-open with its probes busy): the call was not run.

    ``retry_after`` is the number of seconds until the breaker will let a probe through (0 when half-open).
    """

    retryable = False

    def __init__(self, circuit: str, state: str, retry_after: float) -> None:
        super().__init__(circuit, 0)
        message = f"circuit {circuit!r} is {state}: call not run (next probe in {retry_after:.3g}s)"
        self.args = (message,)
        self.circuit = circuit
        self.state = state
        self.retry_after = retry_after


class RateLimitExceededError(LimiterRejectedError):
    """Waiting for a token of rate limiter ``limiter`` would take longer than its ``max_wait_s``.

    ``retry_after`` is the wait the call would have needed, in seconds.
    """

    retryable = False

    def __init__(self, limiter: str, wait_s: float, max_wait_s: float) -> None:
        super().__init__(limiter, 0)
        self.args = (
            f"rate limiter {limiter!r} rejected the call: it would wait {wait_s:.3g}s, max_wait_s={max_wait_s:g}",
        )
        self.retry_after = wait_s
        self.max_wait_s = max_wait_s


class LimiterUnavailableError(PenguiflowError):
    """The Redis behind limiter ``limiter`` could not be used and the limiter fails closed.

    The message names the limiter and the kind of failure only, never the Redis URL (it may carry a password).
    Not retryable by :class:`penguiflow.middleware.Retry`: Redis being down is not the tool's transient failure,
    and retrying every call against a dead Redis would only multiply the waiting.
    """

    retryable = False

    def __init__(self, limiter: str, reason: str) -> None:
        super().__init__(f"limiter {limiter!r} is unavailable: Redis failed ({reason}); failing closed")
        self.limiter = limiter
        self.reason = reason
