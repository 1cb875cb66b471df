"""LOG_FORMAT=json: one valid JSON object per line, with the request id, and never a secret."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import REDACTED, ContextFilter, JsonFormatter, SecretFilter, configure, flush, request_id

SECRET = "xoxb-2222-SECRET-token-json"
OTHER = "cde-api-SECRET-json-77"


def written(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureResult[str]:
    """What was written, once the log's writer thread has written all it was handed."""
    flush()
    return capsys.readouterr()




def lines_of(err: str) -> list[dict[str, Any]]:
    """Each line parsed; fails on any line that is not one JSON object."""
    parsed = []
    for line in err.split("\n")[:-1]:
        entry = json.loads(line)
        assert isinstance(entry, dict)
        parsed.append(entry)
    assert err.endswith("\n")
    return parsed


def test_a_record_is_one_json_object_with_every_field() -> None:
    record = logging.LogRecord("bot.poll", logging.WARNING, __file__, 1, "poll %s: %d failed", ("p1", 3),
                               None)
    record.request_id = "poll-abc123"
    text = JsonFormatter().format(record)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry == {
        "time": entry["time"], "level": "WARNING", "logger": "bot.poll",
        "request_id": "poll-abc123", "message": "poll p1: 3 failed",
    }
    when = datetime.fromisoformat(entry["time"])
    assert entry["time"].endswith("Z") and when.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_a_record_without_the_context_filter_still_formats() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None)
    assert json.loads(JsonFormatter().format(record))["request_id"] == "-"


def test_multi_line_and_non_ascii_text_stays_on_one_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb\r\nc\u2028d \u00e9 \"q\"", None, None)
    text = JsonFormatter().format(record)
    assert len(text.splitlines()) == 1 and text.isascii()
    assert json.loads(text)["message"] == "a\nb\r\nc\u2028d \u00e9 \"q\""


def test_configure_json_scrubs_and_tags_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", secrets=[SECRET, OTHER], log_format="json")
    log = logging.getLogger("bot.test")
    token = request_id.set("req-7")
    try:
        log.info("message %s", SECRET)
        log.warning(f"inline {OTHER}")
        try:
            raise RuntimeError(f"failed with {SECRET}\nand {OTHER}")
        except RuntimeError:
            log.exception("lookup failed")
        log.info("with stack", stack_info=True)
    finally:
        request_id.reset(token)
    log.info("outside any request")
    err = written(capsys).err
    assert SECRET not in err and OTHER not in err
    entries = lines_of(err)
    assert len(entries) == 5
    assert entries[0]["message"] == f"message {REDACTED}"
    assert entries[1]["message"] == f"inline {REDACTED}" and entries[1]["level"] == "WARNING"
    failure = entries[2]
    assert failure["message"] == "lookup failed" and failure["level"] == "ERROR"
    assert failure["exception"].startswith("Traceback")
    assert f"RuntimeError: failed with {REDACTED}\nand {REDACTED}" in failure["exception"]
    assert "stack" in entries[3]
    assert [e["request_id"] for e in entries] == ["req-7"] * 4 + ["-"]
    assert {e["logger"] for e in entries} == {"bot.test"}


def test_a_secret_in_an_exception_is_redacted_when_formatted_after_the_filter() -> None:
    try:
        raise ValueError(f"Bearer {SECRET}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    ContextFilter().filter(record)
    SecretFilter([SECRET]).filter(record)
    text = JsonFormatter().format(record)
    assert SECRET not in text
    assert f"ValueError: Bearer {REDACTED}" in json.loads(text)["exception"]


def test_text_stays_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO")
    logging.getLogger("bot.test").info("plain line")
    err = written(capsys).err
    assert err.rstrip().endswith("INFO    bot.test [-] plain line")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure("INFO", log_format="xml")


REQUIRED = {"SLACK_BOT_TOKEN": "xoxb-1-2", "SLACK_SIGNING_SECRET": "s3cret-signing", "CDE_API_TOKEN": "t0ken"}


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, secret in REQUIRED.items():
        monkeypatch.setenv(name, secret)
    assert load_settings().log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT") as raised:
        load_settings()
    assert "json" in str(raised.value)


def test_a_structured_events_fields_are_fields_of_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", [SECRET], "json")
    logging.getLogger("bot.notices.audit").info(
        "audit: mute", extra={"event": "audit", "user": "U0001", "channel": "C0001", "action": "mute",
                              "target": "connector c on site 1001"})
    [entry] = lines_of(written(capsys).err)
    assert {key: entry[key] for key in ("event", "user", "channel", "action", "target")} == {
        "event": "audit", "user": "U0001", "channel": "C0001", "action": "mute",
        "target": "connector c on site 1001"}
