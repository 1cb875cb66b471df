"""Notices end to end in process: channels subscribe through signed requests to the bot's
`/slack/events`, the bot polls the CDE stand-in and posts notices, repeats, recoveries and
digests to the Slack stand-in.

The bot is built and served as `cde-bot serve` builds it, inside the test's event loop;
the test runs each poll itself (`notices.poll()`) where the real bot would wait for its
interval. tests/e2e/test_notices.py shows the same with real processes, a restart included.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.demo.api import Fault, SampleCdeApi
from bot.demo.runs import make_run
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.events import post
from tests.helpers.waiting import until
from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    block_kit_errors,
    encode_interaction,
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
    """A bot with notices on, and the helpers the tests need around it."""

    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, bot: InProcessBot) -> None:
        self.slack, self.cde, self.bot = slack, cde, bot

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

    async def subscribe_everything(self, channel: str = OPS) -> None:
        """`/cde subscribe all`, then the confirmation click it asks for."""
        url = await self.command("subscribe all", channel)
        [confirm] = await self.slack.wait_for_response(url)
        before = len(self.slack.messages(channel))
        message = {"ts": "1.0", "blocks": confirm["blocks"], "text": confirm["text"]}
        await self.click("subscribe_all", message, channel=channel, user="U0001")
        await until(lambda: len(self.slack.messages(channel)) > before, "subscription confirmation")

    async def poll(self, count: int = 1) -> None:
        """`count` polls, one after the other."""
        await self.bot.poll(count)

    async def poll_until(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        """Poll until `condition()` holds, as the bot would poll while the test waits."""
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.sleep(0.01)  # answers to commands and clicks under way come first
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await self.poll()

    def notices(self, channel: str = OPS) -> list[dict[str, Any]]:
        """Top-level messages that are not subscription confirmations."""
        return [m for m in self.slack.messages(channel) if ":bell:" not in json.dumps(m)]

    def message(self, ts: str, channel: str = OPS) -> dict[str, Any]:
        """The message `ts` in `channel` as it is now; it must be there."""
        message = self.slack.message(channel, ts)
        assert message is not None, f"no message {ts} in {channel}"
        return message

    async def click(self, action_id: str, message: dict[str, Any], channel: str = OPS,
                    user: str = "U0002", selected: str | None = None) -> str:
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = block_actions_payload(action_id, response_url=url, message=message,
                                        channel_id=channel, user_id=user)
        if selected is not None:
            payload["actions"][0].update(type="static_select",
                                         selected_option={"text": {"type": "plain_text",
                                                                   "text": selected},
                                                          "value": selected})
        status, _, _ = await post(self.bot, encode_interaction(payload))
        assert status == 200
        return url


def text_of(message: Any) -> str:
    return json.dumps(message, ensure_ascii=False)


@pytest.fixture
async def notices(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[Notices]:
    for channel, name in ((OPS, "ops"), (OTHER, "other"), (ADMIN, "cde-admin")):
        slack.add_channel(channel, name)
    bot = InProcessBot(slack, cde, tmp_path / "bot.db", slack_admin_channel=ADMIN,
                       cde_outage_alert_minutes=0.02)
    await bot.start()
    try:
        yield Notices(slack, cde, bot)
    finally:
        await bot.stop()


async def test_one_notice_in_the_subscribed_channel_only(notices: Notices, cde: SampleCdeApi,
                                                         slack: SlackStandIn) -> None:
    cde.add_run(failure(minutes_ago=3, site_id=1001))  # failed before anyone subscribed
    await notices.subscribe("site:1001")
    await notices.subscribe("site:1002", channel=OTHER)
    await notices.poll(2)
    assert notices.notices(OPS) == []  # a pre-existing failure is not news

    cde.add_run(make_run(state="finished", site_id=1001))
    run = failure(minutes_ago=0, site_id=1001, site_name="<!channel> & co")
    cde.add_run(run)
    await notices.poll_until(lambda: len(notices.notices(OPS)) == 1, "the notice")
    await notices.poll(3)
    [notice] = notices.notices(OPS)
    assert notices.notices(OTHER) == []
    assert run["id"] in text_of(notice) and run["process-id"] in text_of(notice)
    assert "&lt;!channel&gt; &amp; co" in text_of(notice) and "<!channel>" not in text_of(notice)
    assert notice["text"].startswith("Failed: connector")
    assert block_kit_errors(notice["blocks"]) == []


async def test_a_late_failure_with_an_old_created_at_is_told(notices: Notices, cde: SampleCdeApi) -> None:
    await notices.subscribe(f"connector:{CONNECTOR}")
    long_run = make_run(state="running", site_id=1003, created_at=now() - timedelta(hours=6),
                        started_at=now() - timedelta(hours=6))
    cde.add_run(long_run)
    cde.add_run(make_run(state="finished", site_id=1004))  # newer runs listed before it
    await notices.poll(2)
    cde.update_run(long_run["id"], state="failed", **{"finished-at": now().isoformat(),
                                                      "exit-code": 137})
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the late failure")
    assert long_run["id"] in text_of(notices.notices()[0])


async def test_a_burst_becomes_one_digest_with_every_failure_in_its_thread(
    notices: Notices, cde: SampleCdeApi, slack: SlackStandIn
) -> None:
    await notices.subscribe_everything()
    burst = [failure(minutes_ago=0, site_id=site, connector_id=connector)
             for site in (1001, 1002, 1003) for connector in (CONNECTOR, OTHER_CONNECTOR)]
    burst += [failure(minutes_ago=0, site_id=1001)]
    for run in burst:
        cde.add_run(run)
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the digest")
    [digest] = notices.notices()
    assert "7 runs failed" in text_of(digest)
    await notices.poll_until(lambda: any(r.get("text") for r in slack.replies(OPS, digest["ts"])),
                             "the digest's list")
    await notices.poll(2)
    listed = text_of(slack.replies(OPS, digest["ts"]))
    assert all(run["id"] in listed for run in burst)
    assert len(notices.notices()) == 1


async def test_rate_limited_twice_is_delivered_once(notices: Notices, cde: SampleCdeApi,
                                                    slack: SlackStandIn,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    await notices.subscribe("site:1002")
    slack.fail_next("chat.postMessage", times=2, status=429, retry_after=1)
    cde.add_run(failure(minutes_ago=0, site_id=1002))
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the notice")
    await notices.poll(3)
    assert len(notices.notices()) == 1
    posts = slack.calls_to("chat.postMessage")
    assert [call.ok for call in posts[-3:]] == [False, False, True]
    # Delivered by the client's retries after Retry-After, within the same poll: the poller
    # never saw a refusal to try again later.
    assert posts[-1].time - posts[-3].time >= 2.0
    assert "will retry next poll" not in caplog.text


async def test_api_outage_is_told_to_admins_and_failures_are_caught_up(
    notices: Notices, cde: SampleCdeApi, slack: SlackStandIn
) -> None:
    await notices.subscribe("site:1001")
    await notices.poll(1)
    down = Fault(503, "<html><body>Service Unavailable</body></html>")
    cde.fail_next(*[down] * 1000)  # down until the alert is out
    run = failure(minutes_ago=0, site_id=1001)
    cde.add_run(run)
    await notices.poll_until(lambda: "unreachable" in text_of(slack.messages(ADMIN)), "the outage alert")
    assert notices.notices() == []
    cde.faults.clear()
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the caught-up notice")
    await notices.poll_until(lambda: "reachable again" in text_of(slack.messages(ADMIN)), "the all-clear")
    assert len(slack.messages(ADMIN)) == 2
    assert run["id"] in text_of(notices.notices()[0])


async def test_repeat_goes_to_the_thread_and_recovery_resolves(
    notices: Notices, cde: SampleCdeApi, slack: SlackStandIn
) -> None:
    await notices.subscribe("site:1001")
    cde.add_run(failure(started_minutes_before=10, site_id=1001))
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the notice")
    ts = notices.notices()[0]["ts"]

    cde.add_run(failure(started_minutes_before=5, site_id=1001))
    await notices.poll_until(lambda: len(slack.replies(OPS, ts)) == 1, "the repeat reply")
    assert "2nd time" in text_of(slack.replies(OPS, ts)[0])
    await notices.poll_until(lambda: "Failed 2 times" in text_of(slack.message(OPS, ts)),
                             "the parent's count")
    assert len(notices.notices()) == 1

    finished = make_run(state="finished", site_id=1001, started_at=now())
    cde.add_run(finished)
    await notices.poll_until(lambda: len(slack.replies(OPS, ts)) == 2, "the recovery reply")
    assert "Recovered" in text_of(slack.replies(OPS, ts)[1])
    assert finished["id"] in text_of(slack.replies(OPS, ts)[1])
    await notices.poll_until(lambda: "*Recovered:*" in text_of(slack.message(OPS, ts)), "the parent resolved")
    assert "Acknowledge" not in text_of(slack.message(OPS, ts))


async def test_buttons_acknowledge_mute_and_list_recent_runs(
    notices: Notices, cde: SampleCdeApi, slack: SlackStandIn
) -> None:
    await notices.subscribe("site:1002")
    cde.add_run(failure(started_minutes_before=10, site_id=1002))
    await notices.poll_until(lambda: len(notices.notices()) == 1, "the notice")
    notice = notices.notices()[0]
    ts = notice["ts"]

    await notices.click("incident_ack", notice, user="U0002")
    await until(lambda: "<@U0002> is on it" in text_of(slack.message(OPS, ts)), "the acknowledgement")
    assert '"Acknowledge"' not in text_of(slack.message(OPS, ts))

    await notices.click("incident_mute", notices.message(ts), selected="4")
    await until(lambda: "Muted by <@U0002>" in text_of(slack.message(OPS, ts)), "the mute")
    await until(lambda: any("muted this connector" in text_of(r) for r in slack.replies(OPS, ts)),
                        "the mute reply")
    replies_before = len(slack.replies(OPS, ts))
    cde.add_run(failure(minutes_ago=0, site_id=1002))
    await notices.poll_until(lambda: "1 while muted" in text_of(slack.message(OPS, ts)), "the muted count")
    await notices.poll(2)
    assert len(slack.replies(OPS, ts)) == replies_before and len(notices.notices()) == 1

    url = await notices.click("incident_recent", notices.message(ts))
    [recent] = await slack.wait_for_response(url)
    assert recent["response_type"] == "ephemeral" and recent.get("replace_original") is False
    assert "Showing 1–" in text_of(recent) and "`site:1002`" in text_of(recent)


async def test_subscription_commands(notices: Notices, slack: SlackStandIn) -> None:
    url = await notices.command("subscribe")
    [confirm] = await slack.wait_for_response(url)
    assert "every failed run" in text_of(confirm)
    confirm_message = {"ts": "1.0", "blocks": confirm["blocks"], "text": confirm["text"]}
    await notices.click("subscribe_all", confirm_message, user="U0001")
    await until(lambda: len(slack.messages(OPS)) == 1, "the subscription post")
    assert "every failed run" in text_of(slack.messages(OPS)[0])

    await notices.subscribe("site:1001 project:650")
    url = await notices.command("subscribe site:1001 project:650")
    [duplicate] = await slack.wait_for_response(url)
    assert "already follows" in text_of(duplicate)

    url = await notices.command("subscriptions")
    [listing] = await slack.wait_for_response(url)
    assert "2 subscriptions" in text_of(listing) and "on site 1001 in project 650" in text_of(listing)

    url = await notices.command("unsubscribe 99")
    [missing] = await slack.wait_for_response(url)
    assert "no subscription `99`" in text_of(missing)
    await notices.command("unsubscribe all")
    await until(lambda: "removed all 2 subscriptions" in text_of(slack.messages(OPS)), "unsubscribe")
    url = await notices.command("subscriptions")
    [empty] = await slack.wait_for_response(url)
    assert "follows no failures" in text_of(empty)


async def test_subscribing_where_the_bot_cannot_post_is_refused(notices: Notices,
                                                                slack: SlackStandIn) -> None:
    slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    url = await notices.command("subscribe site:1001")
    [answer] = await slack.wait_for_response(url)
    assert "/invite" in text_of(answer) and "@cde-bot" not in text_of(answer)
    url = await notices.command("subscriptions")
    [listing] = await slack.wait_for_response(url)
    assert "follows no failures" in text_of(listing)
