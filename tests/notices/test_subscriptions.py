"""Subscription commands against a real store and the Slack stand-in: what is refused is
marked as an error (counted as a user error), what succeeds is announced in the channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.notices.models import NoticeFilter
from bot.notices.subscriptions import Subscriptions
from bot.query import ListSubscriptions, Subscribe, Unsubscribe
from bot.slack.poster import SlackPoster
from bot.store.sql import SqlStore
from tests.standins.slack import SlackStandIn

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[Subscriptions, SlackStandIn]]:
    async with SlackStandIn() as slack:
        store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'subs.db'}")
        await store.open()
        poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url),
                             min_interval=0)
        yield Subscriptions(store, poster), slack
        await store.close()


async def test_subscribing_is_announced_and_a_duplicate_is_refused(service) -> None:
    subscriptions, slack = service
    command = Subscribe(NoticeFilter(site_id=1001))
    assert await subscriptions.answer(command, channel_id="C0001", user_id="U1", now=NOW) is None
    assert "subscribed this channel to failed runs on site 1001" in str(slack.messages("C0001"))
    again = await subscriptions.answer(command, channel_id="C0001", user_id="U1", now=NOW)
    assert again is not None and again.error and "already follows" in again.text


async def test_everything_needs_the_confirmation(service) -> None:
    subscriptions, slack = service
    ask = await subscriptions.answer(Subscribe(NoticeFilter()), channel_id="C0001", user_id="U1", now=NOW)
    assert ask is not None and not ask.error and "every failed run" in ask.text
    assert slack.messages("C0001") == []
    done = await subscriptions.answer(Subscribe(NoticeFilter(), everything=True), channel_id="C0001",
                                      user_id="U1", now=NOW)
    assert done is None and len(slack.messages("C0001")) == 1


async def test_refusals_are_errors(service) -> None:
    subscriptions, slack = service
    missing = await subscriptions.answer(Unsubscribe(7), channel_id="C0001", user_id="U1", now=NOW)
    none = await subscriptions.answer(Unsubscribe(None), channel_id="C0001", user_id="U1", now=NOW)
    assert missing is not None and missing.error and none is not None and none.error
    slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    cannot = await subscriptions.answer(Subscribe(NoticeFilter(site_id=1)), channel_id="C0009",
                                        user_id="U1", now=NOW)
    assert cannot is not None and cannot.error and "/invite" in cannot.text and "@cde-bot" not in cannot.text
    listing = await subscriptions.answer(ListSubscriptions(), channel_id="C0009", user_id="U1", now=NOW)
    assert listing is not None and not listing.error and "no subscriptions" in listing.text
