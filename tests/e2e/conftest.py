"""Fixtures for end-to-end tests: stand-ins on loopback and the real bot process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.demo.api import SampleCdeApi, reference_runs
from bot.demo.runs import make_run
from tests.e2e.harness import APP_TOKEN, BOT_TOKEN, CDE_TOKEN, SECRETS, SIGNING_SECRET, BotProcess
from tests.standins.slack import SlackStandIn

# Site 1001 gets 23 more failed runs, so that a filtered list has three pages of ten.
EXTRA_FAILED = 23


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                            signing_secret=SIGNING_SECRET) as standin:
        yield standin


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    base = datetime(2025, 10, 28, 8, 0, tzinfo=UTC)
    runs = reference_runs() + [
        make_run(state="failed", site_id=1001, started_at=base + timedelta(minutes=7 * i),
                 created_at=base + timedelta(minutes=7 * i))
        for i in range(EXTRA_FAILED)
    ]
    async with SampleCdeApi(runs, token=CDE_TOKEN) as api:
        yield api


def bot_env(slack: SlackStandIn, cde: SampleCdeApi, *, socket_mode: bool,
            database: Path | None = None) -> dict[str, str]:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.base_url,
        "CDE_API_URL": cde.url,
        "CDE_API_TOKEN": CDE_TOKEN,
        "LOG_LEVEL": "DEBUG",
    }
    if database is not None:
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    if socket_mode:
        env["SLACK_APP_TOKEN"] = APP_TOKEN
    else:
        env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
    return env


async def _running_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                       socket_mode: bool) -> AsyncIterator[BotProcess]:
    bot = BotProcess(bot_env(slack, cde, socket_mode=socket_mode, database=tmp_path / "bot.db"),
                     tmp_path / "bot.log")
    await bot.start()
    try:
        yield bot
    finally:
        await stop_cleanly(bot)


async def stop_cleanly(bot: BotProcess) -> None:
    """Stop the bot and check it went as it should: exit 0, no secret and no crash logged."""
    code = await bot.stop()
    log = bot.log()
    assert code == 0, f"bot exited with {code}:\n{log}"
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, "a secret appeared in the bot's log"
    # Every traceback in the log must belong to an error the bot reported as unhandled
    # (a test provoked it); any other one is a crash.
    assert log.count("Traceback") == log.count("Unhandled error"), log


@pytest.fixture
async def http_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    async for bot in _running_bot(slack, cde, tmp_path, socket_mode=False):
        yield bot


@pytest.fixture
async def socket_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    async for bot in _running_bot(slack, cde, tmp_path, socket_mode=True):
        yield bot
