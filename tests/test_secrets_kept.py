"""No configured secret leaves the bot, exit by exit, in process over loopback: the admin
channel's outage alert (the Web API client), `/readyz` and `/metrics` (the HTTP answers),
the log at DEBUG (slack_sdk's and httpx's request dumps included), the console, and a
secret cut in two by truncation or split over two blocks.

The real bot process, its acks, `response_url` answers and `cde-bot check` are in
tests/e2e/test_secrets_kept.py. One
class per exit; each makes the secret reach that exit, and shows that the answer it
guards did go out (with `[redacted]` in place of the secret).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from slack_bolt.async_app import AsyncAck, AsyncSay
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot import logs
from bot.config import load_settings
from bot.console.run import ConsoleOptions, run_console
from bot.demo.api import Fault
from bot.demo.runs import make_run
from bot.ops.metrics import Metrics
from bot.redact import REDACTED
from bot.slack.app import build_app
from bot.slack.client import web_client
from bot.slack.message import MAX_FIELD_TEXT, section
from bot.slack.mrkdwn import escape
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.bot_process import APP_TOKEN, BOT_TOKEN, SECRETS, SIGNING_SECRET
from tests.helpers.events import command, post
from tests.helpers.leaks import (
    ECHO_RUN,
    ODD_CDE_TOKEN,
    EchoingCdeApi,
    assert_kept,
    echoing_faults,
    everything,
)
from tests.helpers.sample import sample_runs
from tests.helpers.served_bot import ServedBot, settings_from
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn, encode_slash_command, sign_request, slash_command_payload
from tests.standins.slack.payloads import VERIFICATION_TOKEN

ALL_SECRETS = (*SECRETS, ODD_CDE_TOKEN)
FAULTS = echoing_faults(ODD_CDE_TOKEN)
OPS, ADMIN = "C0001", "C0ADMIN"


@pytest.fixture
async def cde() -> AsyncIterator[EchoingCdeApi]:
    async with EchoingCdeApi(sample_runs(), token=ODD_CDE_TOKEN) as api:
        yield api


@pytest.fixture
async def bot(slack: SlackStandIn, cde: EchoingCdeApi, tmp_path: Path) -> AsyncIterator[InProcessBot]:
    slack.add_channel(ADMIN, "cde-admin")
    served = InProcessBot(slack, cde, tmp_path / "bot.db", cde_api_token=ODD_CDE_TOKEN,
                          slack_admin_channel=ADMIN, cde_outage_alert_minutes=0.02)
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


async def subscribe(bot: InProcessBot, slack: SlackStandIn, filters: str) -> None:
    status, _, _ = await command(bot, slack, f"subscribe {filters}")
    assert status == 200
    await until(lambda: slack.messages(OPS), "the subscription's confirmation")


class TestAdminAlert:
    """The poller's outage alert, posted to the admin channel through the Web API client."""

    async def test_an_outage_quoting_the_token_is_told_without_it(
        self, bot: InProcessBot, slack: SlackStandIn, cde: EchoingCdeApi
    ) -> None:
        await subscribe(bot, slack, "site:1001")
        await bot.poll()
        cde.echo, cde.echo_all = FAULTS["401 message"], True
        # Polls until the outage has lasted longer than the alert threshold (1.2 s).
        async def alerted() -> bool:
            await bot.poll()
            return bool(slack.messages(ADMIN))
        await until(alerted, "the outage alert")
        [alert] = slack.messages(ADMIN)
        assert "unreachable" in everything(alert) and REDACTED in everything(alert)
        assert_kept(everything([call.params for call in slack.calls]), ALL_SECRETS, "a Web API call")


class TestListenerClient:
    """Bolt's per-request `client` and `say()`: a plain `AsyncWebClient` Bolt builds for each
    request, made redacting by the app's middleware like the bot's own client."""

    async def test_what_a_listener_sends_through_them_is_redacted(self, slack: SlackStandIn) -> None:
        settings = load_settings(environment=False, slack_bot_token=BOT_TOKEN,
                                 slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.base_url,
                                 cde_api_token=ODD_CDE_TOKEN)
        app = build_app(settings, web_client(settings))
        done = asyncio.Event()

        @app.command("/cde")
        async def listener(ack: AsyncAck, client: AsyncWebClient, say: AsyncSay) -> None:
            await ack()
            await client.chat_postMessage(channel=OPS, text=f"client: {ODD_CDE_TOKEN}")
            await say(f"say: {ODD_CDE_TOKEN}")
            done.set()

        url = slack.new_response_url(channel_id=OPS)
        body = encode_slash_command(slash_command_payload("runs", response_url=url, channel_id=OPS))
        headers = {"content-type": "application/x-www-form-urlencoded",
                   **sign_request(SIGNING_SECRET, body)}
        response = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
        assert response.status == 200
        await asyncio.wait_for(done.wait(), 10)
        assert [m["text"] for m in slack.messages(OPS)] == [f"client: {REDACTED}", f"say: {REDACTED}"]


