"""Slack is slow, busy or down: rate limits in one channel, load balancer pages, a failed
redraw, envelopes nobody listens to."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench.hostile.cases import case, failure
from bench.hostile.census import Observation
from bench.hostile.world import OPS, OTHER, PROMPT, World
from bot.slack.actions import ACTION_ACK
from bot.slack.socket_mode import AckingSocketModeHandler
from tests.helpers.bot_process import APP_TOKEN
from tests.standins.slack import APP_ID, TEAM_ID

# -- one channel rate-limited ------------------------------------------------------------


async def one_channel_limited(seen: Observation, fault: Callable[[World], None], what: str,
                              hold_up: float) -> None:
    """OPS and OTHER both get a failure; Slack refuses OPS's posts (`fault`): OTHER's
    notice is posted promptly (before `hold_up` seconds), OPS's once Slack takes it."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001", OPS), "OPS's subscription was confirmed")
        seen.check(await world.subscribe("site:1002", OTHER), "OTHER's subscription was confirmed")
        await world.poll()
        fault(world)
        held, free = failure(1001), failure(1002)
        world.cde.add_run(held)
        world.cde.add_run(free)
        seen.tried(2)
        seen.expected.extend([held["id"], free["id"]])
        started = time.monotonic()
        polling = asyncio.create_task(world.poll())
        told = await world.wait(lambda: bool(world.told([free["id"]], OTHER)), timeout=PROMPT + hold_up)
        waited = time.monotonic() - started
        seen.check(told and waited < hold_up,
                   f"OTHER waited {waited:.1f} s behind OPS's {what} (at most {hold_up:.0f} s allowed)")
        await polling
        await world.poll_until(lambda: bool(world.told([held["id"]], OPS)), polls=6, timeout=hold_up + 4)
        await world.poll()
        world.count_told([held["id"]], OPS)
        world.count_told([free["id"]], OTHER)
        world.finish()


@case("slack", "429-in-one-channel")
async def rate_limited_channel(seen: Observation, quick: bool) -> None:
    """429s with Retry-After: 2 in one channel: another channel is told at once."""
    times = 2 if quick else 4
    await one_channel_limited(
        seen, lambda w: w.slack.fail_next("chat.postMessage", times=times, retry_after=2, channel=OPS),
        "429s", hold_up=1.5)


@case("slack", "503-in-one-channel")
async def outage_in_channel(seen: Observation, quick: bool) -> None:
    """One channel's posts answered 503 (a text/plain page): another is told at once."""
    await one_channel_limited(
        seen, lambda w: w.slack.fail_next("chat.postMessage", times=3, status=503,
                                          retry_after=None, error="service_unavailable", channel=OPS),
        "503s", hold_up=1.5)


# -- error pages -------------------------------------------------------------------------


async def post_through(seen: Observation, fault: Callable[[World], None]) -> None:
    """A failure whose first post(s) Slack answers with `fault`: told, once, no crash."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        fault(world)
        run = failure()
        world.cde.add_run(run)
        seen.tried()
        seen.expected.append(run["id"])
        await world.poll_until(lambda: bool(world.told([run["id"]])), polls=6, timeout=4)
        await world.poll()
        world.count_told([run["id"]])
        world.finish()


@case("slack", "text-plain-503")
async def text_plain_503(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered by a load balancer's text/plain 503."""
    await post_through(seen, lambda w: w.slack.fail_next_plain("chat.postMessage"))


