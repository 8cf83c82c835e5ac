"""Every error penguiflow raises, in one hierarchy.

Layers decide what to do with a failure by duck-typed attributes, not by transport: an exception that has
``status_code`` (an HTTP-like status), ``retry_after`` (seconds a server asked us to wait), ``retryable``
(``True``/``False``) or ``request_sent = False`` (the request never left) is understood by
:class:`penguiflow.middleware.Retry` whatever raised it (see :mod:`penguiflow.middleware.failures`). A user's
own transport can raise its own exceptions with those attributes and get the same treatment; exceptions of
other libraries are mapped by :func:`penguiflow.middleware.failures.register_classifier`.

Messages never contain secrets: transports build them from the tool name, the status and the server's short
reason, never from headers, tokens or the connection's environment.
"""

from __future__ import annotations


class PenguiflowError(Exception):
    """Base class of every error penguiflow raises."""


class ConfigurationError(PenguiflowError, ValueError):
    """An invalid argument to a layer or helper, raised at construction; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class MissingExtraError(PenguiflowError, ImportError):
    """A feature needs an optional dependency that is not installed; ``extra`` names the extra that brings it.

    The message is the one line a user needs: what is missing and ``pip install 'penguiflow[extra]'``.
    """

    def __init__(self, feature: str, extra: str, missing: str | None = None) -> None:
        detail = f" (no module named {missing!r})" if missing else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra{detail}: pip install 'penguiflow[{extra}]' "
            "(from a clone: pip install -e '.[" + extra + "]')",
            name=missing,
        )
        self.feature = feature
        self.extra = extra


class LimiterRejectedError(PenguiflowError):
    """A :class:`~penguiflow.middleware.ConcurrencyLimit` queue was full (``max_queue``): rejected at once."""

    retryable = False

    def __init__(self, limiter: str, max_queue: int) -> None:
        super().__init__(f"limiter {limiter!r} rejected the call: queue is full ({max_queue} waiting)")
        self.limiter = limiter
        self.max_queue = max_queue


class LimiterLoopError(PenguiflowError, RuntimeError):
    """A :class:`~penguiflow.middleware.ConcurrencyLimit` was used from an event loop other than the one whose
    calls hold or wait for its slots (``closed``: that loop is closed, so those calls can never give them back).

    Without this check the calls of the new loop would queue forever behind slots nobody can release. Build
    limiters (and the ``ToolNode``/``ReactPlanner`` owning them) in the loop that uses them, or let every call
    end before that loop closes; an idle limiter moves to a new loop by itself."""

    def __init__(self, limiter: str, *, closed: bool, held: int, waiting: int) -> None:
        where = "a closed event loop" if closed else "another event loop that is still running"
        super().__init__(
            f"limiter {limiter!r} is in use by {where} ({held} slot(s) held, {waiting} call(s) waiting there); "
            "a limiter serves one event loop at a time"
        )
        self.limiter = limiter
        self.closed = closed
        self.held = held
        self.waiting = waiting


# --- tool call failures -------------------------------------------------------------------------------------


class ToolError(PenguiflowError):
    """A tool call failed. ``tool`` is the catalog name (``github.create_issue``)."""

    retryable = False

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class ToolTimeoutError(ToolError, TimeoutError):
    """One attempt of a tool call ran longer than its :class:`~penguiflow.middleware.Timeout`."""

    retryable = True

    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(f"{tool}: attempt timed out after {seconds:g}s", tool=tool)
        self.seconds = seconds


class DeadlineExceededError(ToolError, TimeoutError):
    """The overall deadline of a retried call (``RetryPolicy.deadline_s``) ran out: no further attempt."""

    def __init__(self, tool: str, seconds: float, attempts: int) -> None:
        super().__init__(f"{tool}: deadline of {seconds:g}s exceeded after {attempts} attempt(s)", tool=tool)
        self.seconds = seconds
        self.attempts = attempts


class ToolConnectionError(ToolError, ConnectionError):
    """The tool source could not be reached, or the connection broke while a call was in flight.

    ``request_sent`` is ``False`` only when the request certainly never left (connection refused, name not
    resolved, connect timed out): re-sending it then cannot run it twice, even when it is not idempotent.
    """

    retryable = True

    def __init__(self, message: str, *, tool: str | None = None, request_sent: bool = True) -> None:
        super().__init__(message, tool=tool)
        self.request_sent = request_sent


class ToolStatusError(ToolError):
    """The source answered with an error status (HTTP status, or the nearest equivalent)."""

    def __init__(
        self, message: str, *, status_code: int, tool: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, tool=tool)
        self.status_code = status_code
        self.retry_after = retry_after


class ToolRateLimitedError(ToolStatusError):
    """The source said "too many requests" (429); ``retry_after`` holds its ``Retry-After`` in seconds."""


class ToolServerError(ToolStatusError):
    """The source failed (5xx)."""


class ToolClientError(ToolStatusError):
    """The source refused the request (4xx other than 429): retrying the same request will not help."""


class ToolRedirectError(ToolStatusError):
    """The source redirected a request that is not followed (a POST, PUT, PATCH or DELETE, or more than 5
    redirects in a row): ``status_code`` and ``location`` (the ``Location`` it gave) say where it wanted to go."""

    retryable = False

    def __init__(
        self, message: str, *, status_code: int, location: str | None, tool: str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code, tool=tool)
        self.location = location


class ToolResponseTooLargeError(ToolError):
    """A response (a result, an error body, an OpenAPI document) was longer than the source's
    ``max_response_bytes``, counted decoded; the rest was never read and the connection was dropped. Not retried:
    the same request would get the same answer."""

    retryable = False

    def __init__(self, message: str, *, limit: int, tool: str | None = None) -> None:
        super().__init__(message, tool=tool)
        self.limit = limit


class ToolAuthenticationError(ToolClientError):
    """The source refused the credentials (401) or what they allow (403). Not retried: the same credentials
    get the same answer. The message says how to authenticate (which ``auth_type``/``auth_config`` or OAuth
    setting to give); ``status_code`` is the status."""

    retryable = False


class ToolValidationError(ToolError):
    """The arguments do not match the tool's schema; raised before any network call."""


class ToolNotFoundError(ToolError):
    """No tool of that name in the catalog or on the source."""


class ToolExecutionError(ToolError):
    """The tool ran and reported a failure of its own (an MCP result with ``isError``, a native tool's
    exception)."""
