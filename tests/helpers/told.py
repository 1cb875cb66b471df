"""What the bot told a channel, as the Slack stand-in holds it."""

from __future__ import annotations

from typing import Any

from tests.standins.slack import SlackStandIn


def tagged(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    """Every message in `channel` (threads too) that tells news, with its metadata tag."""
    found = []
    for message in slack.messages(channel):
        found.extend(m for m in [message, *slack.replies(channel, message["ts"])]
                     if (m.get("metadata") or {}).get("event_type") == "cde_bot_notice")
    return found
