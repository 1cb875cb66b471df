"""bot/logs.py: secrets never reach the log output, and every line names its request."""

from __future__ import annotations

import logging
import sys

import pytest

from bot.logs import (
    NOISY_LOGGERS,
    REDACTED,
    ContextFilter,
    SecretFilter,
    configure,
    flush,
    request_id,
    scrub,
    shut_down,
)

SECRET = "xoxb-1111-SECRET-token-abcdef"
OTHER = "cde-api-SECRET-99"


def written(capsys: pytest.CaptureFixture[str]) -> pytest.CaptureResult[str]:
    """What was written, once the log's writer thread has written all it was handed."""
    flush()
    return capsys.readouterr()




def record(msg: object, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args or None, exc_info)  # type: ignore[arg-type]


def formatted(rec: logging.LogRecord) -> str:
    return logging.Formatter("%(message)s").format(rec)


# ----------------------------------------------------------------------------- SecretFilter


def test_a_secret_in_the_message_is_redacted() -> None:
    rec = record(f"calling with token {SECRET} now")
    assert SecretFilter([SECRET]).filter(rec) is True
    assert rec.getMessage() == f"calling with token {REDACTED} now"


def test_a_secret_in_the_arguments_is_redacted() -> None:
    rec = record("headers=%r other=%s", {"Authorization": f"Bearer {SECRET}"}, OTHER)
    SecretFilter([SECRET, OTHER]).filter(rec)
    message = rec.getMessage()
    assert SECRET not in message
    assert OTHER not in message
    assert message.count(REDACTED) == 2
    assert "Bearer" in message


def test_a_secret_in_mapping_arguments_is_redacted() -> None:
    rec = logging.LogRecord("test", logging.INFO, __file__, 1, "token=%(token)s", ({"token": SECRET},), None)
    SecretFilter([SECRET]).filter(rec)
    assert rec.getMessage() == f"token={REDACTED}"


def test_a_secret_in_an_exception_traceback_is_redacted() -> None:
    try:
        raise RuntimeError(f"the API rejected {SECRET}")
    except RuntimeError:
        rec = record("lookup failed", exc_info=sys.exc_info())
    SecretFilter([SECRET]).filter(rec)
    output = formatted(rec)
    assert "Traceback" in output
    assert "RuntimeError: the API rejected " + REDACTED in output
    assert SECRET not in output


def test_a_secret_in_a_chained_exception_is_redacted() -> None:
    try:
        try:
            raise ValueError(f"inner {SECRET}")
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError:
        rec = record("failed", exc_info=sys.exc_info())
    SecretFilter([SECRET]).filter(rec)
    output = formatted(rec)
    assert "ValueError: inner " + REDACTED in output
    assert SECRET not in output


def test_an_exception_object_as_the_message_is_redacted() -> None:
    rec = record(RuntimeError(f"boom {SECRET}"))
    SecretFilter([SECRET]).filter(rec)
    assert rec.getMessage() == f"boom {REDACTED}"


def test_longer_secrets_are_redacted_before_their_prefixes() -> None:
    rec = record(f"{SECRET} and {SECRET[:10]}")
    SecretFilter([SECRET[:10], SECRET]).filter(rec)
    assert rec.getMessage() == f"{REDACTED} and {REDACTED}"


def test_short_values_are_not_treated_as_secrets() -> None:
    rec = record("the state is failed")
    SecretFilter(["failed", "x", ""]).filter(rec)
    assert rec.getMessage() == f"the state is {REDACTED}"  # six characters count
    rec = record("run a b c")
    SecretFilter(["a", "run", "abcde"]).filter(rec)
    assert rec.getMessage() == "run a b c"


def test_without_secrets_the_record_is_untouched() -> None:
    rec = record("value %s", 42)
    SecretFilter([]).filter(rec)
    assert rec.msg == "value %s"
    assert rec.args == (42,)


