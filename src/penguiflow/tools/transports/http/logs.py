"""httpx's own INFO lines (``HTTP Request: GET <url> "HTTP/1.1 200 OK"``) quote the whole URL, query string
included: an API key the document places in the query would be logged by every request. While a transport is
connected, its secrets are masked in the records of the ``httpx`` logger (a filter on that logger only; the
URL's userinfo never gets there, it is sent as httpx ``auth``)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

from penguiflow.tools.config import REDACTED

__all__ = ["unwatch", "watch"]

_lock = threading.Lock()
_secrets: Counter[str] = Counter()


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        with _lock:
            secrets = [secret for secret, count in _secrets.items() if count > 0]
        if not secrets:
            return True
        text = record.getMessage()
        masked = text
        for secret in sorted(secrets, key=len, reverse=True):
            masked = masked.replace(secret, REDACTED)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_filter = _Redact()


def watch(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in httpx's records until :func:`unwatch` (counted: several transports may share one)."""
    secrets = [secret for secret in secrets if secret]
    if not secrets:
        return
    with _lock:
        _secrets.update(secrets)
        logger = logging.getLogger("httpx")
        if _filter not in logger.filters:
            logger.addFilter(_filter)


def unwatch(secrets: Iterable[str]) -> None:
    with _lock:
        _secrets.subtract(secret for secret in secrets if secret)
        for secret in [s for s, n in _secrets.items() if n <= 0]:
            del _secrets[secret]
