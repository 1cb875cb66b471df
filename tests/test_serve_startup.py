"""Starting the bot in the test process: bad settings and bad tokens stop it with a clear
message, and how `cde-bot serve` turns a failed start into its exit status and one line.

The real process's side of this (its signals, and one failed start as the shell sees it)
is tested in tests/e2e/test_startup.py.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

import bot.server
from bot.__main__ import main
from bot.config import Settings
from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET, bot_env
from tests.helpers.served_bot import ServedBot, settings_from, stop_cleanly
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