def test_a_clean_record_keeps_its_arguments_formatted() -> None:
    rec = record("value %s and %d", "x", 3)
    SecretFilter([SECRET]).filter(rec)
    assert rec.getMessage() == "value x and 3"


def test_context_filter_tags_the_request_id() -> None:
    token = request_id.set("req-123")
    try:
        rec = record("x")
        assert ContextFilter().filter(rec) is True
        assert rec.request_id == "req-123"  # type: ignore[attr-defined]
    finally:
        request_id.reset(token)
    rec = record("x")
    ContextFilter().filter(rec)
    assert rec.request_id == "-"  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------- configure


def test_configure_scrubs_and_tags_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", secrets=[SECRET, OTHER])
    log = logging.getLogger("bot.test")
    token = request_id.set("req-42")
    try:
        log.info("message %s", SECRET)
        log.warning(f"inline {OTHER}")
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            log.exception("lookup failed")
    finally:
        request_id.reset(token)
    log.info("outside any request")
    err = written(capsys).err
    assert SECRET not in err
    assert OTHER not in err
    lines = err.splitlines()
    assert lines[0].endswith(f"INFO    bot.test [req-42] message {REDACTED}")
    assert lines[1].endswith(f"WARNING bot.test [req-42] inline {REDACTED}")
    assert f"RuntimeError: failed with {REDACTED}" in err
    assert "[req-42] lookup failed" in err
    assert lines[-1].endswith("bot.test [-] outside any request")


def test_configure_sets_the_level_and_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure("WARNING")
    root = logging.getLogger()
    assert root.level == logging.WARNING
    assert len(root.handlers) == 1
    logging.getLogger("bot.test").info("hidden")
    logging.getLogger("bot.test").warning("shown")
    err = written(capsys).err
    assert "hidden" not in err
    assert "shown" in err


def test_configure_keeps_noisy_libraries_at_warning_at_most(capsys: pytest.CaptureFixture[str]) -> None:
    configure("DEBUG", secrets=[SECRET])
    assert logging.getLogger().level == logging.DEBUG
    for name in NOISY_LOGGERS:
        assert logging.getLogger(name).level == logging.WARNING
    logging.getLogger("httpx").info(f"HTTP Request: GET https://cde.productsup.com/runs token={SECRET}")
    logging.getLogger("httpx").warning(f"retrying with token={SECRET}")
    err = written(capsys).err
    assert "HTTP Request" not in err
    assert f"token={REDACTED}" in err
    assert SECRET not in err


def test_configure_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO")
    configure("INFO")
    logging.getLogger("bot.test").info("once")
    assert written(capsys).err.count("once") == 1


def test_a_secret_quoted_by_repr_is_redacted() -> None:
    # An exception's repr shows control characters escaped: "tok\\n" rather than "tok\n".
    secret_with_newline = SECRET + "\n"
    rec = record("cause: %r", ValueError(f"Illegal header value b'Bearer {secret_with_newline}'"))
    SecretFilter([secret_with_newline]).filter(rec)
    assert SECRET not in formatted(rec)


# ----------------------------------------------------------------------------------- scrub


def test_scrub_redacts_each_secret_also_as_repr_shows_it() -> None:
    quoted = "tab\there-secret"
    text = f"a {SECRET}, b {OTHER}, c {quoted!r}"
    assert scrub(text, [SECRET, OTHER, quoted]) == f"a {REDACTED}, b {REDACTED}, c '{REDACTED}'"


def test_scrub_leaves_short_values_and_text_without_secrets_alone() -> None:
    assert scrub("the state is ok", ["ok", ""]) == "the state is ok"
    assert scrub("nothing here", []) == "nothing here"


def test_records_after_the_writer_stopped_are_still_written_and_scrubbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("INFO", secrets=[SECRET])
    shut_down()
    logging.getLogger("bot.test").warning("late %s", SECRET)
    err = capsys.readouterr().err
    assert f"late {REDACTED}" in err and SECRET not in err
