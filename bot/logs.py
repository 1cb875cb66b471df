"""Logging set-up: one line per event, tagged with the request it belongs to, and never
a secret. Secrets are scrubbed from every record as a last line of defence; code should
not log them in the first place.

Lines are human-readable by default; `LOG_FORMAT=json` writes one JSON object per line
instead, for log collectors. Both formats see the same scrubbed records.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
REDACTED = "[redacted]"


class ContextFilter(logging.Filter):
    """Adds the current request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


# Shorter values would redact ordinary words; real tokens and passwords are long.
MIN_SECRET_LENGTH = 6


@functools.lru_cache(maxsize=16)
def _redactable(secrets: tuple[str, ...]) -> tuple[str, ...]:
    # A secret may also show up quoted by repr() (escapes) or trimmed, so those forms are
    # redacted too; longest first, so that no secret is left half-redacted by its prefix.
    forms = {form for s in secrets for form in (s, s.strip(), repr(s)[1:-1])}
    return tuple(sorted({f for f in forms if len(f) >= MIN_SECRET_LENGTH}, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value (of at least `MIN_SECRET_LENGTH` characters, also as
    repr() or trimmed shows it) replaced by `[redacted]`.
    """
    for secret in _redactable(tuple(secrets)):
        text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Replaces any configured secret value in a record's text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not _redactable(self._secrets):
            return True
        message = record.getMessage()
        scrubbed = scrub(message, self._secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self._secrets)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, logger,
    request_id, message, and `exception` / `stack` when the record has them.

    It formats what the handler's filters left (see `configure`), so secrets are already
    scrubbed. Non-ASCII is escaped, so no character can split a record over two lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": str(getattr(record, "request_id", "-")),
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry)


def configure(level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text") -> None:
    """Send logs to stderr, one line per event (`text` or `json`), scrubbed of `secrets`."""
    if log_format not in ("text", "json"):
        raise ValueError(f"unknown log format {log_format!r}; expected text or json")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries log every request and scheduled job; the bot logs what matters
    # (each command and poll) itself, and their warnings still come through.
    for noisy in ("httpx", "httpcore", "slack_sdk", "aiohttp.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def new_reference() -> str:
    """A short random id for a request, or for an error outside any request."""
    return uuid.uuid4().hex[:10]


def current_reference() -> str:
    """The id that ties a message shown to a user to the log lines with the details:
    the current request's id, which every log line of that request carries.
    """
    current = request_id.get()
    return current if current != "-" else new_reference()
