"""Fixtures of the notice path's tests: `make_world` builds as many poller worlds as a
test needs (see `tests.helpers.world.World`), stopped at its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.helpers.world import World


@pytest.fixture
async def make_world(database_url: str) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    """Worlds on each backend (see `database_url`); the worlds of one test share its database."""
    worlds: list[World] = []

    async def make(**config: Any) -> World:
        world = await World().start(database_url, **config)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        await world.stop()


@pytest.fixture
async def world(make_world: Callable[..., Awaitable[World]]) -> World:
    return await make_world()
