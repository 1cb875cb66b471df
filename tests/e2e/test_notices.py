"""End to end in Socket Mode: a channel subscribes, the real bot polls the CDE stand-in
every second and posts a notice to the Slack stand-in; a restarted bot neither repeats it
nor misses what failed while it was down.

The notice in HTTP mode is shown by tests/ops/test_operations.py (the bot served in the
test process); repeats, recoveries, digests, rate limits, outages and the notice buttons in
process by tests/notices/test_scenarios.py, with the same parts and polls run by the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.demo.api import SampleCdeApi
from bot.demo.runs import make_run
from tests.helpers.bot_process import BotProcess, bot_env, stop_cleanly
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn

OPS = "C0001"
OTHER_CONNECTOR = "019e16f3-bfa8-7390-9e63-3354f9aa2939"


def failure(**kwargs: Any) -> dict[str, Any]:
    """A failed run that has just ended, having started five minutes before."""
    took = timedelta(minutes=5)
    return make_run(state="failed", started_at=datetime.now(UTC) - took, took=took, **kwargs)


class Notices:
    """A bot process with notices on, and the helpers the test needs around it."""

    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
        self.slack, self.cde, self.tmp_path = slack, cde, tmp_path
        self.env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db") | {
            "CDE_POLL_INTERVAL": "1",
        }
        self.bot = self.new_bot()

    def new_bot(self) -> BotProcess:
        return BotProcess(self.env, self.tmp_path / "bot.log")

    async def start(self) -> None:
        """Start the bot and wait for its Socket Mode connection."""
        connected = self.slack.socket_connections
        await self.bot.start()
        await self.slack.wait_connected(connections=connected + 1)

    async def subscribe(self, filters: str) -> None:
        before = len(self.slack.messages(OPS))
        await self.slack.send_slash_command(f"subscribe {filters}", channel_id=OPS)
        await until(lambda: len(self.slack.messages(OPS)) > before, "subscription confirmation")

    def polls(self) -> int:
        return sum(1 for r in self.cde.requests_to("/runs") if r.query.get("state") == "failed")

    async def wait_polls(self, count: int = 2) -> None:
        """Wait until `count` more polls have scanned the failed runs."""
        target = self.polls() + count
        await until(lambda: self.polls() >= target, f"{count} more polls")

    def notices(self) -> list[dict[str, Any]]:
        """Top-level messages that are not subscription confirmations."""
        return [m for m in self.slack.messages(OPS) if ":bell:" not in json.dumps(m)]


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


@pytest.fixture
async def notices(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[Notices]:
    world = Notices(slack, cde, tmp_path)
    await world.start()
    try:
        yield world
    finally:
        if world.bot.returncode is None:
            await stop_cleanly(world.bot)


async def test_no_repeat_after_restart_and_downtime_failures_are_told(
    notices: Notices, cde: SampleCdeApi
) -> None:
    await notices.subscribe("site:1001")
    cde.add_run(failure(site_id=1001))
    await until(lambda: len(notices.notices()) == 1, "the first notice")
    await stop_cleanly(notices.bot)

    # While the bot is down, another connector fails on the same site.
    missed = failure(site_id=1001, connector_id=OTHER_CONNECTOR)
    cde.add_run(missed)
    notices.bot = notices.new_bot()
    await notices.start()
    await until(lambda: len(notices.notices()) == 2, "the failure from the downtime")
    await notices.wait_polls(3)
    assert len(notices.notices()) == 2
    assert missed["id"] in text_of(notices.notices()[1])
