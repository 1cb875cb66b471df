"""bot/notices/outbox.py: posts recorded before they are made survive a crash at any
instant, are told once, and one channel's trouble holds up no other. Against a real store
and the Slack stand-in over a socket; a crash is a new Outbox on the same store (what the
dead one had in memory is gone).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cde.models import Run
from bot.notices import posts, triage
from bot.notices.deliver import Delivery
from bot.notices.oncall import OnCall
from bot.notices.outbox import Outbox
from bot.slack.message import Message
from bot.slack.poster import SlackPoster, SlackUnavailable
from bot.store import database
from bot.store.sql import SqlStore
from tests.helpers.oncall import first_failure, oncall_on
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OPS, OTHER = "C0001", "C0002"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    slack: SlackStandIn
    store: SqlStore
    oncall: OnCall
    clock: Clock
    path: Path

    @property
    def poster(self) -> SlackPoster:
        return self.oncall.poster

    def outbox(self) -> Outbox:
        """A fresh outbox: what a restarted bot has."""
        return Outbox(self.oncall, clock=self.clock)

    async def record(self, action: triage.Action, facts: triage.PollFacts) -> None:
        outcome = await Delivery(self.store, self.oncall).carry_out(action, facts)
        assert not outcome.failed

    def posted(self, channel: str = OPS) -> list[dict[str, Any]]:
        return [c.params for c in self.slack.calls_to("chat.postMessage", ok=True)
                if c.params.get("channel") == channel]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    database = tmp_path / "outbox.db"
    async with SlackStandIn() as slack, oncall_on(slack, database) as oncall:
        yield World(slack, oncall.store, oncall, Clock(), database)


def notice_action(*, channel: str = OPS, runs: int = 1) -> tuple[triage.OpenIncident, triage.PollFacts]:
    return first_failure(*(_run(minutes) for minutes in range(10, 10 + 10 * runs, 10)),
                         channel=channel, now=NOW)


def _run(minutes_ago: float) -> Run:
    from tests.notices.test_deliver import failed_run
    return failed_run(minutes_ago)


async def post_then_die(world: World) -> posts.OutboxEntry:
    """The bot started the attempt and Slack took the post; it died before recording it."""
    [entry] = [e for e in await world.store.pending_posts() if e.kind == posts.NOTICE]
    await world.store.start_post(entry.id, datetime.now(UTC))
    await world.poster.post(entry.channel_id, entry.message, key=entry.key)
    return entry


# -- crashes -------------------------------------------------------------------------------


async def test_killed_between_recording_and_posting_the_post_is_made_on_restart(world: World) -> None:
    action, facts = notice_action()
    await world.record(action, facts)  # ... and the bot dies before any post
    assert world.posted() == []

    sent = await world.outbox().deliver()
    assert sent.delivered["notice"] == 1
    [incident] = await world.store.open_incidents()
    assert incident.message_ts == world.slack.messages(OPS)[0]["ts"]
    assert await world.store.pending_posts() == []


async def test_killed_between_posting_and_recording_the_post_is_found_not_made_again(
        world: World) -> None:
    action, facts = notice_action()
    await world.record(action, facts)
    await post_then_die(world)

    sent = await world.outbox().deliver()
    assert (sent.found_in_history, sum(sent.delivered.values())) == (1, 1)
    [message] = world.slack.messages(OPS)
    assert message["metadata"]["event_payload"]["key"].startswith("notice:")
    [incident] = await world.store.open_incidents()
    assert incident.message_ts == message["ts"]
    assert len(world.posted()) == 1


async def test_an_attempt_slack_never_got_is_posted_after_looking(world: World) -> None:
    action, facts = notice_action()
    await world.record(action, facts)
    [entry] = await world.store.pending_posts()
    await world.store.start_post(entry.id, datetime.now(UTC))  # died before the request left

    sent = await world.outbox().deliver()
    assert (sent.found_in_history, sent.delivered["notice"]) == (0, 1)
    assert len(world.slack.calls_to("conversations.history")) == 1
    assert len(world.slack.messages(OPS)) == 1


async def test_a_timeout_after_slack_took_the_post_does_not_post_it_twice(world: World) -> None:
    action, facts = notice_action()
    await world.record(action, facts)
    original = world.poster.post

    async def post_but_time_out(*args: Any, **kwargs: Any) -> str:
        await original(*args, **kwargs)
        raise SlackUnavailable("TimeoutError")  # the answer came after the bot's timeout

    world.poster.post = post_but_time_out  # type: ignore[method-assign]
    outbox = world.outbox()
    assert (await outbox.deliver()).deferred == 1
    world.poster.post = original  # type: ignore[method-assign]
    world.clock.now += timedelta(minutes=5)
    sent = await outbox.deliver()
    assert sent.found_in_history == 1
    assert len(world.slack.messages(OPS)) == 1


async def test_without_the_history_scope_a_post_of_unknown_fate_is_made_again(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.slack.scopes = ["commands", "chat:write", "chat:write.public"]
    action, facts = notice_action()
    await world.record(action, facts)
    await post_then_die(world)

    with caplog.at_level(logging.WARNING):
        sent = await world.outbox().deliver()
    assert sent.delivered["notice"] == 1
    assert len(world.slack.messages(OPS)) == 2  # today's behaviour, and said so
    assert "channels:history" in caplog.text and "twice" in caplog.text


async def test_the_thread_list_of_a_digest_survives_a_crash_after_the_digest(world: World) -> None:
    action, facts = notice_action(runs=3)
    await world.record(action, facts)
    parent = await post_then_die(world)

    sent = await world.outbox().deliver()
    assert (sent.found_in_history, sent.delivered["digest_list"]) == (1, 1)
    [notice] = world.slack.messages(OPS)
    [listing] = world.slack.replies(OPS, notice["ts"])
    assert listing["metadata"]["event_payload"]["key"].startswith("digest_list:")
    assert all(run.id in json.dumps(listing) for run in action.runs)
    assert parent.ref != notice["ts"]


async def test_a_thread_reply_of_unknown_fate_is_looked_for_in_its_thread(world: World) -> None:
    action, facts = notice_action(runs=2)
    await world.record(action, facts)
    outbox = world.outbox()
    original = world.poster.post

    async def reply_but_time_out(channel: str, message: Message, **kwargs: Any) -> str:
        ts = await original(channel, message, **kwargs)
        if kwargs.get("thread_ts"):
            raise SlackUnavailable("ServerDisconnectedError")
        return ts

    world.poster.post = reply_but_time_out  # type: ignore[method-assign]
    await outbox.deliver()
    world.poster.post = original  # type: ignore[method-assign]
    world.clock.now += timedelta(minutes=5)
    sent = await world.outbox().deliver()
    assert sent.found_in_history == 1
    assert len(world.slack.calls_to("conversations.replies")) == 1
    [notice] = world.slack.messages(OPS)
    assert len(world.slack.replies(OPS, notice["ts"])) == 1


async def test_a_locked_database_after_slack_took_the_post_is_waited_out(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 50)
    store = SqlStore(f"sqlite+aiosqlite:///{world.path}")  # connects with the short timeout
    await store.open()
    oncall = OnCall(store, world.poster)
    action, facts = notice_action()
    await Delivery(store, oncall).carry_out(action, facts)
    locker = sqlite3.connect(world.path, isolation_level=None, check_same_thread=False)
    original = world.poster.post

    async def post_then_lock(*args: Any, **kwargs: Any) -> str:
        ts = await original(*args, **kwargs)
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database from now on
        return ts

    world.poster.post = post_then_lock  # type: ignore[method-assign]
    outbox = Outbox(oncall, clock=world.clock)
    delivering = asyncio.create_task(outbox.deliver())
    await until(lambda: outbox.record_failures >= 2, "the recording to fail twice")
    locker.execute("COMMIT")
    sent = await delivering
    locker.close()
    assert sent.delivered["notice"] == 1
    assert len(world.slack.messages(OPS)) == 1
    assert await store.pending_posts() == []
    [incident] = await store.open_incidents()
    assert incident.message_ts == world.slack.messages(OPS)[0]["ts"]
    await store.close()


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_a_channel_refused_for_good_fails_the_entry_and_its_followers(world: World,
                                                                            error: str) -> None:
    action, facts = notice_action(runs=3)
    await world.record(action, facts)
    world.slack.fail_next("chat.postMessage", status=200, error=error, retry_after=None)
    sent = await world.outbox().deliver()
    assert (sent.failed, sum(sent.delivered.values())) == (2, 0)  # the notice and its list
    assert await world.store.pending_posts() == []
    assert await world.store.open_incidents() == []  # never to be posted: not followed
    assert await world.store.announced(r.id for r in action.runs) == {(OPS, r.id) for r in action.runs}
    assert (await world.outbox().deliver()).failed == 0


@pytest.mark.parametrize("fault", ["internal_error", "http_500", "http_429"])
async def test_a_transient_refusal_is_tried_again_with_backoff(world: World, fault: str) -> None:
    action, facts = notice_action()
    await world.record(action, facts)
    if fault == "http_429":
        world.slack.fail_next("chat.postMessage", status=429, retry_after=30)
    elif fault == "http_500":
        world.slack.fail_next_html("chat.postMessage", status=500)
    else:
        world.slack.fail_next("chat.postMessage", status=200, error=fault, retry_after=None)
    outbox = world.outbox()
    assert (await outbox.deliver()).deferred == 1
    assert (await outbox.deliver()).deferred == 0  # not before its time
    assert world.slack.messages(OPS) == []
    world.clock.now += timedelta(minutes=1)
    assert (await outbox.deliver()).delivered["notice"] == 1
    assert len(world.slack.messages(OPS)) == 1


# -- channels apart ------------------------------------------------------------------------


async def test_a_rate_limited_channel_holds_up_no_other(world: World) -> None:
    for channel in (OPS, OTHER):
        action, facts = notice_action(channel=channel)
        await world.record(action, facts)
    world.slack.fail_next("chat.postMessage", status=429, retry_after=2, channel=OPS)
    waiting = asyncio.Event()
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await release.wait()

    outbox = Outbox(world.oncall, clock=world.clock, sleep=sleep)
    delivering = asyncio.create_task(outbox.deliver())
    await until(lambda: waiting.is_set() and world.slack.messages(OTHER),
                "the other channel's notice while the first waits out its Retry-After")
    assert world.slack.messages(OPS) == []
    release.set()
    sent = await delivering
    assert sent.delivered["notice"] == 2
    assert len(world.slack.messages(OPS)) == len(world.slack.messages(OTHER)) == 1


async def test_order_is_kept_within_a_channel(world: World) -> None:
    first, facts = notice_action(runs=3)
    await world.record(first, facts)
    await world.outbox().deliver()
    [notice] = world.slack.messages(OPS)
    assert [c.params.get("thread_ts") for c in world.slack.calls_to("chat.postMessage")] == [
        None, notice["ts"]]


async def test_the_same_news_recorded_twice_is_one_entry(world: World) -> None:
    entry = posts.entry(posts.NOTICE, OPS, Message(text="x"), "run-1")
    other = posts.entry(posts.NOTICE, OPS, Message(text="y"), "run-1")  # the same news
    await world.store.enqueue([entry, entry], NOW)
    await world.store.enqueue([other], NOW)
    [stored] = await world.store.pending_posts()
    assert (stored.key, stored.message.text) == (entry.key, "x")
