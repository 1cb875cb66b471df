"""Fixtures for end-to-end tests: stand-ins on loopback and the real bot process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import (
    APP_TOKEN,
    BOT_TOKEN,
    CDE_TOKEN,
    SIGNING_SECRET,
    BotProcess,
    bot_env,
    stop_cleanly,
)
from tests.helpers.sample import sample_runs
from tests.standins.slack import SlackStandIn


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                            signing_secret=SIGNING_SECRET) as standin:
        yield standin


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    async with SampleCdeApi(sample_runs(), token=CDE_TOKEN) as api:
        yield api


async def _running_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                       socket_mode: bool) -> AsyncIterator[BotProcess]:
    bot = BotProcess(bot_env(slack, cde, socket_mode=socket_mode, database=tmp_path / "bot.db"),
                     tmp_path / "bot.log")
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
