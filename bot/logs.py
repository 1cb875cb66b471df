"""Logging set-up: one line per event, tagged with the request it belongs to, and never
a secret. Secrets are scrubbed from every record as a last line of defence; code should
not log them in the first place.

The filter sits on the root handler, so every record of every logger (slack_sdk's and
Bolt's request dumps at DEBUG included) is redacted before it is written.

Records are written by a thread of their own (`QueueListener`): a write to stderr that
blocks (a busy disk, a slow log collector at the other end of a pipe) must not stall the
event loop that acks Slack within 3 seconds. Filters run where the record is made, so a
record is tagged with its request and scrubbed before any handler sees it.

Lines are human-readable by default; `LOG_FORMAT=json` writes one JSON object per line
instead, for log collectors. Both formats see the same scrubbed records.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import json
import logging
import logging.handlers
import queue
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from bot.redact import REDACTED as REDACTED
from bot.redact import mask_hooks, redactor

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
# Third-party libraries that log every request and scheduled job: `configure` keeps them at
# WARNING at most.
NOISY_LOGGERS = ("httpx", "httpcore", "slack_sdk", "aiohttp.access", "apscheduler")


class ContextFilter(logging.Filter):
    """Adds the current request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced by `[redacted]`, in each form and by the
    length rules of `bot.redact`.
    """
    return redactor(tuple(secrets)).text(text)


class SecretFilter(logging.Filter):
    """Redacts a record as its handler will write it: the message with its arguments, the
    exception's text and the stack. Every configured secret becomes `[redacted]` (see
    `bot.redact`), and so does any Slack `response_url` (which lets anyone post in the
    channel), even in the request and response dumps slack_sdk and Bolt log at DEBUG.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redactor = redactor(tuple(secrets))

    def _clean(self, text: str) -> str:
        return mask_hooks(self._redactor.text(text))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._clean(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


# The fields of a structured event, given as `extra=` (e.g. the audit trail's changes):
# the JSON format carries each as a field of its own.
EVENT_FIELDS = ("event", "user", "channel", "action", "target")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, logger,
    request_id, message, the `EVENT_FIELDS` a record was given, and `exception` / `stack`
    when the record has them.

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
        entry.update({name: str(getattr(record, name)) for name in EVENT_FIELDS if hasattr(record, name)})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry)


class Handoff(logging.handlers.QueueHandler):
    """Hands each record to the writer thread once its filters have run, with its message
    and exception already text (the arguments may change, and the traceback holds frames,
    once the caller goes on). Formatting is left to the writer.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        ready = copy.copy(record)
        ready.msg, ready.args = record.getMessage(), None
        if record.exc_info and not record.exc_text:
            ready.exc_text = logging.Formatter().formatException(record.exc_info)
        ready.exc_info = None
        return ready


_writer: logging.handlers.QueueListener | None = None


def configure(level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text",
              stream: TextIO | None = None) -> None:
    """Send logs to stderr (or `stream`), one line per event (`text` or `json`), scrubbed
    of `secrets`, written by a thread of their own (stopped, with every record written, at exit).
    """
    global _writer
    if log_format not in ("text", "json"):
        raise ValueError(f"unknown log format {log_format!r}; expected text or json")
    writes = logging.StreamHandler(stream)
    writes.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = Handoff(records)
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretFilter(secrets))
    if _writer is not None:
        _writer.stop()
    _writer = logging.handlers.QueueListener(records, writes)
    _writer.start()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries log every request and scheduled job; the bot logs what matters
    # (each command and poll) itself, and their warnings still come through.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def redact_handlers(secrets: Iterable[str]) -> None:
    """Redact `secrets` on every handler the root logger has now, for a front end that set
    up logging before its settings were known (the console).
    """
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(secrets))


def new_reference() -> str:
    """A short random id for a request, or for an error outside any request."""
    return uuid.uuid4().hex[:10]


def current_reference() -> str:
    """The id that ties a message shown to a user to the log lines with the details:
    the current request's id, which every log line of that request carries.
    """
    current = request_id.get()
    return current if current != "-" else new_reference()


def public_url(url: str) -> str:
    """`url` without user info, query or fragment, any of which may carry a credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        path = "" if parts.path == "/" else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    except ValueError:
        return "(unparseable URL)"


def flush() -> None:
    """Write every record handed off so far (the writer goes on afterwards)."""
    if _writer is not None:
        _writer.stop()  # waits until the queue is written out
        _writer.start()


def shut_down() -> None:
    """Write every record handed off so far and stop the writer: at exit. Records made
    after (the interpreter's own last words) are written directly, filtered as before.
    """
    global _writer
    if _writer is None:
        return
    _writer.stop()
    [direct] = _writer.handlers
    root = logging.getLogger()
    for index, handler in enumerate(root.handlers):
        if isinstance(handler, Handoff):
            for kept in handler.filters:
                direct.addFilter(kept)
            root.handlers[index] = direct
    _writer = None


atexit.register(shut_down)
