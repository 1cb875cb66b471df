"""Starting and stopping the real bot: bad settings and bad tokens stop it with a clear
message, signals stop it cleanly, and work under way is finished first.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import CDE_TOKEN, SECRETS, BotProcess, bot_env, stop_cleanly
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn


async def failed_start(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start(wait_ready=False)
    code = await bot.wait_exit(timeout=30)
    log = bot.log()
    assert not [secret for secret in SECRETS if secret in log], "a secret appeared in the output"
    assert "Traceback" not in log, log
    return code, log


async def test_missing_settings_are_listed_at_once(tmp_path: Path) -> None:
    code, log = await failed_start({"LOG_LEVEL": "LOUD", "SLACK_BOT_TOKEN": "not-a-token"}, tmp_path)
    assert code == 2
    for name in ("SLACK_BOT_TOKEN", "CDE_API_TOKEN", "LOG_LEVEL", "SLACK_SIGNING_SECRET"):
        assert f"  - {name}:" in log
    assert "not-a-token" not in log


async def test_a_rejected_bot_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=False) | {"SLACK_BOT_TOKEN": "xoxb-revoked-0000000"}
    code, log = await failed_start(env, tmp_path)
    assert code == 1
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in log


async def test_a_rejected_app_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=True) | {"SLACK_APP_TOKEN": "xapp-revoked-0000000"}
    code, log = await failed_start(env, tmp_path)
    assert code == 1
    assert "Slack rejected SLACK_APP_TOKEN" in log and "connections:write" in log


async def test_an_api_url_that_is_not_slack_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                            tmp_path: Path) -> None:
    # The CDE stand-in answers /auth.test with a 404 that is not Slack's JSON.
    env = bot_env(slack, cde, socket_mode=False) | {"SLACK_API_URL": cde.url + "/"}
    code, log = await failed_start(env, tmp_path)
    assert code == 1
    assert "SLACK_API_URL does not answer like Slack's Web API" in log


async def test_an_unwritable_database_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = bot_env(slack, cde, socket_mode=False, database=blocker / "bot.db")
    code, log = await failed_start(env, tmp_path)
    assert code == 1
    assert "DATABASE_URL" in log


async def test_a_token_with_a_trailing_newline_works(slack: SlackStandIn, cde: SampleCdeApi,
                                                     tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db")
    env["CDE_API_TOKEN"] = CDE_TOKEN + "\n"
    bot = BotProcess(env, tmp_path / "bot.log")
    await bot.start()
    await slack.wait_connected()
    _, url = await slack.send_slash_command("runs site:1002")
    [answer] = await slack.wait_for_response(url)
    assert "Showing 1–1 of 1" in json.dumps(answer, ensure_ascii=False)
    await stop_cleanly(bot)


async def test_sigint_stops_cleanly(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    bot = BotProcess(bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db"),
                     tmp_path / "bot.log")
    await bot.start()
    assert bot.process is not None
    bot.process.send_signal(signal.SIGINT)
    assert await bot.wait_exit() == 0
    assert "stopped" in bot.log()


async def test_sigterm_in_socket_mode_finishes_the_answer_under_way(
    slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path
) -> None:
    bot = BotProcess(bot_env(slack, cde, socket_mode=True, database=tmp_path / "bot.db"),
                     tmp_path / "bot.log")
    await bot.start()
    await slack.wait_connected()
    cde.delay = 1.0
    _, url = await slack.send_slash_command("runs site:1002")
    # SIGTERM once the lookup is under way: the CDE stand-in has the request, not answered yet.
    await until(lambda: any(r.query.get("site-id") == "1002" for r in cde.requests_to("/runs")),
                "the lookup to reach the CDE API")
    await stop_cleanly(bot)
    assert len(slack.responses(url)) == 1


async def test_a_busy_port_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=False, database=tmp_path / "bot.db")
    first = BotProcess(env, tmp_path / "first.log")
    await first.start()
    second = BotProcess(env, tmp_path / "second.log")
    second.port = first.port
    second.env["PORT"] = str(first.port)
    await second.start(wait_ready=False)
    assert await second.wait_exit() == 1
    log = second.log()
    assert f"cannot listen on 127.0.0.1:{first.port}" in log and "set PORT to a free port" in log
    assert "Traceback" not in log
    await stop_cleanly(first)
