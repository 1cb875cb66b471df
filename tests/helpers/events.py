"""Signed requests to a bot's `/slack/events`, as Slack sends them in HTTP mode."""

from __future__ import annotations

import time
from typing import Any, Protocol

import aiohttp

from bot.slack.client import EVENTS_PATH
from tests.helpers.bot_process import SIGNING_SECRET
from tests.standins.slack import SlackStandIn, encode_slash_command, sign_request, slash_command_payload


class Served(Protocol):
    """A bot answering HTTP on `url`: a process, or one in the test's own loop."""

    @property
    def url(self) -> str: ...


async def post(bot: Served, body: bytes, *, secret: str = SIGNING_SECRET,
               timestamp: int | None = None) -> tuple[int, str, float]:
    """POST a signed `body`; the status, the body of the answer and how long it took."""
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               **sign_request(secret, body, timestamp)}
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(
        f"{bot.url}{EVENTS_PATH}", data=body, headers=headers
    ) as response:
        return response.status, await response.text(), time.monotonic() - started


async def command(bot: Served, slack: SlackStandIn, text: str, **kwargs: Any) -> tuple[int, str, str]:
    """`/cde <text>` in C0001; the ack's status and body, and the command's response_url."""
    url = slack.new_response_url(channel_id="C0001")
    status, body, _ = await post(bot, encode_slash_command(
        slash_command_payload(text, response_url=url)), **kwargs)
    return status, body, url
