"""bot/mrkdwn.py: escaping, clipping, code spans, date tokens, durations and links."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.mrkdwn import ELLIPSIS, clip, code, date, duration, escape, link, plain_date, plural

ENTITY = re.compile(r"&(amp|lt|gt);")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ---------------------------------------------------------------------------------- escape


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<https://evil|innocent>", "&lt;https://evil|innocent&gt;"),
        ("a & b", "a &amp; b"),
        ("&amp;", "&amp;amp;"),  # already-escaped looking text is still outside text
        ("<@U123>", "&lt;@U123&gt;"),
        ("plain *bold* _it_ `code`", "plain *bold* _it_ `code`"),
        ("", ""),
    ],
)
def test_escape_replaces_exactly_the_three_control_characters(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_escape_accepts_non_strings() -> None:
    assert escape(1001) == "1001"
    assert escape(None) == "None"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_leaves_no_control_characters_and_is_reversible(text: str) -> None:
    escaped = escape(text)
    assert "<" not in escaped
    assert ">" not in escaped
    # Every & left is the start of one of the three entities.
    assert escaped.count("&") == len(ENTITY.findall(escaped))
    assert unescape(escaped) == text


# ------------------------------------------------------------------------------------ clip


def test_clip_keeps_short_text() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("", 5) == ""


def test_clip_cuts_to_the_limit_with_an_ellipsis() -> None:
    clipped = clip("abcdefghij", 5)
    assert clipped == "abcd" + ELLIPSIS
    assert len(clipped) == 5


@pytest.mark.parametrize("offset", range(0, 6))
def test_clip_never_cuts_inside_an_entity(offset: int) -> None:
    # The entity &amp; straddles the cut at every possible position.
    text = "x" * (20 - offset) + "&amp;" + "y" * 20
    clipped = clip(text, 21)
    assert len(clipped) <= 21
    body = clipped.removesuffix(ELLIPSIS)
    assert body.count("&") == len(ENTITY.findall(body)), clipped


def test_clip_keeps_a_complete_entity_at_the_end() -> None:
    assert clip("xx&amp;yyyy", 8) == "xx&amp;" + ELLIPSIS


def test_clip_does_not_drop_text_after_a_distant_raw_ampersand() -> None:
    # Raw (unescaped) text is clipped too, e.g. the plain-text header "Run failed: Tom & Jerry".
    text = "Run failed: Tom & Jerry " + "z" * 200
    clipped = clip(text, 150)
    assert len(clipped) == 150
    assert clipped.startswith("Run failed: Tom & Jerry zzz")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=200))
def test_clip_of_escaped_text_is_bounded_and_never_breaks_an_entity(text: str, limit: int) -> None:
    escaped = escape(text)
    clipped = clip(escaped, limit)
    assert len(clipped) <= limit
    if clipped != escaped:
        assert clipped.endswith(ELLIPSIS)
        body = clipped[: -len(ELLIPSIS)]
        assert escaped.startswith(body)
        assert body.count("&") == len(ENTITY.findall(body))
        # At most one entity's worth of text is given up to avoid a cut.
        assert len(body) >= limit - len("&amp;")


# ------------------------------------------------------------------------------------ code


def test_code_wraps_and_escapes() -> None:
    assert code("019e16f3") == "`019e16f3`"
    assert code("<!here> & co") == "`&lt;!here&gt; &amp; co`"


def test_code_replaces_backticks_so_the_span_cannot_be_ended_early() -> None:
    spanned = code("a`b``c")
    assert spanned.startswith("`")
    assert spanned.endswith("`")
    assert spanned.count("`") == 2
    assert "a" in spanned
    assert "c" in spanned


def test_code_accepts_numbers() -> None:
    assert code(42) == "`42`"


# ------------------------------------------------------------------------------------ date

TOKEN = re.compile(r"^<!date\^(-?\d+)\^\{date_short_pretty\} \{time\}\|([^<>|]+)>$")


def test_date_of_an_aware_datetime_is_a_slack_token_with_utc_fallback() -> None:
    moment = datetime(2025, 10, 29, 13, 9, 16, tzinfo=timezone(timedelta(hours=1)))
    token = date(moment)
    match = TOKEN.match(token)
    assert match, token
    assert int(match.group(1)) == int(moment.timestamp())
    assert match.group(2) == "2025-10-29 12:09 UTC"


def test_date_treats_a_naive_datetime_as_utc() -> None:
    naive = datetime(2025, 1, 4, 10, 0, 0)
    token = date(naive)
    match = TOKEN.match(token)
    assert match, token
    assert int(match.group(1)) == int(datetime(2025, 1, 4, 10, 0, tzinfo=UTC).timestamp())
    assert match.group(2) == "2025-01-04 10:00 UTC"


def test_date_of_none_is_the_missing_marker() -> None:
    assert date(None) == "—"
    assert date(None, missing="never") == "never"


def test_plain_date_is_utc_text() -> None:
    moment = datetime(2025, 10, 29, 13, 9, 16, tzinfo=timezone(timedelta(hours=1)))
    assert plain_date(moment) == "2025-10-29 12:09 UTC"
    assert plain_date(datetime(2025, 1, 4, 10, 0)) == "2025-01-04 10:00 UTC"
    assert plain_date(None) == "—"


# -------------------------------------------------------------------------------- duration


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=42), "42s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(minutes=5), "5m 00s"),
        (timedelta(minutes=5, seconds=7), "5m 07s"),
        (timedelta(hours=2, minutes=3, seconds=59), "2h 03m"),
        (timedelta(hours=1), "1h 00m"),
        (timedelta(days=3, hours=4, minutes=59), "3d 4h"),
        (timedelta(days=1), "1d 0h"),
    ],
)
def test_duration_formats(span: timedelta, text: str) -> None:
    assert duration(span) == text


def test_duration_missing_or_negative_is_a_dash() -> None:
    assert duration(None) == "—"
    assert duration(timedelta(seconds=-5)) == "—"
    assert duration(None, missing="n/a") == "n/a"


# ------------------------------------------------------------------------------------ link


def test_link_builds_a_mrkdwn_link() -> None:
    built = link("https://cde.example.com/runs/1", "Open in CDE")
    assert built == "<https://cde.example.com/runs/1|Open in CDE>"


def test_link_escapes_the_label_and_its_pipe() -> None:
    built = link("https://x.test/a", "<!channel> | a & b")
    assert built.startswith("<https://x.test/a|")
    label = built[len("<https://x.test/a|"):-1]
    assert "|" not in label
    assert "<" not in label
    assert ">" not in label
    assert "&lt;!channel&gt;" in label
    assert "a &amp; b" in label
    assert built.count("<") == 1
    assert built.count(">") == 1


# ---------------------------------------------------------------------------------- plural


def test_plural() -> None:
    assert plural(1, "run") == "1 run"
    assert plural(0, "run") == "0 runs"
    assert plural(2, "entry", "entries") == "2 entries"
    assert plural(1, "entry", "entries") == "1 entry"