@case("slack", "text-plain-502-twice")
async def text_plain_502(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered by two text/plain 502s."""
    await post_through(seen, lambda w: w.slack.fail_next_plain("chat.postMessage", times=2, status=502,
                                                               body="Bad Gateway"))


@case("slack", "html-500")
async def html_500(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered by an HTML 500 page."""
    await post_through(seen, lambda w: w.slack.fail_next_html("chat.postMessage"))


@case("slack", "json-500-internal-error")
async def json_500(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered 500 `{"ok": false, "error": "internal_error"}`."""
    await post_through(seen, lambda w: w.slack.fail_next("chat.postMessage", status=500, retry_after=None,
                                                         error="internal_error"))


@case("slack", "429-without-retry-after")
async def rate_limited_no_header(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered 429 without a Retry-After header."""
    await post_through(seen, lambda w: w.slack.fail_next("chat.postMessage", retry_after=None))


@case("slack", "empty-200")
async def empty_200(seen: Observation, quick: bool) -> None:
    """chat.postMessage answered 200 with an empty text/plain body (a proxy's)."""
    await post_through(seen, lambda w: w.slack.fail_next_plain("chat.postMessage", status=200, body=""))


# -- Acknowledge when chat.update fails ---------------------------------------------------


async def acknowledge_failing_update(seen: Observation, fault: Callable[[World], None]) -> None:
    """A notice; the next chat.update fails (`fault`) as someone clicks Acknowledge: the
    clicker is told, and the acknowledgement shows on the next redraw."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        run = failure()
        world.cde.add_run(run)
        seen.expected.append(run["id"])
        await world.poll_until(lambda: bool(world.told([run["id"]])), polls=4)
        notices = [m for m in world.top_level(OPS) if run["id"] in str(m)]
        if not seen.check(bool(notices), "the notice was posted"):
            world.finish()
            return
        notice: dict[str, Any] = notices[0]
        fault(world)
        seen.tried()
        answer, url = await world.click(ACTION_ACK, notice, user="U0002")
        seen.check(answer.status == 200, f"the click was acked (got {answer.status})")

        def acknowledged() -> bool:
            shown = world.slack.message(OPS, notice["ts"])
            return shown is not None and "U0002" in str(shown)

        # Slack's client may sit out a short Retry-After itself: then the update went through.
        seen.check(await world.wait(lambda: bool(world.slack.responses(url)) or acknowledged(), timeout=5),
                   "the clicker was told the message could not be updated (or it was)")

        # The next redraw: the same connector fails again, and the notice is drawn anew.
        world.cde.add_run(failure(connector_id=run["connector-id"]))
        seen.check(await world.poll_until(acknowledged, polls=3, timeout=3),
                   "the acknowledgement showed on the next redraw")
        world.count_told([run["id"]])
        world.finish()


@case("slack", "ack-update-500")
async def ack_update_500(seen: Observation, quick: bool) -> None:
    """chat.update answers 500 as Acknowledge is clicked."""
    await acknowledge_failing_update(seen, lambda w: w.slack.fail_next(
        "chat.update", status=500, retry_after=None, error="internal_error"))


@case("slack", "ack-update-429")
async def ack_update_429(seen: Observation, quick: bool) -> None:
    """chat.update is rate-limited (429, Retry-After: 1) as Acknowledge is clicked."""
    await acknowledge_failing_update(seen, lambda w: w.slack.fail_next("chat.update", retry_after=1))


@case("slack", "ack-update-text-plain-503")
async def ack_update_plain(seen: Observation, quick: bool) -> None:
    """chat.update answered by a text/plain 503 as Acknowledge is clicked."""
    await acknowledge_failing_update(seen, lambda w: w.slack.fail_next_plain("chat.update"))


# -- Socket Mode envelopes nobody listens to ---------------------------------------------

TEAM = {"team_id": TEAM_ID, "api_app_id": APP_ID}
USER = {"id": "U0001", "username": "alice", "team_id": TEAM_ID}
ENVELOPES: list[tuple[str, dict[str, Any]]] = [
    ("events_api", {**TEAM, "type": "event_callback", "event_id": "Ev1", "event_time": 1,
                    "event": {"type": "app_mention", "text": "<@U0BOT> hi", "user": "U0001",
                              "channel": OPS, "ts": "1.000001"}}),
    ("events_api", {**TEAM, "type": "event_callback", "event_id": "Ev2", "event_time": 1,
                    "event": {"type": "reaction_added", "user": "U0001", "reaction": "eyes",
                              "item": {"type": "message", "channel": OPS, "ts": "1.000001"}}}),
    ("interactive", {"type": "shortcut", "callback_id": "unknown_shortcut", "trigger_id": "1.2.x",
                     "team": {"id": TEAM_ID}, "user": USER, "api_app_id": APP_ID}),
    ("interactive", {"type": "message_action", "callback_id": "unknown_action", "trigger_id": "1.2.x",
                     "team": {"id": TEAM_ID}, "user": USER, "api_app_id": APP_ID,
                     "channel": {"id": OPS}, "message": {"ts": "1.000001", "text": "hi"}}),
    ("interactive", {"type": "view_submission", "team": {"id": TEAM_ID}, "user": USER,
                     "api_app_id": APP_ID,
                     "view": {"id": "V1", "type": "modal", "callback_id": "unknown_view",
                              "state": {"values": {}}, "team_id": TEAM_ID, "app_id": APP_ID}}),
    ("slash_commands", {"command": "/other", "text": "", "user_id": "U0001", "channel_id": OPS,
                        "team_id": TEAM_ID, "api_app_id": APP_ID, "response_url": "", "trigger_id": "1.2.x"}),
    ("unknown_type", {"something": "new"}),
]


@case("slack", "socket-mode-unknown-envelopes")
async def unknown_envelopes(seen: Observation, quick: bool) -> None:
    """Envelopes no listener takes (events, shortcuts, an unknown type): each one acked."""
    async with World(seen, slack_app_token=APP_TOKEN) as world:
        assert world.bot is not None
        handler = AckingSocketModeHandler(world.bot.bot.app, APP_TOKEN, web_client=world.bot.bot.client)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        try:
            await world.slack.wait_connected()
            for kind, payload in ENVELOPES:
                seen.tried()
                try:
                    await world.slack.send_envelope(kind, payload, timeout=3.0)
                except AssertionError:
                    seen.failures.append(f"a {kind} envelope ({payload.get('type', '?')}) was never acked")
        finally:
            with contextlib.suppress(Exception):
                await handler.close_async()  # type: ignore[no-untyped-call]
        world.finish()
