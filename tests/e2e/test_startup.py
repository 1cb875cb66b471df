"""Starting and stopping the real bot: a failed start is an exit status and one line,
signals stop it cleanly, and work under way is finished first.

Why a start fails, case by case, is tested in the test process: tests/test_server.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from bot.demo.api import SampleCdeApi
from tests.helpers.bot_process import SECRETS, BotProcess, bot_env, stop_cleanly
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


async def test_a_rejected_bot_token_stops_start_up(slack: SlackStandIn, cde: SampleCdeApi,
                                                   tmp_path: Path) -> None:
    env = bot_env(slack, cde, socket_mode=False) | {"SLACK_BOT_TOKEN": "xoxb-revoked-0000000"}
    code, log = await failed_start(env, tmp_path)
    assert code == 1
    assert "cde-bot cannot start: Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in log


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
