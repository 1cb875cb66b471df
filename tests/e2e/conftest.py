"""Fixtures for end-to-end tests: stand-ins on loopback and the real bot process.

Two kinds: `slack`, `cde`, `http_bot` and `socket_bot` are new for every test; the
`shared_*` ones live as long as the module that asks for them, so its tests share one bot
process (starting one costs about a second of CPU). A module sharing them runs its tests in
the module's event loop (`pytestmark = pytest.mark.asyncio(loop_scope="module")`), and each
of its tests starts with the stand-ins' records, delays and faults reset.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import (
    BotProcess,
    SharedBot,
    bot_env,
    stop_cleanly,
)
from tests.helpers.sample import new_cde, new_slack
from tests.standins.slack import SlackStandIn


async def _running_bot(slack: SlackStandIn, cde: SampleCdeApi, directory: Path,
                       socket_mode: bool) -> AsyncIterator[BotProcess]:
    bot = BotProcess(bot_env(slack, cde, socket_mode=socket_mode, database=directory / "bot.db"),
                     directory / "bot.log")
    await bot.start()
    try:
        yield bot
    finally:
        await stop_cleanly(bot)


@pytest.fixture
async def http_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    async for bot in _running_bot(slack, cde, tmp_path, socket_mode=False):
        yield bot


@pytest.fixture
async def socket_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    async for bot in _running_bot(slack, cde, tmp_path, socket_mode=True):
        yield bot


# ------------------------------------------------------- shared by a module's tests


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_slack() -> AsyncIterator[SlackStandIn]:
    async with new_slack() as standin:
        yield standin


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_cde() -> AsyncIterator[SampleCdeApi]:
    async with new_cde() as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_http_bot(shared_slack: SlackStandIn, shared_cde: SampleCdeApi,
                          tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SharedBot]:
    directory = tmp_path_factory.mktemp("http-bot")
    async for bot in _running_bot(shared_slack, shared_cde, directory, socket_mode=False):
        yield SharedBot(bot, list(shared_slack.calls))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_socket_bot(shared_slack: SlackStandIn, shared_cde: SampleCdeApi,
                            tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SharedBot]:
    directory = tmp_path_factory.mktemp("socket-bot")
    async for bot in _running_bot(shared_slack, shared_cde, directory, socket_mode=True):
        # Start-up is over once the Socket Mode client has connected.
        await shared_slack.wait_connected()
        yield SharedBot(bot, list(shared_slack.calls))


@pytest.fixture(autouse=True)
def fresh_shared_standins(request: pytest.FixtureRequest) -> None:
    """A test sharing its module's stand-ins sees only what happens during it."""
    for name in ("shared_slack", "shared_cde"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
