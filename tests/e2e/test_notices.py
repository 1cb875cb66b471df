"""End to end: channels subscribe, the real bot polls the CDE stand-in every second and
posts notices to the Slack stand-in, and a restarted bot neither repeats them nor misses
what failed while it was down.

Repeats, recoveries, digests, rate limits, outages and the notice buttons are shown in
process by tests/test_notice_scenarios.py, with the same parts and polls run by the test.
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
from tests.helpers.events import post
from tests.helpers.waiting import until
from tests.standins.slack import (
    SlackStandIn,
    block_kit_errors,
    encode_slash_command,
    slash_command_payload,
)

OPS, OTHER, ADMIN = "C0001", "C0002", "C0ADMIN"
CONNECTOR = "019e16f3-bf9c-7485-b60b-ff3407921934"
OTHER_CONNECTOR = "019e16f3-bfa8-7390-9e63-3354f9aa2939"


def now() -> datetime:
    return datetime.now(UTC)


def failure(minutes_ago: float = 0, started_minutes_before: float = 5, **kwargs: Any) -> dict[str, Any]:
    """A failed run that ended `minutes_ago`, having started some minutes before."""
    took = timedelta(minutes=started_minutes_before)
    return make_run(state="failed", started_at=now() - took - timedelta(minutes=minutes_ago),
                    took=took, **kwargs)


class Notices:
    """A bot process with notices on, and the helpers the tests need around it."""

    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
        self.slack, self.cde, self.tmp_path = slack, cde, tmp_path
        self.env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db") | {
            "CDE_POLL_INTERVAL": "1",
            "SLACK_ADMIN_CHANNEL": ADMIN,
            "CDE_OUTAGE_ALERT_MINUTES": "0.05",
        }
        self.bot = self.new_bot()

    def new_bot(self) -> BotProcess:
        return BotProcess(self.env, self.tmp_path / "bot.log")

    async def command(self, text: str, channel: str = OPS, user: str = "U0001") -> str:
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = slash_command_payload(text, response_url=url, channel_id=channel, user_id=user)
        status, _, _ = await post(self.bot, encode_slash_command(payload))
        assert status == 200
        return url

    async def subscribe(self, filters: str, channel: str = OPS) -> None:
        before = len(self.slack.messages(channel))
        await self.command(f"subscribe {filters}", channel)
        await until(lambda: len(self.slack.messages(channel)) > before, "subscription confirmation")

    def polls(self) -> int:
        return sum(1 for r in self.cde.requests_to("/runs") if r.query.get("state") == "failed")

    async def wait_polls(self, count: int = 2) -> None:
        """Wait until `count` more polls have scanned the failed runs."""
        target = self.polls() + count
        await until(lambda: self.polls() >= target, f"{count} more polls", timeout=20)

    def notices(self, channel: str = OPS) -> list[dict[str, Any]]:
        """Top-level messages that are not subscription confirmations."""
        return [m for m in self.slack.messages(channel) if ":bell:" not in json.dumps(m)]


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


@pytest.fixture
async def notices(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[Notices]:
    for channel, name in ((OPS, "ops"), (OTHER, "other"), (ADMIN, "cde-admin")):
        slack.add_channel(channel, name)
    world = Notices(slack, cde, tmp_path)
    await world.bot.start()
    try:
        yield world
    finally:
        if world.bot.returncode is None:
            await stop_cleanly(world.bot)


async def test_one_notice_in_the_subscribed_channel_only(notices: Notices, cde: SampleCdeApi,
                                                         slack: SlackStandIn) -> None:
    cde.add_run(failure(minutes_ago=3, site_id=1001))  # failed before anyone subscribed
    await notices.subscribe("site:1001")
    await notices.subscribe("site:1002", channel=OTHER)
    await notices.wait_polls(2)
    assert notices.notices(OPS) == []  # a pre-existing failure is not news

    cde.add_run(make_run(state="finished", site_id=1001))
    run = failure(minutes_ago=0, site_id=1001, site_name="<!channel> & co")
    cde.add_run(run)
    await until(lambda: len(notices.notices(OPS)) == 1, "the notice")
    await notices.wait_polls(3)
    [notice] = notices.notices(OPS)
    assert notices.notices(OTHER) == []
    assert run["id"] in text_of(notice) and run["process-id"] in text_of(notice)
    assert "&lt;!channel&gt; &amp; co" in text_of(notice) and "<!channel>" not in text_of(notice)
    assert notice["text"].startswith("Failed: connector")
    assert block_kit_errors(notice["blocks"]) == []


async def test_no_repeat_after_restart_and_downtime_failures_are_told(
    notices: Notices, cde: SampleCdeApi, slack: SlackStandIn
) -> None:
    await notices.subscribe("site:1001")
    cde.add_run(failure(minutes_ago=0, site_id=1001))
    await until(lambda: len(notices.notices()) == 1, "the first notice")
    await stop_cleanly(notices.bot)

    # While the bot is down, another connector fails on the same site.
    missed = failure(minutes_ago=0, site_id=1001, connector_id=OTHER_CONNECTOR)
    cde.add_run(missed)
    notices.bot = notices.new_bot()
    await notices.bot.start()
    await until(lambda: len(notices.notices()) == 2, "the failure from the downtime")
    await notices.wait_polls(3)
    assert len(notices.notices()) == 2
    assert missed["id"] in text_of(notices.notices()[1])
