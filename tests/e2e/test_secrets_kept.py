"""No configured secret leaves the real bot process, in either transport, when the CDE API
echoes the bot's own token: not in the ack, not in the `response_url` answer, not in any
Web API call, not in the log, not in `cde-bot check`'s output.

One class per exit. Each asserts that the answer went through (it says what the API
refused, with the token `[redacted]`), so none passes by saying nothing. The bots here use a
CDE token full of the characters that escaping changes (`/`, `+`, `&`, `<`, `>`, `"`), so
the escaped forms (mrkdwn entities, JSON, URL) are what the redaction has to catch.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.redact import REDACTED
from tests.helpers.bot_process import SECRETS, BotProcess, bot_env, child_environment, stop_cleanly
from tests.helpers.events import command
from tests.helpers.leaks import (
    ECHO_RUN,
    ODD_CDE_TOKEN,
    EchoingCdeApi,
    assert_kept,
    echoing_faults,
    everything,
)
from tests.helpers.sample import new_slack, sample_runs
from tests.standins.slack import SlackStandIn

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALL_SECRETS = (*SECRETS, ODD_CDE_TOKEN)
FAULTS = echoing_faults(ODD_CDE_TOKEN)
# The faults whose text the answer quotes (the others are explained in the bot's own words).
QUOTED = ("400 message", "400 field error")
LOOKUPS = ("runs site:1", f"run {ECHO_RUN}")


def env_of(slack: SlackStandIn, cde: EchoingCdeApi, directory: Path, *, socket_mode: bool) -> dict[str, str]:
    """A bot of the stand-ins with the odd CDE token, polling too seldom to get in the way."""
    return {**bot_env(slack, cde, socket_mode=socket_mode, database=directory / "bot.db"),
            "CDE_API_TOKEN": ODD_CDE_TOKEN, "CDE_POLL_INTERVAL": "3600"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack() -> AsyncIterator[SlackStandIn]:
    async with new_slack() as standin:
        yield standin


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cde() -> AsyncIterator[EchoingCdeApi]:
    async with EchoingCdeApi(sample_runs(), token=ODD_CDE_TOKEN) as api:
        yield api


async def _bot(slack: SlackStandIn, cde: EchoingCdeApi, directory: Path,
               socket_mode: bool) -> AsyncIterator[BotProcess]:
    bot = BotProcess(env_of(slack, cde, directory, socket_mode=socket_mode), directory / "bot.log")
    await bot.start()
    try:
        yield bot
    finally:
        await stop_cleanly(bot)
        assert_kept(bot.log(), ALL_SECRETS, "the bot's log")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http_bot(slack: SlackStandIn, cde: EchoingCdeApi,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BotProcess]:
    async for bot in _bot(slack, cde, tmp_path_factory.mktemp("http-bot"), socket_mode=False):
        yield bot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def socket_bot(slack: SlackStandIn, cde: EchoingCdeApi,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BotProcess]:
    async for bot in _bot(slack, cde, tmp_path_factory.mktemp("socket-bot"), socket_mode=True):
        await slack.wait_connected()
        yield bot


@pytest.fixture(autouse=True)
def fresh(slack: SlackStandIn, cde: EchoingCdeApi) -> None:
    slack.reset()
    cde.reset()
    cde.echo, cde.echoed, cde.echo_all = None, 0, False


def web_api_calls(slack: SlackStandIn) -> str:
    """Everything the bot sent the Web API (not the headers: the bot token is the credential)."""
    return everything([call.params for call in slack.calls])


def check_answer(answer: dict[str, object], fault: str) -> None:
    """The answer is there and says what the API refused, without the token."""
    assert_kept(everything(answer), ALL_SECRETS, "the response_url answer")
    if fault in QUOTED:
        assert REDACTED in everything(answer) and "did not accept the query" in everything(answer)
    else:
        assert "CDE API" in everything(answer)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("lookup", LOOKUPS)
class TestLookupAnswersOverHttp:
    """`/slack/events`: the ack (the HTTP answer) and the `response_url` answer."""

    async def test_the_token_the_api_echoes_is_not_shown(self, http_bot: BotProcess, slack: SlackStandIn,
                                                         cde: EchoingCdeApi, lookup: str,
                                                         fault: str) -> None:
        cde.echo = FAULTS[fault]
        status, ack, url = await command(http_bot, slack, lookup)
        assert status == 200
        [answer] = await slack.wait_for_response(url, timeout=15)
        assert cde.echoed >= 1
        assert_kept(ack, ALL_SECRETS, "the ack")
        check_answer(answer, fault)
        assert_kept(web_api_calls(slack), ALL_SECRETS, "a Web API call")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("lookup", LOOKUPS)
class TestLookupAnswersOverSocketMode:
    """Socket Mode: the envelope's ack and the `response_url` answer."""

    async def test_the_token_the_api_echoes_is_not_shown(self, socket_bot: BotProcess, slack: SlackStandIn,
                                                         cde: EchoingCdeApi, lookup: str,
                                                         fault: str) -> None:
        cde.echo = FAULTS[fault]
        result, url = await slack.send_slash_command(lookup)
        [answer] = await slack.wait_for_response(url, timeout=15)
        assert cde.echoed >= 1
        assert_kept(everything(result.ack), ALL_SECRETS, "the ack")
        check_answer(answer, fault)
        assert_kept(web_api_calls(slack), ALL_SECRETS, "a Web API call")
        assert_kept(everything(slack.socket_received), ALL_SECRETS, "the socket")


class TestAcks:
    """An answer given in the ack itself (a mistake explained) quotes what was typed: the
    HTTP answer to `/slack/events`, and the Socket Mode ack, are redacted too."""

    async def test_over_http(self, http_bot: BotProcess, slack: SlackStandIn) -> None:
        status, ack, _ = await command(http_bot, slack, f"runs state:{ODD_CDE_TOKEN}")
        assert status == 200 and REDACTED in ack and "state must be a single word" in ack
        assert_kept(ack, ALL_SECRETS, "the ack")

    async def test_over_socket_mode(self, socket_bot: BotProcess, slack: SlackStandIn) -> None:
        result, _ = await slack.send_slash_command(f"runs state:{ODD_CDE_TOKEN}")
        ack = everything(result.ack)
        assert REDACTED in ack and "state must be a single word" in ack
        assert_kept(ack, ALL_SECRETS, "the ack")


class TestCheckOutput:
    """`cde-bot check` as a process: its report (stdout) and its log (stderr, at DEBUG).

    Its CDE line is built from statuses and class names, never the API's text; what it does
    quote from outside is Slack's answer (the workspace's name), redacted too.
    """

    async def test_no_token_echoed_is_printed(self, slack: SlackStandIn, cde: EchoingCdeApi,
                                              tmp_path: Path) -> None:
        (tmp_path / "bot.db").touch()  # check opens the database, it never creates one
        cde.echo = FAULTS["400 message"]
        cde.echo_all = True
        slack.team_name = f"Test {ODD_CDE_TOKEN}"
        try:
            env = env_of(slack, cde, tmp_path, socket_mode=True)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "check", cwd=tmp_path,
                env=child_environment({**os.environ, **env, "PYTHONUNBUFFERED": "1"}),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), 60)
        finally:
            slack.team_name = "Test"
        output = out.decode()
        assert process.returncode != 0 and cde.echoed >= 1
        assert "✗ CDE API" in output and f"workspace Test {REDACTED}" in output, output
        assert_kept(output, ALL_SECRETS, "check's report")
        assert_kept(err.decode(), ALL_SECRETS, "check's log")
