"""Formatting primitives for Slack mrkdwn (pure). All escaping of outside text is here.

In mrkdwn only `&`, `<` and `>` are control characters. Any string that comes from outside
(API data, user input) goes through `escape()` before it is placed in a message, so that a
site named `<!channel>` shows as text instead of pinging everyone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ELLIPSIS = "…"


def escape(text: object) -> str:
    """Escape the three mrkdwn control characters in an outside string."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut.

    Never cuts inside an escape sequence such as `&amp;`, which would show as garbage.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    # Back off only from a cut escape sequence (`&`, `&am`, `&lt`, ...), not from any `&`.
    if amp != -1 and len(cut) - amp < len("&amp;") and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def code(text: object) -> str:
    """An escaped inline code span; backticks inside would end it, so they are replaced."""
    return "`" + escape(str(text).replace("`", "ˋ")) + "`"


def date(moment: datetime | None, *, missing: str = "—") -> str:
    """A Slack date token: each reader sees it in their own time zone.

    The fallback (for clients that cannot render tokens, and for notifications) is UTC.
    """
    if moment is None:
        return missing
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{plain_date(moment)}>"


def plain_date(moment: datetime | None, *, missing: str = "—") -> str:
    """A date as plain text in UTC, for fallback `text` and plain_text fields."""
    if moment is None:
        return missing
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(span: timedelta | None, *, missing: str = "—") -> str:
    """A human duration: `42s`, `5m 00s`, `2h 03m`, `3d 4h`."""
    if span is None:
        return missing
    seconds = int(span.total_seconds())
    if seconds < 0:
        return missing
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def link(url: str, label: str) -> str:
    """A mrkdwn link; `label` is outside text and is escaped, `|` too since it ends the URL."""
    return f"<{url}|{escape(label).replace('|', '¦')}>"


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"
