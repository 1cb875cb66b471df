"""`/slack/events` against junk and forgeries, over loopback to the bot's real HTTP app:
a word in answer (401, 400 or 413), no traceback, nothing logged above DEBUG, and never a
request's body, verification token or `response_url` in the log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.demo.api import SampleCdeApi
from bot.slack.gate import MAX_BODY_BYTES
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.bot_process import SIGNING_SECRET
from tests.standins.slack import (
    SlackStandIn,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
TOKEN = "vt-forged-body-token-7f3a"
RESPONSE_URL = "https://hooks.slack.test/commands/T0001/999/secret-hook-7f3a"

# Unsigned (or signed with another secret) junk: the request, and its headers.
JUNK: dict[str, tuple[bytes, dict[str, str]]] = {
    "garbage": (b"{garbage", JSON),
    "payload list": (b"payload=[1]", FORM),
    "invalid utf-8": (b"\xff\xfe\xfa payload=\xc3(", FORM),
    "json list": (b"[1, 2]", JSON),
    "payload null": (b"payload=null", FORM),
    "empty": (b"", FORM),
    "empty json": (b"{}", JSON),
    "a form of nothing Slack sends": (b"hello=world&token=x", FORM),
    "json with no type": (b'{"team_id": "T1"}', JSON),
}


@pytest.fixture
async def bot(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
              caplog: pytest.LogCaptureFixture) -> AsyncIterator[InProcessBot]:
    caplog.set_level(logging.DEBUG)
    for name in ("slack_bolt", "slack_bolt.RequestVerification", "slack_bolt.AsyncApp"):
        caplog.set_level(logging.DEBUG, logger=name)
    served = InProcessBot(slack, cde, tmp_path / "bot.db")
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


async def post(bot: InProcessBot, body: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, \
            session.post(f"{bot.url}/slack/events", data=body, headers=headers) as response:
        await response.read()
        return response.status


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing above DEBUG, and no traceback, from the bot or its libraries."""
    loud = [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud == []
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text


def forged_command() -> bytes:
    payload = slash_command_payload("runs", response_url=RESPONSE_URL)
    payload["token"] = TOKEN
    return encode_slash_command(payload)


@pytest.mark.parametrize("name", list(JUNK))
async def test_unsigned_junk_is_refused_quietly(bot: InProcessBot, caplog: pytest.LogCaptureFixture,
                                                name: str) -> None:
    body, headers = JUNK[name]
    assert await post(bot, body, headers) == 401
    assert await post(bot, body, headers | sign_request("another-secret", body)) == 401
    assert_quiet(caplog)


@pytest.mark.parametrize("timestamp", ["soon", "", "1e9", "-5", "١٧٠٠٠٠٠٠٠٠", "9" * 40])
async def test_a_timestamp_that_is_not_a_number_is_refused(
        bot: InProcessBot, caplog: pytest.LogCaptureFixture, timestamp: str) -> None:
    body = forged_command()
    signature = sign_request(SIGNING_SECRET, body)["X-Slack-Signature"]
    headers = FORM | {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    assert await post(bot, body, headers) == 401
    assert await post(bot, body, FORM) == 401  # neither header
    assert_quiet(caplog)


@pytest.mark.parametrize("name", list(JUNK))
async def test_signed_but_unreadable_is_a_bad_request(bot: InProcessBot, caplog: pytest.LogCaptureFixture,
                                                      name: str) -> None:
    body, headers = JUNK[name]
    assert await post(bot, body, headers | sign_request(SIGNING_SECRET, body)) == 400
    assert_quiet(caplog)


async def test_a_huge_body_is_too_large(bot: InProcessBot, caplog: pytest.LogCaptureFixture) -> None:
    body = b"payload=" + b"x" * (MAX_BODY_BYTES + 1)
    assert await post(bot, body, FORM) == 413
    assert await post(bot, body, FORM | sign_request(SIGNING_SECRET, body)) == 413
    assert_quiet(caplog)


async def test_a_signed_command_still_answers(bot: InProcessBot, slack: SlackStandIn) -> None:
    url = slack.new_response_url(channel_id="C0001", user_id="U0001")
    body = encode_slash_command(slash_command_payload("runs site:1002", response_url=url))
    assert await post(bot, body, FORM | sign_request(SIGNING_SECRET, body)) == 200
    [answer] = await slack.wait_for_response(url)
    assert "Showing 1–1 of 1" in json.dumps(answer, ensure_ascii=False)


async def test_forged_and_stale_requests_leave_no_body_in_the_log(bot: InProcessBot,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    command = forged_command()
    click = encode_interaction({"type": "block_actions", "token": TOKEN, "response_url": RESPONSE_URL})
    for body in (command, click):
        assert await post(bot, body, FORM | sign_request("not-the-signing-secret", body)) == 401
        stale = sign_request(SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
        assert await post(bot, body, FORM | stale) == 401
    assert_quiet(caplog)
    assert TOKEN not in caplog.text and "secret-hook" not in caplog.text


async def test_bolts_own_refusal_logs_no_body(bot: InProcessBot, caplog: pytest.LogCaptureFixture) -> None:
    """Should a forged request reach Bolt's own check, its body stays out of the log."""
    body = forged_command().decode()
    headers: dict[str, str | Sequence[str]] = {**FORM, **sign_request("forged", body.encode())}
    response = await bot.bot.app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    assert response.status == 401
    assert TOKEN not in caplog.text and "secret-hook" not in caplog.text
    assert_quiet(caplog)
