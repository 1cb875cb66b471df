"""Logging set-up: one line per event, tagged with the request it belongs to, and never
a secret. Secrets are scrubbed from every record as a last line of defence; code should
not log them in the first place.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
REDACTED = "[redacted]"


class ContextFilter(logging.Filter):
    """Adds the current request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class SecretFilter(logging.Filter):
    """Replaces any configured secret value in a record's text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real tokens are long. A secret may also
        # show up quoted by repr() (escapes) or trimmed, so those forms are redacted too.
        forms = {form for s in secrets for form in (s, s.strip(), repr(s)[1:-1])}
        self._secrets = sorted({f for f in forms if len(f) >= 6}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        scrubbed = self._scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr, one line per event, scrubbed of `secrets`."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party clients log request details at DEBUG; keep them at INFO at most.
    for noisy in ("httpx", "httpcore", "slack_sdk", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.INFO))
