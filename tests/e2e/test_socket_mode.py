"""End to end over Socket Mode: the real bot connects to the stand-in's WebSocket. The
tests share one bot process.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import APP_TOKEN, BotProcess, SharedBot
from tests.helpers.sample import EXTRA_FAILED, FAILED_RUN
from tests.standins.slack import SlackStandIn, block_kit_errors

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def slack(shared_slack: SlackStandIn) -> SlackStandIn:
    return shared_slack


@pytest.fixture
def cde(shared_cde: SampleCdeApi) -> SampleCdeApi:
    return shared_cde


@pytest.fixture
def socket_bot(shared_socket_bot: SharedBot) -> BotProcess:
    return shared_socket_bot.process


async def test_connects_with_the_app_token_through_slack_api_url(shared_socket_bot: SharedBot,
                                                                 slack: SlackStandIn) -> None:
    socket_bot = shared_socket_bot.process
    await slack.wait_connected()
    # Once at start-up to check the token, then by the Socket Mode client to connect.
    opened = shared_socket_bot.start_up_calls_to("apps.connections.open")
    assert len(opened) == 2
    assert all(call.headers["Authorization"] == f"Bearer {APP_TOKEN}" for call in opened)
    async with aiohttp.ClientSession() as session, session.get(f"{socket_bot.url}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["transport"] == "socket"
        # No events endpoint in Socket Mode: nothing to forge.
        async with session.post(f"{socket_bot.url}/slack/events", data=b"x") as events:
            assert events.status in (404, 405)


async def test_slash_command_acks_at_once_and_answers(socket_bot: BotProcess, slack: SlackStandIn,
                                                      cde: SampleCdeApi) -> None:
    await slack.wait_connected()
    cde.delay = 3.5  # longer than the 3 s Slack waits for the ack
    result, url = await slack.send_slash_command("runs site:1002 state:failed")
    assert result.ack_seconds < 3.0, f"ack took {result.ack_seconds:.2f}s"
    assert slack.responses(url) == []  # the slow lookup is still under way
    [answer] = await slack.wait_for_response(url, timeout=15)
    assert FAILED_RUN in json.dumps(answer)
    assert block_kit_errors(answer["blocks"]) == []


async def test_next_click_replaces_the_list(socket_bot: BotProcess, slack: SlackStandIn) -> None:
    await slack.wait_connected()
    _, url = await slack.send_slash_command("runs site:1001 state:failed limit:5")
    [first] = await slack.wait_for_response(url)
    assert f"Showing 1–5 of {EXTRA_FAILED}" in json.dumps(first, ensure_ascii=False)
    container = {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0001",
                 "is_ephemeral": True}
    result, click_url = await slack.send_block_action("runs_page_next", message=first,
                                                      container=container)
    assert result.ack_seconds < 3.0
    [second] = await slack.wait_for_response(click_url)
    assert second["replace_original"] is True
    assert f"Showing 6–10 of {EXTRA_FAILED}" in json.dumps(second, ensure_ascii=False)


async def test_envelopes_no_listener_takes_are_acked(socket_bot: BotProcess, slack: SlackStandIn) -> None:
    await slack.wait_connected()
    event = {"type": "event_callback", "team_id": "T0001", "api_app_id": "A0001",
             "event": {"type": "app_mention", "user": "U0001", "channel": "C0001", "text": "hi",
                       "ts": "1700000000.000100"}, "event_id": "Ev0001", "event_time": 1700000000}
    shortcut = {"type": "shortcut", "callback_id": "no_such_shortcut", "trigger_id": "1.2.abc",
                "team": {"id": "T0001"}, "user": {"id": "U0001"}}
    unknown_action = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": "U0001"},
                      "actions": [{"action_id": "no_such_button", "type": "button"}]}
    for type_, payload in (("events_api", event), ("interactive", shortcut), ("interactive", unknown_action)):
        result = await slack.send_envelope(type_, payload)
        assert result.ack_seconds < 3.0
        assert result.ack_payload is None
    # Still serving as before.
    _, url = await slack.send_slash_command("runs site:1002")
    assert await slack.wait_for_response(url)