class TestReadinessAndMetrics:
    """`/readyz` and `/metrics`: whatever a check or a metric says is redacted on the way out."""

    async def test_a_failing_dependency_quoting_the_token(
        self, bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The store's check fails and says why in its driver's words (`Store.problem`), which
        # may quote a connection string; a metric's help text does the same.
        async def problem() -> str:
            return f"the database failed: password {ODD_CDE_TOKEN} rejected"

        render = Metrics.render

        def quoting(self: Metrics) -> bytes:
            return render(self) + f"# cde_bot_store {json.dumps(ODD_CDE_TOKEN)}\n".encode()

        monkeypatch.setattr(bot.bot.store, "problem", problem)
        monkeypatch.setattr(Metrics, "render", quoting)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{bot.url}/readyz") as response:
                assert response.status == 503
                ready = await response.text()
            async with session.get(f"{bot.url}/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
        detail = json.loads(ready)["checks"]["store"]["detail"]
        assert detail == f"the database failed: password {REDACTED} rejected"
        assert f"# cde_bot_store \"{REDACTED}\"" in metrics and "cde_bot_polls_total" in metrics
        assert_kept(ready, ALL_SECRETS, "/readyz")
        assert_kept(metrics, ALL_SECRETS, "/metrics")


@pytest.fixture
def every_logger_at_debug() -> Iterator[None]:
    """slack_sdk, httpx and the others `logs.configure` quietens, at DEBUG: they dump requests
    (headers, bodies) there, which an operator may turn on to debug."""
    names = [*logs.NOISY_LOGGERS, "httpcore", "aiohttp", "slack_bolt", "asyncio"]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def all_at_debug() -> None:
    for name in [*logs.NOISY_LOGGERS, "httpcore", "aiohttp", "slack_bolt"]:
        logging.getLogger(name).setLevel(logging.DEBUG)


@pytest.mark.usefixtures("every_logger_at_debug")
class TestLogs:
    """The log of a whole run at DEBUG, through the handlers `cde-bot serve` installs."""

    @staticmethod
    def environment(slack: SlackStandIn, cde: EchoingCdeApi, tmp_path: Path,
                    socket_mode: bool) -> dict[str, str]:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.base_url, "CDE_API_URL": cde.url,
               "CDE_API_TOKEN": ODD_CDE_TOKEN, "LOG_LEVEL": "DEBUG", "CDE_POLL_INTERVAL": "1",
               "SLACK_ADMIN_CHANNEL": ADMIN, "CDE_OUTAGE_ALERT_MINUTES": "0.02",
               "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}
        transport = ({"SLACK_APP_TOKEN": APP_TOKEN} if socket_mode
                     else {"SLACK_SIGNING_SECRET": SIGNING_SECRET})
        return env | transport

    async def run(self, served: ServedBot, slack: SlackStandIn, cde: EchoingCdeApi, socket_mode: bool) -> str:
        """Lookups the API answers quoting the token, a subscription, then an outage quoting
        it until the admins are told; the log of it all."""
        served.start()
        all_at_debug()
        await served.wait_ready()
        if socket_mode:
            await slack.wait_connected()
        slack.add_channel(ADMIN, "cde-admin")

        async def send(text: str) -> str:
            if socket_mode:
                _, url = await slack.send_slash_command(text)
                return url
            url = slack.new_response_url(channel_id=OPS)
            body = encode_slash_command(slash_command_payload(text, response_url=url))
            status, _, _ = await post(served, body)
            assert status == 200
            return url

        async def lookup(text: str) -> dict[str, object]:
            [answer] = await slack.wait_for_response(await send(text), timeout=15)
            return answer

        for fault in FAULTS.values():
            cde.echo = fault
            for text in ("runs site:1", f"run {ECHO_RUN}"):
                await lookup(text)
        await send(f"runs state:{ODD_CDE_TOKEN}")  # answered in the ack
        await send("subscribe site:1001")
        await until(lambda: slack.messages(OPS), "the subscription's confirmation")
        cde.echo, cde.echo_all = Fault(400, {"message": f"token {ODD_CDE_TOKEN} may not list runs"}), True
        await until(lambda: slack.messages(ADMIN), "the outage alert")
        await served.stop()
        return served.log()

    @pytest.mark.parametrize("socket_mode", [False, True], ids=["http", "socket"])
    async def test_no_secret_is_logged(self, slack: SlackStandIn, cde: EchoingCdeApi, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, socket_mode: bool) -> None:
        served = ServedBot(settings_from(self.environment(slack, cde, tmp_path, socket_mode), monkeypatch))
        log = await self.run(served, slack, cde, socket_mode)
        # The dumps were there to leak: slack_sdk's request bodies, httpx's requests, and
        # the bot's own warnings quoting what the API said.
        assert "slack_sdk" in log and "httpx" in log, log[-3000:]
        assert f"CDE refused runs site:1: token {REDACTED}" in log, log[-3000:]
        assert_kept(log, ALL_SECRETS, "the log")
        # Nor Slack's verification token, in every request body Slack sends (Bolt dumps a
        # Socket Mode envelope whole).
        assert VERIFICATION_TOKEN not in log


class TestConsole:
    """`cde-bot console` with a script piped in: what the screen shows, and the log."""

    async def test_answers_quoting_the_token_are_shown_without_it(
        self, cde: EchoingCdeApi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in {"CDE_API_URL": cde.url, "CDE_API_TOKEN": ODD_CDE_TOKEN}.items():
            monkeypatch.setenv(name, value)
        log = io.StringIO()
        # As `cde-bot console` sets logging up, before its settings are known.
        logs.configure("DEBUG", stream=log)
        cde.echo = FAULTS["400 field error"]
        out = io.StringIO()
        script = f"runs state:{ODD_CDE_TOKEN}\nruns site:1\nrun {ECHO_RUN}\n"
        options = ConsoleOptions(demo=False, json_output=False, user="you", channel="console")
        session = run_console(options, stdin=io.StringIO(script), stdout=out)
        code = await asyncio.wait_for(asyncio.to_thread(asyncio.run, session), 60)
        shown = out.getvalue()
        assert code == 0 and cde.echoed >= 2
        assert shown.count(REDACTED) >= 3 and "did not accept the query" in shown, shown
        assert_kept(shown, ALL_SECRETS, "the console")
        logs.flush()
        assert_kept(log.getvalue(), ALL_SECRETS, "the console's log")


CUT_RUN = "019e16f3-0000-7000-8000-0000000c0700"


class TestCutSecrets:
    """A secret cut in two: by the renderer's truncation at a Block Kit limit (a run's CLI
    command is clipped to its field's length), or split over two blocks by its source. What
    is left on either side of the cut is redacted when it is `MIN_ANYWHERE` characters or
    more, on its way out, as a whole secret would be.
    """

    @pytest.mark.parametrize("kept", [12, 14, 15, 20, len(ODD_CDE_TOKEN) - 1])
    async def test_truncation_leaves_no_recognisable_part(self, bot: InProcessBot, slack: SlackStandIn,
                                                          cde: EchoingCdeApi, kept: int) -> None:
        run = make_run(state="failed", run_id=CUT_RUN)
        # The field is clipped to MAX_FIELD_TEXT - 40 characters, the last one an ellipsis:
        # `kept` characters of the token are left before it.
        limit = MAX_FIELD_TEXT - 40
        run["cli-command"] = "x" * (limit - 1 - kept) + ODD_CDE_TOKEN + " --verbose"
        cde.add_run(run)
        _, _, url = await command(bot, slack, f"run {CUT_RUN}")
        [answer] = await slack.wait_for_response(url)
        assert f"x{REDACTED}…" in everything(answer)
        assert_kept(everything(answer), ALL_SECRETS, "the run's details")

    async def test_halves_in_two_blocks_are_redacted(self, slack: SlackStandIn) -> None:
        settings = load_settings(environment=False, slack_bot_token=BOT_TOKEN,
                                 slack_signing_secret=SIGNING_SECRET, slack_api_url=slack.base_url,
                                 cde_api_token=ODD_CDE_TOKEN)
        half = len(ODD_CDE_TOKEN) // 2
        blocks = [section(f"the API said: {escape(ODD_CDE_TOKEN[:half])}"),
                  section(f"{escape(ODD_CDE_TOKEN[half:])} may not list runs")]
        client = web_client(settings)
        await client.chat_postMessage(channel=OPS, text="split", blocks=blocks)
        await client.aclose()
        [posted] = slack.messages(OPS)
        assert [block["text"]["text"] for block in posted["blocks"]] == [
            f"the API said: {REDACTED}", f"{REDACTED} may not list runs"]
        assert_kept(everything(posted), ALL_SECRETS, "the message")
