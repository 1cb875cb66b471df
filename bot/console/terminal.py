"""Block Kit drawn for a terminal (pure): headings, fields, dates in local time, and the
message's buttons, numbered so they can be pressed from the console.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.ansi import BOLD, DIM, RESET

EMOJI = {
    "red_circle": "🔴", "large_green_circle": "🟢", "white_circle": "⚪", "warning": "⚠️",
    "lock": "🔒", "no_entry": "⛔", "mag": "🔍", "hourglass": "⌛", "boom": "💥", "bell": "🔔",
    "no_bell": "🔕", "mute": "🔇", "eyes": "👀", "repeat": "🔁", "rotating_light": "🚨",
    "white_check_mark": "✅", "information_source": "ℹ️",
}

_DATE = re.compile(r"<!date\^(\d+)\^[^|>]*\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>")
_BARE_LINK = re.compile(r"<(https?://[^>]+)>")
_MENTION = re.compile(r"<([@#])([A-Za-z0-9._-]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)>")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")


@dataclass(frozen=True)
class Control:
    """Something in a message that can be pressed: a button, a menu or a link."""

    number: int
    label: str
    action_id: str
    value: str | None = None
    url: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # (label, value) for a menu
    block_id: str | None = None


@dataclass
class Drawn:
    text: str
    controls: list[Control] = field(default_factory=list)
    # The lines that say something (not the rows of controls), to tell what an update changed.
    content: list[str] = field(default_factory=list)


def mrkdwn(text: str, *, color: bool = False) -> str:
    """Slack mrkdwn as terminal text: local dates, readable links, emoji, bold."""
    text = _DATE.sub(lambda m: _local(int(m.group(1)), m.group(2)), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    text = _MENTION.sub(lambda m: f"{m.group(1)}{m.group(3) or m.group(2)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(1)}", text)
    text = _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = _BOLD.sub(lambda m: f"{BOLD}{m.group(1)}{RESET}" if color else m.group(1), text)
    # Unescape last: what was escaped is text, not markup.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _local(timestamp: int, fallback: str) -> str:
    try:
        return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    except (OverflowError, OSError, ValueError):
        return fallback


def draw(message: dict[str, Any], numbers: Callable[[str], int], *, color: bool = False) -> Drawn:
    """The message as lines of text, and its controls numbered by `numbers` (given each
    control's action id, so that a message drawn again can keep its controls' numbers).
    """
    lines: list[str] = []
    content: list[str] = []
    controls: list[Control] = []
    blocks = message.get("blocks") or []
    if not blocks and message.get("text"):
        lines.append(mrkdwn(message["text"], color=color))
        content.extend(lines)
    for block in blocks:
        kind = block.get("type")
        if kind == "actions":
            row = [_control(element, numbers(element.get("action_id", "")), block.get("block_id"))
                   for element in block.get("elements", [])]
            controls.extend(row)
            lines.append("  ".join(_label(control) for control in row))
        elif kind in _DRAWERS:
            drawn = _DRAWERS[kind](block, color)
            lines.extend(drawn)
            content.extend(drawn)
    return Drawn("\n".join(lines), controls, content)


def _header(block: dict[str, Any], color: bool) -> list[str]:
    title: str = block["text"]["text"]
    return [f"{BOLD}{title}{RESET}" if color else title.upper()]


def _section(block: dict[str, Any], color: bool) -> list[str]:
    lines = [mrkdwn(block["text"]["text"], color=color)] if block.get("text") else []
    for item in block.get("fields") or []:
        label, _, value = item["text"].partition("\n")
        lines.append(f"  {mrkdwn(label, color=color)}: {mrkdwn(value, color=color)}")
    return lines


def _context(block: dict[str, Any], color: bool) -> list[str]:
    text = "  ".join(mrkdwn(e.get("text", ""), color=color) for e in block.get("elements", []))
    return [f"{DIM}{text}{RESET}" if color else text]


def _divider(block: dict[str, Any], color: bool) -> list[str]:
    return ["─" * 40]


# How each kind of block without controls is drawn; other kinds are left out.
_DRAWERS: dict[str, Callable[[dict[str, Any], bool], list[str]]] = {
    "header": _header, "section": _section, "context": _context, "divider": _divider,
}


def _control(element: dict[str, Any], number: int, block_id: str | None) -> Control:
    label = (element.get("text") or element.get("placeholder") or {}).get("text", "?")
    options = tuple(
        (option["text"]["text"], option["value"]) for option in element.get("options") or []
    )
    return Control(number, label, element.get("action_id", ""), element.get("value"),
                   element.get("url"), options, block_id)


def _label(control: Control) -> str:
    text = f"[{control.number}] {control.label}"
    if control.options:
        # Choices by their place only, so that a number never means two things.
        choices = ", ".join(f"{i} = {label}" for i, (label, _) in enumerate(control.options, 1))
        text += f" (press {control.number} <1-{len(control.options)}>: {choices})"
    if control.url:
        text += f" → {control.url}"
    return text
