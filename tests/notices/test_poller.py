"""Regression tests for the poller (`bot.notices.poller.Poller.poll_once`), in process.

Each test drives real parts end to end: the CDE stand-in (`SampleCdeApi`), the Slack
stand-in (`SlackStandIn`), a `SqlStore` on a SQLite file, and the real `CdeClient`,
`SlackPoster` and `OnCall`; only the clock is fake. They come from a review of the
poller: partly failed actions, clicks during a poll, repeats and digests, runs with
missing times, mutes, refused messages, API outages, and the API cost of a poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.demo.api import Fault
from bot.demo.runs import make_run
from bot.notices.models import Incident, NoticeFilter, NoticeRef, Subscription
from bot.notices.oncall import Acknowledged
from bot.slack.message import Message
from tests.helpers.world import WithoutTotal, World

OPS, OTHER, ADMIN = "C0001", "C0002", "C0ADMIN"
CONNECTOR = "019e16f3-bf9c-7485-b60b-ff3407921934"
OTHER_CONNECTORS = (
    "019e16f3-bfa8-7390-9e63-3354f9aa2939",
    "019e16f3-c001-7000-8000-000000000001",
    "019e16f3-c001-7000-8000-000000000002",
)


# ------------------------------------------------------------------------------ harness


def fail_threaded_posts_once(world: World, error: str = "fatal_error") -> None:
    """The next thread reply the poller posts is refused by Slack (parents are not)."""
    original = world.poster.post
    state = {"failed": False}

    async def post(channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> str:
        if thread_ts and not state["failed"]:
            state["failed"] = True
            world.slack.fail_next("chat.postMessage", status=200, error=error, retry_after=None)
        return await original(channel, message, thread_ts=thread_ts, key=key)

    world.poster.post = post


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages]


def blocks_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False)


def mentions(message: dict[str, Any], *needles: str) -> bool:
    body = blocks_text(message)
    return all(needle in body for needle in needles)


# ----------------------------------------------------------- (1) partly failed actions


async def test_a_failed_thread_listing_after_a_notice_is_posted_once_later(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    world.fail(20)
    fail_threaded_posts_once(world)
    report = await world.poll()
    assert (report.posted, report.notices["notice"], report.post_errors) == (1, 1, 1)

    report = await world.poll()
    assert (report.posted, report.notices["digest_list"], dict(report.actions)) == (1, 1, {})
    [notice] = world.top()
    assert len(world.thread(notice["ts"])) == 1  # the listing, from the outbox
    report = await world.poll()
    assert report.posted == 0
    incident = await world.incident()
    assert (incident.message_ts, incident.failures) == (notice["ts"], 2)

    world.fail(0)
    report = await world.poll()
    assert report.notices["repeat"] == 1
    assert len(world.top()) == 1
    assert texts(world.thread(notice["ts"]))[1:] == [f"Failed again (3rd time): connector {CONNECTOR} "
                                                     "v1.0.1 on Site 1 (1001)"]
    assert (await world.incident()).failures == 3


async def test_a_refused_repeat_reply_is_posted_once_next_poll(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    [notice] = world.top()
    world.fail(10)
    fail_threaded_posts_once(world)
    report = await world.poll()
    assert (report.posted, report.post_errors) == (0, 1)
    # Recorded with its reply, which the outbox tries again.
    assert (await world.incident()).failures == 2

    report = await world.poll()
    assert report.notices["repeat"] == 1
    report = await world.poll()
    assert report.posted == 0
    assert len(world.thread(notice["ts"])) == 1
    assert (await world.incident()).failures == 2


def _slack_update_error(world: World) -> None:
    world.slack.fail_next("chat.update", status=200, error="fatal_error", retry_after=None)


def _update_timeout(world: World) -> None:
    original = world.poster.update

    async def update(*args: Any, **kwargs: Any) -> None:
        world.poster.update = original
        raise TimeoutError  # what a chat.update that never answers raises

    world.poster.update = update


def _store_error_on_redraw(world: World) -> None:
    original = world.store.incident

    async def incident(incident_id: int) -> Incident | None:
        world.store.incident = original  # type: ignore[method-assign]
        raise RuntimeError("database is locked")

    world.store.incident = incident  # type: ignore[method-assign]


@pytest.mark.parametrize("breakage", [_slack_update_error, _update_timeout, _store_error_on_redraw],
                         ids=["slack-error", "timeout", "store-error"])
async def test_a_failed_redraw_after_a_repeat_neither_repeats_it_nor_counts_it_twice(
    world: World, breakage: Callable[[World], None]
) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    [notice] = world.top()
    world.fail(20)
    breakage(world)
    report = await world.poll()  # must not raise
    assert report.notices["repeat"] == 1

    report = await world.poll()
    assert (report.posted, dict(report.actions)) == (0, {})
    assert len(world.top()) == 1
    assert len(world.thread(notice["ts"])) == 1
    assert (await world.incident()).failures == 2

    # The next change draws the parent again, with every failure counted.
    world.fail(0)
    await world.poll()
    assert len(world.thread(notice["ts"])) == 2
    assert world.parent(notice["ts"])["text"].endswith("(3rd time)")
    assert (await world.incident()).failures == 3


async def test_a_notice_whose_state_could_not_be_saved_is_not_counted_twice(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    original = world.store.save_incident

    async def save_incident(*args: Any, **kwargs: Any) -> Incident:
        world.store.save_incident = original  # type: ignore[method-assign]
        raise RuntimeError("disk I/O error")

    world.store.save_incident = save_incident  # type: ignore[method-assign]
    report = await world.poll()  # must not raise
    assert report.post_errors == 1
    assert await world.store.open_incidents() == []

    # Nothing was recorded, so the failure is told again (at least once), and counted once.
    await world.poll()
    incident = await world.incident()
    assert incident.failures == 1
    assert world.parent(incident.message_ts)["text"].startswith("Failed: ")
    await world.poll()
    assert await world.store.open_incidents() == [incident]


async def test_an_exception_in_one_action_does_not_stop_the_others(world: World) -> None:
    await world.subscribe(OPS, site_id=1001)
    await world.subscribe(OTHER, site_id=1002)
    world.fail(20, site_id=1001)
    world.fail(10, site_id=1002)
    original = world.poster.post

    async def post(channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> str:
        if channel == OPS:
            raise RuntimeError("connection reset")
        return await original(channel, message, thread_ts=thread_ts, key=key)

    world.poster.post = post
    report = await world.poll()
    assert (report.posted, report.post_errors) == (1, 1)
    assert len(world.top(OTHER)) == 1
    assert world.top(OPS) == []

    world.poster.post = original
    report = await world.poll()
    assert report.posted == 1
    assert (len(world.top(OPS)), len(world.top(OTHER))) == (1, 1)


async def test_a_digest_whose_state_could_only_partly_be_saved_is_not_told_again(world: World) -> None:
    await world.subscribe()
    for i in range(7):
        world.fail(30 - i, site_id=1002, connector_id=str(uuid.UUID(int=i + 1, version=4)))
    original = world.store.save_incident
    saves = 0

    async def save_incident(*args: Any, **kwargs: Any) -> Incident:
        nonlocal saves
        saves += 1
        if saves == 2:
            raise RuntimeError("disk I/O error")
        return await original(*args, **kwargs)

    world.store.save_incident = save_incident  # type: ignore[method-assign]
    report = await world.poll()
    assert report.notices["digest"] == 1
    world.store.save_incident = original  # type: ignore[method-assign]

    await world.poll()
    assert texts(world.top()) == ["7 runs failed across 7 site and connector pairs"]


# ----------------------------------------------------------------- (2) clicks mid-poll


async def test_an_acknowledge_during_a_repeat_survives_the_poll(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    notice = await world.incident()
    world.fail(10)
    original = world.poster.post
    acknowledged: list[Incident] = []

    async def post(channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> str:
        ts = await original(channel, message, thread_ts=thread_ts, key=key)
        if thread_ts and not acknowledged:  # someone clicks while the repeat is handled
            taken = await world.oncall.acknowledge(NoticeRef(OPS, notice.message_ts), "U0002", world.clock())
            acknowledged.extend(taken.incidents)
        return ts

    world.poster.post = post
    await world.poll()
    assert [i.acknowledged_by for i in acknowledged] == ["U0002"]

    incident = await world.incident()
    assert (incident.acknowledged_by, incident.failures) == ("U0002", 2)
    parent = world.parent(notice.message_ts)
    assert mentions(parent, "Failed 2 times", "<@U0002> is on it")
    assert "Acknowledge" not in blocks_text(parent)


async def test_an_acknowledge_during_the_polls_redraw_is_shown(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    notice = await world.incident()
    world.fail(10)
    original = world.poster.update
    clicks: list[asyncio.Task[Acknowledged]] = []

    async def update(channel: str, ts: str, message: Message) -> None:
        if not clicks:  # the poll's redraw, drawn already: a click is handled before it is sent
            clicks.append(asyncio.create_task(
                world.oncall.acknowledge(NoticeRef(OPS, notice.message_ts), "U0002", world.clock())))
            # All of it, unless the click has to wait for this redraw (then it draws after).
            await asyncio.wait(clicks, timeout=1)
            stored = await world.store.incident(notice.id)
            assert stored is not None and stored.acknowledged_by == "U0002"
        await original(channel, ts, message)

    world.poster.update = update
    await world.poll()
    await asyncio.wait_for(clicks[0], 5)

    assert (await world.incident()).acknowledged_by == "U0002"
    assert mentions(world.parent(notice.message_ts), "Failed 2 times", "<@U0002> is on it")


# ------------------------------------------------------------------ (3) recovery scans


async def test_a_refused_recovery_scan_holds_up_no_notice(world: World,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    await world.subscribe()
    # Not a positive id: the API answers 400 to a scan filtered on this site.
    world.fail(30, site_id=0)
    report = await world.poll()
    assert (report.outcome, report.posted) == ("ok", 1)

    world.fail(10, site_id=1002)
    report = await world.poll()
    assert (report.outcome, report.posted) == ("ok", 1)
    world.fail(0, site_id=1003)
    report = await world.poll()
    assert (report.outcome, report.posted) == ("ok", 1)
    assert len(world.top()) == 3
    assert "could not look for recoveries on site 0" in caplog.text


# ---------------------------------------------------------------- (4) repeats, digests


async def test_many_repeats_of_one_open_incident_are_one_thread_reply_not_a_digest(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    runs = [world.fail(20 - i) for i in range(6)]
    report = await world.poll()
    assert dict(report.actions) == {"Repeat": 1}
    assert (report.notices["repeat"], report.notices["digest"]) == (1, 0)

    [notice] = world.top()
    [reply] = world.thread(notice["ts"])
    assert reply["text"].startswith("Failed again 6 more times")
    assert mentions(reply, "7 failures", *(run["id"] for run in runs))
    assert notice["text"].endswith("(7th time)")
    assert (await world.incident()).failures == 7


async def test_a_digest_counts_first_failures_only_and_repeats_go_to_their_thread(world: World) -> None:
    await world.subscribe()
    world.fail(40)
    await world.poll()
    [notice] = world.top()
    repeats = [world.fail(30), world.fail(29)]
    firsts = [world.fail(20 - i, site_id=1002, connector_id=OTHER_CONNECTORS[i % 3]) for i in range(7)]
    report = await world.poll()
    assert dict(report.actions) == {"Repeat": 1, "Digest": 1}

    notice_now, digest = world.top()
    assert digest["text"] == "7 runs failed across 3 site and connector pairs"
    listed = "".join(blocks_text(reply) for reply in world.thread(digest["ts"]))
    assert all(run["id"] in listed for run in firsts)
    assert not any(run["id"] in listed for run in repeats)

    [reply] = world.thread(notice["ts"])
    assert reply["text"].startswith("Failed again 2 more times")
    assert mentions(reply, *(run["id"] for run in repeats))
    assert notice_now["text"].endswith("(3rd time)")
    counts = sorted(i.failures for i in await world.store.open_incidents())
    assert counts == [2, 2, 3, 3]


# ---------------------------------------------------------------- (5), (6) missing times


async def test_a_long_run_without_finished_at_failing_after_the_subscription_is_told_once(
    world: World,
) -> None:
    # Subscribed an hour ago; the run started two hours ago and the API gives no finished-at.
    await world.subscribe(site_id=1001)
    run = make_run(state="failed", site_id=1001, started_at=world.clock() - timedelta(hours=2),
                   took=timedelta(hours=2))
    run["finished-at"] = None
    world.cde.add_run(run)
    report = await world.poll()
    assert report.posted == 1
    for _ in range(3):
        assert (await world.poll(minutes=10)).posted == 0
    [notice] = world.top()
    assert world.thread(notice["ts"]) == []


@pytest.mark.parametrize("missing", [("created-at",), ("created-at", "finished-at")],
                         ids=["created-at", "created-at-and-finished-at"])
async def test_a_run_without_created_at_is_not_told_again_after_pruning(
    world: World, missing: tuple[str, ...]
) -> None:
    await world.subscribe(site_id=1001)
    run = make_run(state="failed", site_id=1001, started_at=world.clock() - timedelta(minutes=10))
    for name in missing:
        run[name] = None
    world.cde.add_run(run)
    assert (await world.poll(minutes=0)).posted == 1
    for hours in (12, 12, 12, 13, 0.1, 24):  # 73 h in all: past the 48 h of pruning
        report = await world.poll(minutes=hours * 60)
        assert report.posted == 0, f"told again after {hours} more hours"
    [notice] = world.top()
    assert world.thread(notice["ts"]) == []
    assert notice["text"].startswith("Closed: ")  # expired after a window without failures


# ---------------------------------------------------------------------------- (7) mutes


async def _muted_notice(world: World, failures_while_muted: int) -> Incident:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    notice = await world.incident()
    await world.oncall.mute(NoticeRef(OPS, notice.message_ts), "U0002", 1, world.clock())
    assert mentions(world.parent(notice.message_ts), "Muted by <@U0002>")
    for _ in range(failures_while_muted):
        world.fail(0)
        report = await world.poll()
        assert (report.posted, report.suppressed) == (0, 1)
    return notice


async def test_the_end_of_a_mute_is_told_in_the_thread_with_what_it_held_back(world: World) -> None:
    notice = await _muted_notice(world, 2)
    await world.poll(minutes=61)
    replies = texts(world.thread(notice.message_ts))
    assert replies == ["Muted for 1 hour", "Mute ended: 2 failures were counted while it lasted"]
    parent = world.parent(notice.message_ts)
    assert "Muted by" not in blocks_text(parent)
    assert mentions(parent, "Failed 3 times", "(2 while muted)", '"Mute…"')

    await world.poll()
    assert len(world.thread(notice.message_ts)) == 2  # told once
    world.fail(0)  # and failures are posted again
    assert (await world.poll()).notices["repeat"] == 1


async def test_a_second_mute_tells_only_what_it_held_back(world: World) -> None:
    notice = await _muted_notice(world, 2)
    await world.poll(minutes=61)
    await world.oncall.mute(NoticeRef(OPS, notice.message_ts), "U0002", 1, world.clock())
    world.fail(0)
    assert (await world.poll()).suppressed == 1
    await world.poll(minutes=61)
    assert texts(world.thread(notice.message_ts))[-1] == (
        "Mute ended: 1 failure was counted while it lasted")


async def test_the_end_of_a_mute_is_told_once_when_the_redraw_times_out(world: World) -> None:
    notice = await _muted_notice(world, 0)
    _update_timeout(world)
    world.clock.advance(minutes=61)
    try:
        await world.poller.poll_once()
    finally:
        await world.poll()
        ended = [t for t in texts(world.thread(notice.message_ts)) if t.startswith("Mute ended")]
        assert len(ended) == 1


# -------------------------------------------------------------- (10) messages refused


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_too_long"])
async def test_a_notice_whose_blocks_are_refused_is_posted_as_text_and_recorded(
    world: World, error: str
) -> None:
    await world.subscribe(site_id=1001)
    world.fail(10)
    world.slack.fail_next("chat.postMessage", status=200, error=error, retry_after=None)
    report = await world.poll()
    assert (report.posted, report.post_errors) == (1, 0)
    [notice] = world.top()
    assert notice["text"].startswith(f"Failed: connector {CONNECTOR}")
    assert "blocks" not in notice
    assert (await world.incident()).message_ts == notice["ts"]

    calls = world.posts()
    for _ in range(2):
        assert (await world.poll()).posted == 0
    assert world.posts() == calls


@pytest.mark.parametrize(("error", "times"), [("invalid_blocks", 2), ("channel_not_found", 1)])
async def test_a_notice_slack_will_never_take_is_recorded_as_told(world: World, error: str,
                                                                   times: int) -> None:
    await world.subscribe(site_id=1001)
    world.fail(10)
    world.slack.fail_next("chat.postMessage", times=times, status=200, error=error, retry_after=None)
    report = await world.poll()
    assert (report.posted, report.post_errors) == (0, 1)
    assert world.top() == []

    calls = world.posts()
    for _ in range(2):
        report = await world.poll()
        assert (report.posted, report.post_errors) == (0, 0)
    assert world.posts() == calls


# ------------------------------------------------------------------ (11) API outages


async def test_an_outage_is_told_once_and_its_end_once(make_world: Callable[..., Awaitable[World]],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    world = await make_world(admin_channel=ADMIN)
    await world.subscribe(site_id=1001)
    await world.poll()
    world.api_down()
    for _ in range(9):
        assert (await world.poll()).outcome == "api_error"
    assert world.top(ADMIN) == []
    for _ in range(5):
        await world.poll()
    assert texts(world.top(ADMIN)) == ["The CDE API has been unreachable for 10m 00s"]
    errors = [r for r in caplog.records if r.name == "bot.notices.poller" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unreachable since" in errors[0].getMessage()

    world.api_up()
    world.fail(0)
    report = await world.poll()
    assert (report.outcome, report.posted, report.notices["admin"]) == ("ok", 1, 1)
    for _ in range(2):
        await world.poll()
    assert texts(world.top(ADMIN)) == ["The CDE API has been unreachable for 10m 00s",
                                       "The CDE API is reachable again after 14m 00s"]


async def test_no_all_clear_while_the_poller_is_idle(make_world: Callable[..., Awaitable[World]]) -> None:
    world = await make_world(admin_channel=ADMIN)
    subscription = await world.subscribe(site_id=1001)
    world.api_down()
    for _ in range(12):
        await world.poll()
    assert len(world.top(ADMIN)) == 1

    # Nothing to tell: the failed runs are still scanned (to know what the bot has seen),
    # and that scan neither alerts nor gives the all-clear.
    await world.store.remove_subscription(OPS, subscription.id)
    for _ in range(3):
        assert (await world.poll()).outcome == "api_error"
    assert len(world.top(ADMIN)) == 1

    await world.subscribe(site_id=1001)
    assert (await world.poll()).outcome == "api_error"
    world.api_up()
    assert (await world.poll()).outcome == "ok"
    assert texts(world.top(ADMIN))[1:] == ["The CDE API is reachable again after 16m 00s"]


async def test_an_idle_poll_scans_failed_runs_once_and_tells_nothing(world: World) -> None:
    world.fail(3)
    report = await world.poll()
    assert (report.outcome, report.api_requests, report.failed_runs_seen) == ("idle", 1, 1)
    [request] = world.cde.requests_to("/runs")
    assert request.query["state"] == "failed"
    assert world.posts() == 0


async def subscribe_now(world: World, channel: str = OPS, **filters: Any) -> Subscription:
    made = await world.store.add_subscription(channel, NoticeFilter(**filters), "U0001",
                                              world.clock())
    assert made is not None
    return made


@pytest.mark.parametrize("cde_behind", [timedelta(0), timedelta(seconds=90), timedelta(hours=2)])
async def test_news_is_what_the_bot_had_not_seen_whatever_the_cde_clock(
    world: World, cde_behind: timedelta,
) -> None:
    """The CDE's times are off by `cde_behind`: a failure after the subscription looks older
    than it, one before it looks older still. Neither clock comparison decides."""
    world.fail(3 + cde_behind.total_seconds() / 60, run_id="run-before-1")
    await world.poll()  # an idle poll: the bot sees "run-before-1"
    await subscribe_now(world)
    world.clock.advance(seconds=5)
    world.fail(cde_behind.total_seconds() / 60, run_id="run-after-1")
    await world.poll()
    [notice] = world.top()
    assert "run-after-1" in json.dumps(notice) and "run-before-1" not in json.dumps(notice)
    await world.poll()
    assert len(world.top()) == 1


async def test_a_failure_seen_before_the_subscription_is_never_news_to_it(world: World) -> None:
    # The API's clock runs ahead: the old failure looks as if it happened after subscribing.
    world.fail(-30, run_id="run-seen-1")
    await world.poll()
    await subscribe_now(world)
    for _ in range(3):
        await world.poll()
    assert world.top() == []


async def test_a_subscription_before_any_scan_compares_the_failure_times(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    """No scan recorded yet (a new database): the CDE's failure time is all there is."""
    world = await make_world()
    world.fail(10, run_id="run-old-1")
    await subscribe_now(world)
    world.clock.advance(seconds=5)
    world.fail(0, run_id="run-new-1")
    await world.poll()
    [notice] = world.top()
    assert "run-new-1" in json.dumps(notice) and "run-old-1" not in json.dumps(notice)


