"""Reading Block Kit messages in tests: every object inside a message, depth first."""

from __future__ import annotations

from typing import Any


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
