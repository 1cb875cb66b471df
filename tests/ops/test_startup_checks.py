"""What `serve` checks before it is ready: the CDE token like `cde-bot check` (a rejected one
stops start-up, an unreachable API is a warning), Slack's Web API with retries while it
cannot be reached (`/healthz` 503 meanwhile), and what an idle poll tells `/readyz`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_settings
from bot.demo.api import SampleCdeApi
from bot.slack.app import build_app
from bot.slack.client import web_client
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.bot_process import (
    APP_TOKEN,
    BOT_TOKEN,
    CDE_TOKEN,
    SECRETS,
    SIGNING_SECRET,
    BotProcess,
    bot_env,
    free_port,
    stop_cleanly,
)
from tests.helpers.sample import sample_runs
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                            signing_secret=SIGNING_SECRET) as standin:
        yield standin


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    async with SampleCdeApi(sample_runs(), token=CDE_TOKEN) as api:
        yield api


async def healthz(bot: BotProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/healthz") as response:
        return response.status


def no_secret_in(log: str) -> bool:
    return not [secret for secret in SECRETS if secret in log]


# -- the CDE token -----------------------------------------------------------------------------


async def test_a_rejected_cde_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db")
    env["CDE_API_TOKEN"] = "cde-revoked-token-000000"
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start(wait_ready=False)
    assert await bot.wait_exit(timeout=30) == 1  # as every other start-up error
    log = bot.log()
    assert ("cde-bot cannot start: the CDE API refused CDE_API_TOKEN: the token was rejected (401): "
            "set a valid CDE_API_TOKEN") in log, log
    assert "Traceback" not in log and "cde-revoked-token-000000" not in log and no_secret_in(log)
    assert slack.calls_to("chat.postMessage") == []


async def test_an_unreachable_cde_api_is_a_warning_and_the_bot_starts(slack: SlackStandIn, cde: SampleCdeApi,
                                                                     tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db")
    env["CDE_API_URL"] = f"http://127.0.0.1:{free_port()}"
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start()
    try:
        [warning] = [line for line in bot.log().splitlines() if "CDE API not checked at start" in line]
        assert " WARNING " in warning and "cannot connect to" in warning and "polls will retry" in warning
    finally:
        await stop_cleanly(bot)


# -- Slack's Web API out of reach at start ---------------------------------------------------------


async def slack_proxy(slack: SlackStandIn, port: int) -> web.AppRunner:
    """The stand-in's Web API on `port`: Slack becoming reachable at the URL the bot was given."""

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as session, session.request(
            request.method, slack.base_url + request.match_info["method"], headers=headers,
            data=await request.read(),
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type=answer.content_type)

    app = web.Application()
    app.router.add_route("*", "/api/{method}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_http_mode_waits_for_slack_and_then_starts(slack: SlackStandIn, cde: SampleCdeApi,
                                                        tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/"
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db") | {"SLACK_API_URL": url}
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start(wait_ready=False)
    retrying = f"cannot reach Slack's Web API at {url.rstrip('/')}"
    await until(lambda: retrying in bot.log(), "a retry said in the log")
    assert await healthz(bot) == 503  # serving already, and saying it is not ready
    runner = await slack_proxy(slack, port)
    try:
        await bot.wait_ready()
        log = bot.log()
        [line] = [line for line in log.splitlines() if retrying in line][:1]
        assert " WARNING " in line and "trying again in 1 s" in line
        assert "cde-bot ready" in log
    finally:
        await stop_cleanly(bot)
        await runner.cleanup()


async def test_a_stop_while_waiting_for_slack_is_clean(slack: SlackStandIn, cde: SampleCdeApi,
                                                      tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/"
    env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db") | {"SLACK_API_URL": url}
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start(wait_ready=False)
    await until(lambda: "cannot reach Slack's Web API" in bot.log(), "a retry said in the log")
    await stop_cleanly(bot)
    assert "cde-bot ready" not in bot.log()


# -- Bolt at start -------------------------------------------------------------------------------


def test_building_the_app_warns_about_no_token(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # As in production: the token is in the environment, where Bolt looks for it too.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    settings = load_settings(slack_signing_secret=SIGNING_SECRET, cde_api_token=CDE_TOKEN)
    with caplog.at_level(logging.DEBUG, logger="slack_bolt"):
        build_app(settings, web_client(settings))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("slack_bolt")] == []
    assert settings.slack_bot_token.get_secret_value() == BOT_TOKEN
    assert os.environ["SLACK_BOT_TOKEN"] == BOT_TOKEN  # given back once the app is built


# -- idle polls and readiness -------------------------------------------------------------------


async def test_an_idle_poll_the_api_refused_is_not_a_successful_poll(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    bot = InProcessBot(slack, cde, tmp_path / "bot.db", cde_poll_stale_seconds=1)
    await bot.start()
    try:
        readiness = bot.bot.readiness
        assert readiness is not None
        cde.token = "another-token"  # the bot's token was revoked since it started
        await bot.poll()
        assert readiness.last_poll_success is None
        readiness.started_at -= 10
        poll = (await readiness.checks(bot.bot.store))["poll"]
        assert not poll.ok and "no successful poll" in poll.detail

        cde.token = CDE_TOKEN
        await bot.poll()
        assert (await readiness.checks(bot.bot.store))["poll"].ok
        assert [r.query["limit"] for r in cde.requests_to("/runs")] == ["1", "1"]
    finally:
        await bot.stop()
