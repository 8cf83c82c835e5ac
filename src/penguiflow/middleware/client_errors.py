"""What the errors of common client libraries mean, registered with :func:`~penguiflow.middleware.failures.register_classifier`.

A tool written on httpx, aiohttp, requests or the OpenAI / Anthropic SDKs raises that library's own exceptions:
an ``httpx.HTTPStatusError`` carries its status in ``.response``, an ``httpx.ConnectError`` is no
``ConnectionError``, an ``openai.RateLimitError`` keeps its ``Retry-After`` in the response headers. The
classifiers here map them onto the one vocabulary of :class:`~penguiflow.middleware.failures.Failure`, so
``Retry`` and the outcome metrics treat ``wrap(fetch_page, Retry(...))`` like any penguiflow transport.

Nothing is imported: a classifier is only ever called with an exception of its library, so the library is
already in ``sys.modules`` and the classes are read from there. :func:`install` runs when
``penguiflow.middleware`` is imported; ``register_classifier`` replaces any of them, or adds a library.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from penguiflow.middleware.failures import Failure, register_classifier
from penguiflow.middleware.retry import parse_retry_after

__all__ = ["install", "status_failure"]

_CONNECT_FAILED = Failure("connection", request_sent=False)
_CONNECTION_LOST = Failure("connection")
_TIMED_OUT = Failure("timeout")


def status_failure(status: int, headers: Mapping[str, str] | None) -> Failure:
    """A ``"status"`` failure with the server's wait: ``retry-after-ms`` (OpenAI, Anthropic) or ``Retry-After``
    (delay-seconds or an HTTP date)."""
    retry_after: float | None = None
    if headers is not None:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            retry_after = _milliseconds(millis)
        if retry_after is None:
            retry_after = parse_retry_after(headers.get("retry-after"))
    return Failure("status", status_code=status, retry_after=retry_after)


def _milliseconds(value: str) -> float | None:
    try:
        millis = float(value)
    except ValueError:
        return None
    return millis / 1000 if 0 <= millis < float("inf") else None


def _classes(exc: BaseException, *names: str) -> tuple[type[BaseException], ...]:
    """The classes ``names`` of the library (top-level module) that raised ``exc``; those it lacks are left out,
    so one classifier serves httpx and its successor httpx2, and any version of a library."""
    library = sys.modules.get(type(exc).__module__.partition(".")[0])
    found = (getattr(library, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type) and issubclass(cls, BaseException))


def classify_httpx(exc: BaseException) -> Failure | None:
    """httpx and httpx2. ``ConnectError``/``ConnectTimeout``: the request never left (as in our HTTP
    transport). ``PoolTimeout``: it never got a connection. A request the client itself finds malformed
    (``UnsupportedProtocol``, ``LocalProtocolError``) would fail the same way again: left unclassified."""
    if isinstance(exc, _classes(exc, "HTTPStatusError")):
        response: Any = getattr(exc, "response", None)
        if response is not None:
            return status_failure(response.status_code, response.headers)
        return None
    if isinstance(exc, _classes(exc, "ConnectError", "ConnectTimeout")):
        return _CONNECT_FAILED
    if isinstance(exc, _classes(exc, "PoolTimeout")):
        return Failure("timeout", request_sent=False)
    if isinstance(exc, _classes(exc, "TimeoutException")):
        return _TIMED_OUT
    if isinstance(exc, _classes(exc, "UnsupportedProtocol", "LocalProtocolError")):
        return None
    if isinstance(exc, _classes(exc, "TransportError")):  # ReadError, WriteError, RemoteProtocolError, …
        return _CONNECTION_LOST
    return None


def classify_aiohttp(exc: BaseException) -> Failure | None:
    """aiohttp. ``ClientResponseError`` (``raise_for_status``) has ``status`` and ``headers``; a connector
    error means no connection; certificate and SSL failures are not worth another attempt."""
    if isinstance(exc, _classes(exc, "ClientResponseError")):
        status = getattr(exc, "status", None)
        if isinstance(status, int) and status >= 100:
            return status_failure(status, getattr(exc, "headers", None))
        return None
    if isinstance(exc, _classes(exc, "ConnectionTimeoutError")):
        return Failure("timeout", request_sent=False)
    if isinstance(exc, _classes(exc, "ServerTimeoutError")):
        return _TIMED_OUT
    if isinstance(exc, _classes(exc, "ClientSSLError", "ServerFingerprintMismatch")):
        return None
    if isinstance(exc, _classes(exc, "ClientConnectorError")):
        return _CONNECT_FAILED
    if isinstance(exc, _classes(exc, "ClientConnectionError", "ClientPayloadError")):
        return _CONNECTION_LOST
    return None


# urllib3's reasons (inside requests' ConnectionError) that mean no connection was made.
_NOT_CONNECTED = frozenset({"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"})


def _never_connected(exc: BaseException) -> bool:
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return any(cls.__name__ in _NOT_CONNECTED for cls in type(reason).__mro__)


def classify_requests(exc: BaseException) -> Failure | None:
    """requests. ``HTTPError`` (``raise_for_status``) has the response; a ``ConnectionError`` whose urllib3
    reason is a failed connection (refused, unresolved, connect timeout) never sent the request."""
    if isinstance(exc, _classes(exc, "HTTPError")):
        response: Any = getattr(exc, "response", None)
        if response is not None and isinstance(getattr(response, "status_code", None), int):
            return status_failure(response.status_code, response.headers)
        return None
    if isinstance(exc, _classes(exc, "ConnectTimeout")):
        return _CONNECT_FAILED
    if isinstance(exc, _classes(exc, "Timeout")):
        return _TIMED_OUT
    if isinstance(exc, _classes(exc, "SSLError")):
        return None
    if isinstance(exc, _classes(exc, "ConnectionError")):
        return _CONNECT_FAILED if _never_connected(exc) else _CONNECTION_LOST
    if isinstance(exc, _classes(exc, "ChunkedEncodingError")):
        return _CONNECTION_LOST
    return None


def _sent(exc: BaseException) -> bool:
    """Whether the HTTP client error under an SDK error (``__cause__``) leaves the request possibly sent."""
    cause = exc.__cause__ or exc.__context__
    if cause is None or type(cause).__module__.partition(".")[0] not in ("httpx", "httpx2"):
        return True
    failure = classify_httpx(cause)
    return failure is None or failure.request_sent


def classify_llm_sdk(exc: BaseException) -> Failure | None:
    """The OpenAI and Anthropic SDKs (the same generated client). ``APIStatusError`` has ``status_code``, but
    its ``Retry-After`` is in the response headers (``retry-after-ms`` first); ``APITimeoutError`` and
    ``APIConnectionError`` wrap the httpx error that says whether the request left. Their own retries
    (``max_retries``, 2 by default) run inside each penguiflow attempt: set ``max_retries=0`` to leave retrying
    to ``Retry``."""
    if isinstance(exc, _classes(exc, "APIStatusError")):
        response: Any = getattr(exc, "response", None)
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return status_failure(status, getattr(response, "headers", None))
        return None
    if isinstance(exc, _classes(exc, "APITimeoutError")):
        return Failure("timeout", request_sent=_sent(exc))
    if isinstance(exc, _classes(exc, "APIConnectionError")):
        return Failure("connection", request_sent=_sent(exc))
    return None


DEFAULT_CLASSIFIERS = {
    "httpx": classify_httpx,
    "httpx2": classify_httpx,
    "aiohttp": classify_aiohttp,
    "requests": classify_requests,
    "openai": classify_llm_sdk,
    "anthropic": classify_llm_sdk,
}


def install() -> None:
    """Register the classifiers above (again: a user's own registration for one of these is replaced)."""
    for module, classifier in DEFAULT_CLASSIFIERS.items():
        register_classifier(module, classifier)
