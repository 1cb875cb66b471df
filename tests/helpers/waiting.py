"""Waiting for a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Call (and await, if need be) `condition()` until it returns something truthy, and
    return that; fail saying `what` was awaited once `timeout` seconds have gone by.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        result = await value if inspect.isawaitable(value) else value
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
