"""What a failure *means*: one classification that ``Retry`` and the stack's outcome metrics share.

A layer never asks which transport or client library raised an exception; it asks :func:`classify`, which
answers with a :class:`Failure`: a status (``status_code``, ``retry_after``), a timeout, a connection failure
(``request_sent`` says whether the request may have reached the server) or any other error. Penguiflow's own
errors and any exception with the duck-typed attributes of :mod:`penguiflow.errors` (``status_code``,
``retry_after``, ``retryable``, ``request_sent``) are understood directly, as are the built-in
:class:`TimeoutError` and :class:`ConnectionError`.

Exceptions of other libraries (an ``httpx.ConnectError``, an ``openai.RateLimitError``) are classified by the
classifier registered for their top-level module name with :func:`register_classifier`, asked first; when it
answers ``None`` the rules above decide. The lookup reads ``type(exc).__module__``: nothing is imported until
such an exception is actually seen. Classifiers for httpx, aiohttp, requests and the OpenAI and Anthropic SDKs
are registered by default (:mod:`penguiflow.middleware.client_errors`).

Why a request's fate matters: a call that may not be idempotent (``Call.idempotent is False``) must not run
twice on the server, so ``Retry`` re-sends it only after a failure that proves the server did not process it —
a connection that never carried the request, or a status in :data:`NOT_PROCESSED_STATUSES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "NOT_PROCESSED_STATUSES",
    "Classifier",
    "Failure",
    "FailureKind",
    "classify",
    "register_classifier",
    "unregister_classifier",
]

FailureKind = Literal["status", "timeout", "connection", "error"]

NOT_PROCESSED_STATUSES: Final = frozenset({408, 425, 429, 503})
"""Statuses by which a server says it did not process the request (RFC 9110: 408 Request Timeout, 425 Too
Early, 429 Too Many Requests, 503 Service Unavailable): re-sending is safe even for a non-idempotent call.
A 500, 502 or 504 proves nothing of the kind — the work may have been done before the failure."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt means for retrying it.

    ``kind``: ``"status"`` (the source answered with ``status_code``), ``"timeout"``, ``"connection"`` or
    ``"error"``. ``retry_after``: seconds the source asked us to wait, if it said. ``request_sent``: ``False``
    only when the request certainly never left (connection refused, name not resolved, connect timed out).
    ``retryable``: an explicit verdict of the error itself (``retryable = True``/``False``), ``None`` if it
    gave none.
    """

    kind: FailureKind
    status_code: int | None = None
    retry_after: float | None = None
    request_sent: bool = True
    retryable: bool | None = None

    @property
    def not_processed(self) -> bool:
        """The source certainly did not act on the request: re-sending cannot run it twice."""
        if self.kind == "status":
            return self.status_code in NOT_PROCESSED_STATUSES
        return not self.request_sent


Classifier = Callable[[BaseException], Failure | None]
"""Classifies an exception of one library; ``None`` lets the default rules decide."""

_log = logging.getLogger("penguiflow.middleware.failures")
_classifiers: dict[str, Classifier] = {}
_OTHER: Final = Failure("error")


def register_classifier(module: str, classifier: Classifier) -> None:
    """Use ``classifier`` for exceptions whose class is defined in top-level module ``module`` (``"httpx"``).

    It is asked before the built-in rules (a library knows where its exceptions keep their status and
    ``Retry-After``); returning ``None`` leaves the decision to them. Registering a module again replaces its
    classifier, the defaults of :mod:`penguiflow.middleware.client_errors` included.
    """
    if not module or "." in module:
        raise ValueError(f"module must be a top-level module name such as 'httpx', got {module!r}")
    _classifiers[module] = classifier


def unregister_classifier(module: str) -> None:
    """Forget the classifier of ``module`` (no error if there is none)."""
    _classifiers.pop(module, None)


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


def _verdict(exc: BaseException) -> bool | None:
    value = getattr(exc, "retryable", None)
    return value if isinstance(value, bool) else None


def _ask(classifier: Classifier, exc: BaseException) -> Failure | None:
    try:
        return classifier(exc)
    except Exception as error:  # a broken classifier must not replace the error it was asked about
        _log.warning(
            "the classifier registered for %s raised %s on %s; treating it as unclassified",
            type(exc).__module__,
            type(error).__qualname__,
            type(exc).__qualname__,
        )
        return None


def classify(exc: BaseException) -> Failure:
    """The :class:`Failure` that ``exc`` stands for. Cancellation and other ``BaseException``\\ s are
    ``"error"`` with ``retryable=False``: they are never retried."""
    if not isinstance(exc, Exception):
        return Failure("error", retryable=False)
    # The library's own classifier first: it knows where its exceptions keep what matters (an SDK's
    # ``APIStatusError`` has ``status_code``, but its ``Retry-After`` is in the response headers).
    classifier = _classifiers.get(type(exc).__module__.partition(".")[0])
    if classifier is not None:
        failure = _ask(classifier, exc)
        if failure is not None:
            return failure
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return Failure("status", status_code=status, retry_after=_retry_after(exc), retryable=_verdict(exc))
    if isinstance(exc, TimeoutError):
        return Failure("timeout", retry_after=_retry_after(exc), retryable=_verdict(exc))
    if isinstance(exc, ConnectionError):
        sent = getattr(exc, "request_sent", True) is not False
        return Failure(
            "connection", retry_after=_retry_after(exc), request_sent=sent, retryable=_verdict(exc)
        )
    verdict, retry_after = _verdict(exc), _retry_after(exc)
    if verdict is None and retry_after is None:
        return _OTHER
    return Failure("error", retry_after=retry_after, retryable=verdict)
