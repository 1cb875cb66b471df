"""End to end over HTTP: signed requests to the real bot's `/slack/events`.

Smoke tests of what only a real process shows (the HTTP route, the 3-second ack while the
API is slow, SIGTERM finishing answers); every listener's behaviour is tested in process
(tests/lookups, tests/notices, tests/slack). The tests share one bot process, but for the
one that stops its bot.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import BotProcess, SharedBot, bot_env, stop_cleanly
from tests.helpers.events import command, post
from tests.helpers.sample import FAILED_RUN
from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    block_kit_errors,
    encode_interaction,
    encode_slash_command,
    slash_command_payload,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def slack(shared_slack: SlackStandIn) -> SlackStandIn:
    return shared_slack


@pytest.fixture
def cde(shared_cde: SampleCdeApi) -> SampleCdeApi:
    return shared_cde


@pytest.fixture
def http_bot(shared_http_bot: SharedBot) -> BotProcess:
    return shared_http_bot.process


@pytest_asyncio.fixture(loop_scope="module")
async def own_http_bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """A bot of the test's own, for a test that stops it."""
    bot = BotProcess(bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db"),
                     tmp_path / "bot.log")
    await bot.start()
    yield bot
    await stop_cleanly(bot)


EPHEMERAL = {"type": "message", "message_ts": "1700000000.000001", "channel_id": "C0001",
             "is_ephemeral": True}


def click_ephemeral(action_id: str, answer: dict[str, Any], response_url: str,
                    **kwargs: Any) -> dict[str, Any]:
    """A click on a button of an ephemeral answer, as Slack sends it."""
    return block_actions_payload(action_id, response_url=response_url, message=answer,
                                 container=EPHEMERAL, **kwargs)


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


async def test_auth_test_is_called_once_at_start_up_and_never_for_a_command(
    shared_http_bot: SharedBot, slack: SlackStandIn
) -> None:
    # Start-up hands its `auth.test` answer to Bolt (`prime_authorization`): without it Bolt
    # would call `auth.test` before its first listener, inside the 3-second ack budget. Bolt
    # keeps the answer of its first call, so this test comes first in the module: after
    # another test's command it would pass whether start-up had primed Bolt or not.
    assert len(shared_http_bot.start_up_calls_to("auth.test")) == 1
    status, _, url = await command(shared_http_bot.process, slack, "runs site:1002 state:failed")
    assert status == 200
    await slack.wait_for_response(url)
    assert slack.calls_to("auth.test") == []


async def test_runs_lookup_answers_through_response_url(http_bot: BotProcess, slack: SlackStandIn,
                                                         cde: SampleCdeApi) -> None:
    status, body, url = await command(http_bot, slack, "runs site:1002 state:failed")
    assert status == 200 and body == ""
    [answer] = await slack.wait_for_response(url)
    assert answer["response_type"] == "ephemeral"
    assert FAILED_RUN in all_text(answer)
    assert "Showing 1–1 of 1" in all_text(answer)
    assert block_kit_errors(answer["blocks"]) == []
    assert answer["text"]
    # Beside the start-up check's and the polls' scans of every failed run, the lookup's one.
    [request] = [r for r in cde.requests_to("/runs") if "site-id" in r.query]
    assert request.query == {"site-id": "1002", "state": "failed", "from": "0", "limit": "10"}


async def test_forged_signature_is_refused(http_bot: BotProcess, slack: SlackStandIn,
                                           cde: SampleCdeApi) -> None:
    status, _, url = await command(http_bot, slack, "runs", secret="not-the-signing-secret")
    assert status == 401
    stale = int(time.time()) - 600
    status, _, url2 = await command(http_bot, slack, "runs", timestamp=stale)
    assert status == 401
    # A signed command after them: once its answer is in, the bot has handled the refused
    # ones too, sent earlier, and anything they had started would have shown.
    status, _, signed = await command(http_bot, slack, "runs site:1002 state:failed")
    assert status == 200
    await slack.wait_for_response(signed)
    assert slack.response_posts(url) == [] and slack.response_posts(url2) == []
    # No lookup was made for them: beside the scans of the start-up check and of the polls,
    # the only request is the signed command's.
    [lookup] = [r for r in cde.requests if "site-id" in r.query]
    assert lookup.query == {"site-id": "1002", "state": "failed", "from": "0", "limit": "10"}


async def test_ack_within_three_seconds_while_the_api_is_slow(http_bot: BotProcess, slack: SlackStandIn,
                                                               cde: SampleCdeApi) -> None:
    cde.delay = 3.5  # longer than the 3 s Slack waits for the ack
    url = slack.new_response_url(channel_id="C0001")
    status, _, elapsed = await post(http_bot, encode_slash_command(
        slash_command_payload("runs state:failed", response_url=url)))
    assert status == 200
    assert elapsed < 3.0, f"ack took {elapsed:.2f}s"
    # The API call was already under way when the ack went back, and the answer follows it.
    assert slack.responses(url) == []
    [answer] = await slack.wait_for_response(url, timeout=15)
    assert "Showing 1–10 of" in all_text(answer)


async def test_share_in_channel_posts_visibly(http_bot: BotProcess, slack: SlackStandIn) -> None:
    _, _, url = await command(http_bot, slack, f"run {FAILED_RUN}")
    [detail] = await slack.wait_for_response(url)
    share_url = slack.new_response_url(channel_id="C0001")
    payload = click_ephemeral("runs_share", detail, share_url, user_id="U0002")
    await post(http_bot, encode_interaction(payload))
    [shared] = await slack.wait_for_response(share_url)
    assert shared["response_type"] == "in_channel"
    assert "shared by <@U0002>" in all_text(shared)
    assert FAILED_RUN in all_text(shared)


async def test_healthz_and_unknown_paths(http_bot: BotProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{http_bot.url}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["transport"] == "http"
        async with session.get(f"{http_bot.url}/slack/events") as response:
            assert response.status == 405


async def test_sigterm_finishes_in_flight_answers(own_http_bot: BotProcess, slack: SlackStandIn,
                                                  cde: SampleCdeApi) -> None:
    cde.delay = 1.0  # the lookup is still under way when SIGTERM comes
    _, _, url = await command(own_http_bot, slack, "runs site:1002")
    assert await own_http_bot.stop() == 0
    assert len(slack.responses(url)) == 1