async def test_an_idle_poll_refused_by_the_api_is_not_a_success(world: World) -> None:
    world.cde.token = "another-token"  # the bot's token is rejected (401)
    report = await world.poll()
    assert report.outcome == "api_error" and report.error is not None
    assert world.top(ADMIN) == []


async def test_no_all_clear_while_only_recovery_scans_run_and_fail(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    world = await make_world(admin_channel=ADMIN)
    subscription = await world.subscribe(site_id=1001)
    world.fail(10)
    await world.poll()
    assert len(await world.store.open_incidents()) == 1
    world.api_down()
    for _ in range(12):
        await world.poll()
    assert len(world.top(ADMIN)) == 1

    await world.store.remove_subscription(OPS, subscription.id)
    await world.poll()  # still down: the open incident's recovery scan fails
    assert texts(world.top(ADMIN)) == ["The CDE API has been unreachable for 10m 00s"]


async def test_a_failed_all_clear_is_posted_next_poll(make_world: Callable[..., Awaitable[World]]) -> None:
    world = await make_world(admin_channel=ADMIN)
    await world.subscribe(site_id=1001)
    world.api_down()
    for _ in range(12):
        await world.poll()
    world.api_up()
    world.slack.fail_next("chat.postMessage", status=200, error="fatal_error", retry_after=None)
    assert (await world.poll()).notices["admin"] == 0
    assert (await world.poll()).notices["admin"] == 1
    assert (await world.poll()).notices["admin"] == 0
    assert texts(world.top(ADMIN)) == ["The CDE API has been unreachable for 10m 00s",
                                       "The CDE API is reachable again after 13m 00s"]


async def test_a_timed_out_all_clear_holds_up_no_notice(make_world: Callable[..., Awaitable[World]]) -> None:
    world = await make_world(admin_channel=ADMIN)
    await world.subscribe(site_id=1001)
    world.api_down()
    for _ in range(12):
        await world.poll()
    world.api_up()
    world.fail(0)
    original = world.poster.post

    async def post(channel: str, message: Message, *, thread_ts: str | None = None) -> str:
        if channel == ADMIN:
            world.poster.post = original
            raise TimeoutError
        return await original(channel, message, thread_ts=thread_ts)

    world.poster.post = post
    try:
        report = await world.poller.poll_once()
    finally:
        world.poster.post = original
    assert report.posted == 1
    assert (await world.poll()).notices["admin"] == 1


# ------------------------------------------------------------- API cost and paging (12)


@pytest.mark.parametrize("subscriptions", [1, 50])
async def test_a_poll_costs_the_same_whatever_the_subscriptions_and_pages_to_a_late_failure(
    world: World, subscriptions: int
) -> None:
    for i in range(subscriptions):
        await world.subscribe(f"C{i:04d}", site_id=1001 + i)
    for i in range(250):
        world.fail(30 * 60 + i, site_id=5000)  # older than the window
    for i in range(150):
        world.fail(i, site_id=5000)
    # Created 20 h ago, failed a minute ago: listed after more than a page of newer failures.
    late = world.fail(1, took=timedelta(hours=20))
    report = await world.poll(minutes=0)
    # Two pages of failed runs, matched locally to every subscription; then one small scan
    # for the recovery of the one incident opened.
    assert [q.query for q in world.cde.requests_to("/runs")] == [
        {"state": "failed", "from": "0", "limit": "100"},
        {"state": "failed", "from": "100", "limit": "100"},
        {"state": "finished", "site-id": "1001", "from": "0", "limit": "100"},
    ]
    assert report.api_requests == 3
    [notice] = world.top("C0000")
    assert mentions(notice, late["id"])
    assert report.posted == 1


async def test_a_scan_without_metadata_total_pages_while_pages_are_full(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    world = await make_world(transport=WithoutTotal())
    await world.subscribe(site_id=1001)
    for i in range(250):
        world.fail(i, site_id=5000)
    late = world.fail(1, took=timedelta(hours=20))
    report = await world.poll(minutes=0)
    scans = [q.query["from"] for q in world.cde.requests_to("/runs") if q.query.get("state") == "failed"]
    assert scans == ["0", "100", "200"]
    assert report.failed_runs_seen == 251
    [notice] = world.top()
    assert mentions(notice, late["id"])


async def test_a_scan_cut_short_is_said_to_be_and_prunes_nothing(
    make_world: Callable[..., Awaitable[World]], caplog: pytest.LogCaptureFixture,
) -> None:
    world = await make_world(scan_max_pages=2)
    await world.subscribe(site_id=1001)
    for i in range(250):
        world.fail(i, site_id=5000)
    newest = world.fail(0)
    pruned: list[datetime] = []
    original = world.store.prune

    async def prune(before: datetime, keep: Any = ()) -> None:
        pruned.append(before)
        await original(before, keep)

    world.store.prune = prune  # type: ignore[method-assign]
    report = await world.poll(minutes=0)
    assert (report.api_requests, report.incomplete_scans, report.failed_runs_seen) == (3, 1, 200)
    [notice] = world.top()  # what was read is still told
    assert mentions(notice, newest["id"])
    assert pruned == []
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "bot.notices.poller" and r.levelno == logging.WARNING]
    assert any("stopped after 2 pages" in text for text in warnings)
    assert any("nothing pruned" in text for text in warnings)


async def test_a_complete_poll_reads_the_open_incidents_once(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.fail(30)
    await world.poll()
    world.fail(10)
    reads = 0
    original = world.store.open_incidents

    async def open_incidents(channel_id: str | None = None) -> list[Incident]:
        nonlocal reads
        reads += 1
        return await original(channel_id)

    world.store.open_incidents = open_incidents  # type: ignore[method-assign]
    report = await world.poll()
    assert (dict(report.actions), report.incomplete_scans, reads) == ({"Repeat": 1}, 0, 1)


# ----------------------------------------------------------- CDE_ALLOWED_SITES


async def test_failures_of_sites_outside_the_allowed_list_are_never_told(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    world = await make_world(allowed_sites=frozenset({1001}))
    await world.subscribe()  # every site: made before the list was set, or following all
    await world.subscribe(OTHER, site_id=1002)
    world.fail(20, site_id=1002)
    world.fail(10, site_id=1001)
    report = await world.poll()
    assert report.posted == 1
    [notice] = world.top()
    assert "1001" in notice["text"] and "1002" not in blocks_text(notice)
    assert world.top(OTHER) == []
    world.fail(5, site_id=1002)
    assert (await world.poll()).posted == 0
    assert [i.site_id for i in await world.store.open_incidents()] == [1001]


async def test_no_notice_goes_to_a_channel_outside_the_allowed_list(
    make_world: Callable[..., Awaitable[World]],
) -> None:
    world = await make_world(allowed_channels=frozenset({OPS}))
    await world.subscribe(OPS)
    await world.subscribe(OTHER)  # made before the list left this channel out
    world.fail(10)
    assert (await world.poll()).posted == 1
    assert len(world.top(OPS)) == 1 and world.top(OTHER) == []


async def test_redraw_turns_take_turns_and_leave_nothing_behind(world: World) -> None:
    inside: list[int] = []
    most = 0

    async def redraw(ts: str) -> None:
        nonlocal most
        async with world.oncall.redraw_turn(OPS, ts):
            inside.append(1)
            most = max(most, len(inside))
            await asyncio.sleep(0.01)
            inside.pop()

    await asyncio.gather(*(redraw("1.1") for _ in range(3)), redraw("2.2"))
    assert most == 2  # one per message at a time: "1.1" took turns beside "2.2"
    # A notice redrawn many times over a long life keeps no lock once no redraw waits.
    await world.subscribe(site_id=1001)
    for _ in range(5):
        world.fail(1)
        await world.poll()
    assert world.posts() >= 1 and world.oncall.redraws_under_way == 0


async def test_a_rate_limited_poll_says_how_long_the_api_asked_to_wait(world: World) -> None:
    await world.subscribe(site_id=1001)
    world.cde.fail_next(*(Fault(status=429, headers={"Retry-After": "30"},
                                body={"message": "Too many requests."}) for _ in range(3)))
    report = await world.poll()
    assert report.outcome == "api_error" and report.retry_after == 30.0
    world.api_up()
    assert (await world.poll()).retry_after is None


def finished_scans(world: World) -> list[dict[str, str]]:
    return [r.query for r in world.cde.requests_to("/runs") if r.query.get("state") == "finished"]


async def test_recovery_scans_cost_one_per_site_whatever_the_incidents(world: World) -> None:
    await world.subscribe()
    failed = [world.fail(30, site_id=1001 + i % 3, connector_id=str(uuid.uuid4())) for i in range(60)]
    await world.poll()
    assert len(await world.store.open_incidents(OPS)) == 60
    world.cde.reset()
    await world.poll()
    assert sorted(q["site-id"] for q in finished_scans(world)) == ["1001", "1002", "1003"]
    for run in failed[:5]:
        world.cde.add_run(make_run(state="finished", site_id=run["site-id"],
                                   connector_id=run["connector-id"], started_at=world.clock()))
    report = await world.poll()
    assert dict(report.actions).get("Recover") == 5
    assert len(await world.store.open_incidents(OPS)) == 55


async def test_more_sites_than_the_recovery_budget_share_one_scan(make_world: Any) -> None:
    world = await make_world(recovery_max_requests=4)
    await world.subscribe()
    failed = [world.fail(30, site_id=2000 + i, connector_id=str(uuid.uuid4())) for i in range(30)]
    await world.poll()
    for run in failed[-3:]:
        world.cde.add_run(make_run(state="finished", site_id=run["site-id"],
                                   connector_id=run["connector-id"], started_at=world.clock()))
    world.cde.reset()
    report = await world.poll()
    scans = finished_scans(world)
    assert scans == [{"state": "finished", "from": "0", "limit": "100"}]  # one, for all 30 sites
    assert dict(report.actions).get("Recover") == 3 and not report.cut_short
