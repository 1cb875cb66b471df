"""Reading Block Kit messages in tests: every object inside a message, depth first, and the
checks every rendered message must pass (Slack's limits, escaped text).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.slack.message import (
    MAX_BLOCKS,
    MAX_BUTTON_VALUE,
    MAX_FALLBACK_TEXT,
    MAX_FIELD_TEXT,
    MAX_HEADER,
    MAX_SECTION_TEXT,
    Message,
)
from tests.standins.slack import block_kit_errors

# Slack's limits the bot does not need constants for, as Slack documents them.
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255

# Tokens the renderers themselves write into mrkdwn; any other `<`, `>` or `&` is text that
# must be escaped. A mention's user id comes from Slack and is written escaped but as it is,
# `|` included.
OWN_TOKENS = re.compile(
    r"<!date\^-?\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*>"
    r"|<@[^<>]+>"
    r"|<https?://[^<>|\s]*\|[^<>|]*>"
)
BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")
# Mentions, a link and an ampersand as the tests plant them in CDE data: never in a message
# as they were planted (a planted link would otherwise pass for one of the bot's own).
PLANTED = ("<!channel>", "<https://evil", "<!here>", "a & b")


def walk(node: Any) -> list[dict[str, Any]]:
    """Every dict inside `node`, depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(walk(item))
    return found


def buttons(message: Message) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    return {obj["action_id"]: obj for obj in walk(message.blocks) if obj.get("type") == "button"}


def assert_escaped(text: str) -> None:
    """Apart from the bot's own tokens, `text` holds no `<`, `>` or bare `&`, and nothing
    planted in the data as it was planted.
    """
    rest = OWN_TOKENS.sub("", text)
    assert "<" not in rest and ">" not in rest, text
    assert not BARE_AMPERSAND.search(rest), text
    for planted in PLANTED:
        assert planted not in text, (planted, text)


def assert_fits(message: Message) -> None:
    """Slack's Block Kit limits: the stand-in's checks (tests/standins/slack/blockkit.py)
    and the ones it leaves out, and a fallback text that is not blank.
    """
    assert isinstance(message.text, str)
    assert message.text.strip(), "the fallback text must not be empty"
    assert len(message.text) <= MAX_FALLBACK_TEXT
    assert block_kit_errors(message.blocks, max_blocks=MAX_BLOCKS) == []
    assert 1 <= len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        _assert_block_fits(block)
    for button in buttons(message).values():
        assert len(button["text"]["text"]) <= MAX_BUTTON_TEXT
        assert len(button.get("value", "")) <= MAX_BUTTON_VALUE
        assert len(button.get("url", "")) <= MAX_BUTTON_URL
        assert len(button["action_id"]) <= MAX_ACTION_ID
    json.dumps(message.as_kwargs())  # what is sent to Slack must be JSON


def _assert_block_fits(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "section":
        if "text" in block:
            assert 1 <= len(block["text"]["text"]) <= MAX_SECTION_TEXT
        fields = block.get("fields") or []
        assert len(fields) <= MAX_FIELDS
        assert all(len(f["text"]) <= MAX_FIELD_TEXT for f in fields)
        assert "text" in block or fields
    elif kind == "header":
        assert block["text"]["type"] == "plain_text"
        assert 1 <= len(block["text"]["text"]) <= MAX_HEADER
    elif kind == "context":
        elements = block.get("elements") or []
        assert 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS
        assert all(len(e.get("text", "")) <= MAX_SECTION_TEXT for e in elements)
    elif kind == "actions":
        elements = block.get("elements") or []
        assert 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS, "an actions block needs elements"
