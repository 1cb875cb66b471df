"""bot/server.py, in the test process: what `serve` checks before it is ready and why a
start fails, case by case (bad settings, rejected tokens, the CDE token checked like
`cde-bot check`, Slack's Web API waited for while out of reach with `/healthz` 503
meanwhile), how `cde-bot serve` turns a failed start into its exit status and one line, and
what an idle poll tells `/readyz`.

The real process's side of this (its signals, and one failed start as the shell sees it)
is tested in tests/e2e/test_startup.py.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import bot.server
from bot.__main__ import main
from bot.config import Settings, load_settings
from bot.demo.api import SampleCdeApi
from bot.slack.app import build_app
from bot.slack.client import web_client
from tests.helpers import bot_process
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.bot_process import (
    BOT_TOKEN,
    CDE_TOKEN,
    SECRETS,
    SIGNING_SECRET,
    BotProcess,
    bot_env,
    free_port,
)
from tests.helpers.served_bot import ServedBot, settings_from, stop_cleanly
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn


async def failed_start(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Why `serve` gave up, with `env` as its environment."""
    return str(await ServedBot(settings_from(env, monkeypatch)).failed_start())


def test_missing_settings_are_listed_at_once(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "not-a-token")
    assert main(["serve", "--host", "127.0.0.1"]) == 2
    log = capsys.readouterr().err
    for name in ("SLACK_BOT_TOKEN", "CDE_API_TOKEN", "LOG_LEVEL", "SLACK_SIGNING_SECRET"):
        assert f"  - {name}:" in log
    assert "not-a-token" not in log
    assert "Traceback" not in log


async def test_a_rejected_bot_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = bot_env(slack, cde, socket_mode=False) | {"SLACK_BOT_TOKEN": "xoxb-revoked-0000000"}
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in await failed_start(env, monkeypatch)


async def test_a_rejected_app_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = bot_env(slack, cde, socket_mode=True) | {"SLACK_APP_TOKEN": "xapp-revoked-0000000"}
    reason = await failed_start(env, monkeypatch)
    assert "Slack rejected SLACK_APP_TOKEN" in reason and "connections:write" in reason


async def test_an_api_url_that_is_not_slack_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The CDE stand-in answers /auth.test with a 404 that is not Slack's JSON.
    env = bot_env(slack, cde, socket_mode=False) | {"SLACK_API_URL": cde.url + "/"}
    assert "SLACK_API_URL does not answer like Slack's Web API" in await failed_start(env, monkeypatch)


async def test_an_unwritable_database_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = bot_env(slack, cde, socket_mode=False, database=blocker / "bot.db")
    assert "DATABASE_URL" in await failed_start(env, monkeypatch)


async def test_a_busy_port_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as first:  # another process, listening on the bot's port
        first.bind(("127.0.0.1", 0))
        first.listen()
        port = first.getsockname()[1]
        env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db") | {"PORT": str(port)}
        reason = await failed_start(env, monkeypatch)
    assert f"cannot listen on 127.0.0.1:{port}" in reason and "set PORT to a free port" in reason


async def test_a_token_with_a_trailing_newline_works(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db")
    env["CDE_API_TOKEN"] = CDE_TOKEN + "\n"
    served = ServedBot(settings_from(env, monkeypatch))
    served.start()
    try:
        await served.wait_ready()
        await slack.wait_connected()
        _, url = await slack.send_slash_command("runs site:1002")
        [answer] = await slack.wait_for_response(url)
        assert "Showing 1–1 of 1" in json.dumps(answer, ensure_ascii=False)
    finally:
        await stop_cleanly(served)


# -- how the command line reports a failed start ------------------------------------------


@pytest.fixture
def valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                        "CDE_API_TOKEN": CDE_TOKEN}.items():
        monkeypatch.setenv(name, value)


def serve_failing_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    async def failing(settings: Settings, **_: object) -> None:
        raise error

    monkeypatch.setattr(bot.server, "serve", failing)


@pytest.mark.usefixtures("valid_settings")
def test_a_failed_start_is_one_line_and_exit_status_1(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    serve_failing_with(monkeypatch, bot.server.StartupError("the reason, and what to do"))
    assert main(["serve", "--host", "127.0.0.1"]) == 1
    assert capsys.readouterr().err == "cde-bot cannot start: the reason, and what to do\n"


@pytest.mark.usefixtures("valid_settings")
def test_a_failed_start_is_a_json_line_with_json_logs(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    serve_failing_with(monkeypatch, bot.server.StartupError("the reason"))
    assert main(["serve"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == logging.getLevelName(logging.CRITICAL)
    assert entry["message"] == "cde-bot cannot start: the reason"


@pytest.mark.usefixtures("valid_settings")
def test_ctrl_c_during_start_up_exits_0(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    serve_failing_with(monkeypatch, KeyboardInterrupt())
    assert main(["serve"]) == 0
    assert capsys.readouterr().err == ""


# -- helpers for the checks at start ---------------------------------------------------------


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
        await bot_process.stop_cleanly(bot)


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
        await bot_process.stop_cleanly(bot)
        await runner.cleanup()


def start_up_probes(cde: SampleCdeApi) -> int:
    """The CDE API requests of start-up's check (one run, no filter)."""
    return len([r for r in cde.requests_to("/runs") if dict(r.query) == {"from": "0", "limit": "1"}])


async def test_the_cde_api_is_asked_while_slack_is_waited_for_and_again_once_reached(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db") \
        | {"SLACK_API_URL": f"http://127.0.0.1:{port}/api/"}
    bot = ServedBot(settings_from(env, monkeypatch))
    bot.start()
    await until(lambda: "cannot reach Slack's Web API" in bot.log(), "a retry said in the log")
    await until(lambda: start_up_probes(cde) == 1, "the CDE API asked meanwhile")
    assert "CDE API: reachable" not in bot.log()  # told once Slack has the tokens, as before
    runner = await slack_proxy(slack, port)
    try:
        await bot.wait_ready()
        # Slack came after a retry: what the CDE API said before is old news, so it is asked again.
        assert start_up_probes(cde) == 2
        assert bot.log().count("CDE API: reachable") == 1
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
    await bot_process.stop_cleanly(bot)
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
        # One scan of failed runs per idle poll.
        assert [(r.query.get("state"), r.query["limit"]) for r in cde.requests_to("/runs")] \
            == [("failed", "100"), ("failed", "100")]
    finally:
        await bot.stop()
