"""The bot's calls to Slack keep their connections: answers through the `response_url`
and Web API calls share one session, instead of a new TCP (and TLS) connection each.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackClientError

from bot.redact import Redactor
from bot.slack.client import RedactingWebClient
from bot.slack.connections import KeptSession
from bot.slack.message import Message
from tests.helpers.bolt import bolt_scenario
from tests.helpers.counting_server import Serve
from tests.helpers.sample import FAILED_RUN


async def test_answers_and_posts_reuse_one_connection(tmp_path: Path) -> None:
    async with bolt_scenario(tmp_path) as bolt:
        sent = [await bolt.command(f"run {FAILED_RUN}") for _ in range(5)]
        for _ in range(3):
            await bolt.services.oncall.poster.post("C0001", Message("a notice", []))
        assert all(bolt.answers(each) for each in sent)
        # One after another, every call finds the connection the one before left idle.
        assert len(bolt.slack.connections) == 1


async def test_a_kept_session_belongs_to_its_event_loop() -> None:
    kept = KeptSession(timeout=15)
    assert await asyncio.to_thread(kept.get) is None  # outside a loop: slack_sdk makes its own

    async def in_a_loop(close: bool) -> aiohttp.ClientSession:
        session, again = kept.get(), kept.get()
        assert session is not None and session is again
        if close:
            await kept.aclose()
        return session

    first = await asyncio.to_thread(asyncio.run, in_a_loop(close=False))
    second = await asyncio.to_thread(asyncio.run, in_a_loop(close=True))
    assert second is not first and second.closed
    third = await asyncio.to_thread(asyncio.run, in_a_loop(close=True))
    assert third is not second


async def test_a_kept_session_keeps_the_clients_timeout(serve: Serve) -> None:
    """slack_sdk bounds only the sessions it makes; a call over the kept one must be bounded
    by the client's timeout too, not by aiohttp's five minutes."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"ok": True})

    server = await serve(slow)
    client = RedactingWebClient(Redactor(()), kept=KeptSession(timeout=0.5), token="xoxb-test",
                                base_url=f"{server.url}api/")
    try:
        with pytest.raises((TimeoutError, SlackClientError)):
            await client.auth_test()
    finally:
        await client.aclose()
