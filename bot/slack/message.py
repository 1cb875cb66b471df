"""A Slack message (Block Kit blocks and fallback text) and the block helpers both paths use.

Blocks are plain dicts built by `bot.slack.blocks`, which keeps Slack's limits on each
block and element; the limits of a whole message (50 blocks, the fallback text) are kept here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.slack.blocks import (
    MAX_BUTTON_VALUE,
    MAX_FIELD_TEXT,
    MAX_HEADER,
    MAX_SECTION_TEXT,
    Block,
    Element,
    context,
    mrkdwn,
    section,
)
from bot.slack.mrkdwn import clip, code, escape

MAX_BLOCKS = 50
MAX_FALLBACK_TEXT = 4000


@dataclass(frozen=True)
class Message:
    """A Slack message: Block Kit blocks plus the fallback `text` (notifications, a11y)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    # An explanation of something that went wrong, not the answer asked for: it must not
    # replace a list the person is paging through.
    error: bool = False

    def __post_init__(self) -> None:
        if len(self.blocks) > MAX_BLOCKS:
            raise ValueError(f"{len(self.blocks)} blocks; Slack allows {MAX_BLOCKS}")

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def message(text: str, blocks: Sequence[Block], *, escaped: bool = False, error: bool = False) -> Message:
    """A message from blocks and fallback text. Slack reads the fallback as mrkdwn too
    (it is what push notifications show), so it is escaped unless it already is.
    """
    fallback = text if escaped else escape(text)
    return Message(clip(fallback, MAX_FALLBACK_TEXT), list(blocks), error)


def pack_lines(lines: Sequence[str], limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Lines joined into as few texts as fit `limit` each, never splitting a line (one
    that is too long on its own is clipped), so long lists lose nothing to a cut.
    """
    texts: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            texts.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        texts.append(current)
    return texts


def fields(*pairs: tuple[str, str]) -> list[Element]:
    return [mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs]


def plain(text: str) -> str:
    """Fallback text: the message without its leading emoji."""
    return text.split(" ", 1)[1] if text.startswith(":") else text


def internal_error(reference: str) -> Message:
    """What the person is told when handling their request failed unexpectedly: short, with
    the reference that finds the error in the log."""
    text = (":boom: Something went wrong in cde-bot; the error is logged. "
            f"Reference: {code(reference)}.")
    return message(plain(text), [section(text)], escaped=True, error=True)


def store_unavailable(reference: str) -> Message:
    """What the person is told when the bot's database failed them: nothing was done, when
    to try again, and where an admin looks (the store check of `/readyz`)."""
    text = (":warning: The bot's database is not answering, so nothing was done; try again in "
            f"a minute. Admins: see `/readyz`. Reference: {code(reference)}.")
    return message(plain(text), [section(text)], escaped=True, error=True)


def number_out_of_range(largest: int, reference: str) -> Message:
    """A number in the request is beyond what the store keeps (caught by the store itself)."""
    text = (f":warning: A number in this request is larger than any id the bot keeps (at most "
            f"{largest}), so nothing was done. Reference: {code(reference)}.")
    return message(plain(text), [section(text)], escaped=True, error=True)


__all__ = ["MAX_BLOCKS", "MAX_BUTTON_VALUE", "MAX_FALLBACK_TEXT", "MAX_FIELD_TEXT", "MAX_HEADER",
           "MAX_SECTION_TEXT", "Block", "Message", "context", "fields", "internal_error", "message",
           "number_out_of_range", "pack_lines", "plain", "section", "store_unavailable"]
