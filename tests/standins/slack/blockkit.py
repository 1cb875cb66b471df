"""The Block Kit limits Slack enforces (a subset), reported as Slack's ``invalid_blocks``
messages would be.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _section_errors(block: JsonDict, where: str) -> list[str]:
    errors = []
    text = _text_of(block.get("text"))
    fields = block.get("fields") or []
    if "text" in block and not 1 <= len(text) <= 3000:
        errors.append(f"must be between 1 and 3000 characters {where}/text]")
    if "text" not in block and not fields:
        errors.append(f"must provide either text or fields {where}]")
    if len(fields) > 10:
        errors.append(f"must be less than 11 items {where}/fields]")
    errors += [f"must be less than 2001 characters {where}/fields/{j}/text]"
               for j, item in enumerate(fields) if len(_text_of(item)) > 2000]
    return errors


def _kind_errors(block: JsonDict, where: str) -> list[str]:
    """The limits of the block's own type."""
    kind = block["type"]
    if kind == "section":
        return _section_errors(block, where)
    if kind == "header" and len(_text_of(block.get("text"))) > 150:
        return [f"must be less than 151 characters {where}/text/text]"]
    if kind == "actions" and len(block.get("elements") or []) > 25:
        return [f"must be less than 26 items {where}/elements]"]
    if kind == "context" and len(block.get("elements") or []) > 10:
        return [f"must be less than 11 items {where}/elements]"]
    return []


# What a button may hold at most: (what, its length, the most Slack takes).
def _button_limits(button: JsonDict) -> list[tuple[str, int, int]]:
    return [
        ("button text", len(_text_of(button.get("text"))), 75),
        ("button value", len(button.get("value", "")), 2000),
        ("button url", len(button.get("url", "")), 3000),
        ("action_id", len(button.get("action_id", "")), 255),
    ]


def _button_errors(block: JsonDict, where: str) -> list[str]:
    elements = list(block.get("elements") or [])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    buttons = [el for el in elements if isinstance(el, dict) and el.get("type") == "button"]
    return [f"{what} must be less than {most + 1} characters {where}]"
            for button in buttons for what, length, most in _button_limits(button) if length > most]


def _block_id_errors(block_id: Any, seen: set[str], where: str) -> list[str]:
    if block_id is None:
        return []
    errors = []
    if len(block_id) > 255:
        errors.append(f"must be less than 256 characters {where}/block_id]")
    if block_id in seen:
        errors.append(f"duplicate block_id {where}/block_id]")
    seen.add(block_id)
    return errors


def block_kit_errors(blocks: Any, *, max_blocks: int = 50) -> list[str]:
    """The Block Kit limits Slack enforces (a subset), as ``invalid_blocks`` messages."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"must be less than {max_blocks + 1} items [json-pointer:/blocks]")
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"invalid block {where}]")
            continue
        errors += _block_id_errors(block.get("block_id"), seen_block_ids, where)
        errors += _kind_errors(block, where)
        errors += _button_errors(block, where)
    return errors
