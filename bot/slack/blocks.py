"""Block Kit blocks and elements as the plain dicts Slack reads, with Slack's limits kept.

Why not slack_sdk's Block Kit models: turning them into dicts (`to_dict`) walks every
attribute through validators, and took about three quarters of the time spent rendering
an answer (`python -m bench.load --profile DIR`). These builders give the same dicts
(same keys, same defaults: plain text in buttons and options allows emoji) at a fraction
of the cost. Texts a person or the API wrote are clipped to Slack's limits; a value or URL
too long for Slack is a bug in the caller, and raises as slack_sdk's models did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack.mrkdwn import clip

Block = dict[str, Any]
Element = dict[str, Any]

MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTIONS = 100
MAX_PLACEHOLDER = 150
MAX_URL = 3000
MAX_ACTION_ID = 255
MAX_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCK_ID = 255


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> Element:
    return {"text": clip(text, limit), "type": "mrkdwn"}


def plain_text(text: str, limit: int, *, emoji: bool = True) -> Element:
    return {"emoji": emoji, "text": clip(text, limit), "type": "plain_text"}


def section(text: str, *, block_id: str | None = None, accessory: Element | None = None) -> Block:
    block: Block = {"text": mrkdwn(text), "type": "section"}
    if block_id is not None:
        block["block_id"] = _check(block_id, MAX_BLOCK_ID, "block_id")
    if accessory is not None:
        block["accessory"] = accessory
    return block


def field_section(fields: Sequence[Element]) -> Block:
    """A section of up to ten fields, shown two by two."""
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"{len(fields)} fields; Slack allows {MAX_FIELDS} in a section")
    return {"fields": list(fields), "type": "section"}


def header(text: str) -> Block:
    return {"text": {"text": clip(text, MAX_HEADER), "type": "plain_text"}, "type": "header"}


def context(*texts: str) -> Block:
    if len(texts) > MAX_CONTEXT_ELEMENTS:
        raise ValueError(f"{len(texts)} elements; Slack allows {MAX_CONTEXT_ELEMENTS} in a context block")
    return {"elements": [mrkdwn(text) for text in texts], "type": "context"}


def actions(elements: Sequence[Element], *, block_id: str | None = None) -> Block:
    if len(elements) > MAX_ELEMENTS:
        raise ValueError(f"{len(elements)} elements; Slack allows {MAX_ELEMENTS} in an actions block")
    block: Block = {"elements": list(elements), "type": "actions"}
    if block_id is not None:
        block = {"block_id": _check(block_id, MAX_BLOCK_ID, "block_id"), **block}
    return block


def button(text: str, action_id: str, *, value: str | None = None, url: str | None = None,
           style: str | None = None) -> Element:
    _check(action_id, MAX_ACTION_ID, "action_id")
    element: Element = {"action_id": action_id}
    if style is not None:
        if style not in ("primary", "danger"):
            raise ValueError(f"button style {style!r}: Slack knows primary and danger")
        element["style"] = style
    element["text"] = plain_text(text, MAX_BUTTON_TEXT)
    element["type"] = "button"
    if url is not None:
        element["url"] = _check(url, MAX_URL, "url")
    if value is not None:
        element["value"] = _check(value, MAX_BUTTON_VALUE, "value")
    return element


def option(text: str, value: str) -> Element:
    return {"text": plain_text(text, MAX_OPTION_TEXT), "value": _check(value, MAX_OPTION_VALUE, "value")}


def static_select(placeholder: str, action_id: str, options: Sequence[Element]) -> Element:
    if not 0 < len(options) <= MAX_OPTIONS:
        raise ValueError(f"{len(options)} options; Slack allows 1 to {MAX_OPTIONS}")
    return {"action_id": _check(action_id, MAX_ACTION_ID, "action_id"), "options": list(options),
            "placeholder": plain_text(placeholder, MAX_PLACEHOLDER), "type": "static_select"}


def _check(value: str, limit: int, name: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{name} of {len(value)} characters; Slack allows {limit}")
    return value
