"""The bot built and served inside the test's own event loop, its polls run by the test.

The same parts as `cde-bot serve` (`Bot.build` and its HTTP application on loopback), but
no scheduler: a test calls `poll()` where the real bot would wait for its next interval,
so a scenario of many polls takes as long as its polls do, not as many seconds. Nor are
posts to one channel spaced a second apart, as `SlackPoster` spaces them for Slack's rate
limits (the stand-in has none): its other tests build it with `min_interval=0` too.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from aiohttp import web

from bot import server
from bot.config import load_settings
from bot.demo.api import SampleCdeApi
from bot.ops.http import http_app
from bot.server import Bot
from bot.slack.poster import SlackPoster
from tests.helpers.bot_process import BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET, free_port
from tests.standins.slack import SlackStandIn


class InProcessBot:
    """A bot in HTTP mode answering on `url`, talking to the stand-ins."""

    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, database: Path, **settings: object) -> None:
        self.port = free_port()
        config = load_settings(environment=False, **{
            "slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack.base_url, "cde_api_url": cde.url, "cde_api_token": CDE_TOKEN,
            "database_url": f"sqlite+aiosqlite:///{database}", "port": self.port, **settings,
        })
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(server, "SlackPoster", partial(SlackPoster, min_interval=0))
            self.bot = Bot.build(config)
        self._runner = web.AppRunner(http_app(self.bot), access_log=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Open the store and answer on `url`."""
        await self.bot.store.open()
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.bot.health.ready = True

    async def poll(self, times: int = 1) -> None:
        """Poll `times` times, one after the other, as the scheduler would."""
        for _ in range(times):
            await self.bot.poll_once()

    async def stop(self) -> None:
        """Stop answering and close the store."""
        self.bot.health.ready = False
        await self._runner.cleanup()
        await self.bot.aclose()
