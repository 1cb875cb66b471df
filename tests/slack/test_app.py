"""The app around the listeners, in process: signature checks, the request middleware and
the one error handler.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.lookups.service import Lookup, Lookups
from bot.slack.message import Message
from bot.store.base import MAX_ID, IdOutOfRangeError, StoreError
from tests.helpers.bolt import BoltScenario, all_text, bolt_scenario, with_lookups
from tests.standins.slack import encode_slash_command, sign_request, slash_command_payload


class BrokenLookups(Lookups):
    """Lookups with a bug: every answer raises."""

    def __init__(self) -> None:
        pass

    async def answer(self, command: Lookup, *, shared_by: str | None = None) -> Message:
        # Fails after a moment, as a lookup would after its first I/O, and not sooner, for a
        # race in Bolt (slack-bolt 1.30, AsyncioListenerRunner.run with
        # process_before_response=False): Bolt runs the listener in a task and reads
        # `ack.response` every 10 ms to find the ack's answer. When the listener raises, the
        # runner's task sets `ack.response = None` after the error handler (it passes the
        # handler no response, the ack being already sent). A listener that acks and fails
        # before Bolt's next read, with an error handler as quick, leaves Bolt without the
        # ack it sent: Bolt polls on until its 3-second ack timeout and the HTTP reply is a
        # 404 "unhandled request". 50 ms is five reads later. The race itself is
        # `test_bolt_keeps_the_ack_of_a_listener_that_fails_right_after_it` below.
        await asyncio.sleep(0.05)
        raise KeyError("site-name")


class StoreFailingLookups(Lookups):
    """Lookups whose every answer meets a store failure (none touches the store today: this
    is the error handler's answer for any listener that may)."""

    def __init__(self, error: StoreError) -> None:
        self.error = error

    async def answer(self, command: Lookup, *, shared_by: str | None = None) -> Message:
        await asyncio.sleep(0.05)  # past Bolt's race (see BrokenLookups)
        raise self.error


@pytest.mark.parametrize(("error", "told", "outcome"), [
    (StoreError("the database file /data/bot.db failed: disk I/O error"),
     "The bot's database is not answering, so nothing was done; try again in a minute.", "store_error"),
    (IdOutOfRangeError(f"site id {MAX_ID + 1} is out of range"),
     f"larger than any id the bot keeps (at most {MAX_ID}), so nothing was done", "user_error"),
])
async def test_a_store_failure_reaching_the_error_handler_is_told_as_such(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, error: StoreError, told: str,
        outcome: str) -> None:
    async with bolt_scenario(tmp_path, services=with_lookups(StoreFailingLookups(error))) as bolt:
        sent = await bolt.command("runs site:1001")
        assert sent.status == 200
        [answer] = bolt.answers(sent)
        assert told in all_text(answer) and "Something went wrong" not in all_text(answer)
        assert f'cde_bot_commands_total{{command="runs",outcome="{outcome}"}} 1.0' in (
            bolt.metrics.render().decode())
    [logged] = [r for r in caplog.records if r.getMessage().startswith("The store failed")]
    assert str(error) in logged.getMessage() and logged.exc_info is None
    assert "Unhandled error" not in caplog.text


@pytest.fixture
async def bolt(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path) as scenario:
        yield scenario


@pytest.fixture
async def broken(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path, services=with_lookups(BrokenLookups())) as scenario:
        yield scenario


async def test_forged_or_stale_signatures_are_refused(bolt: BoltScenario,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    forged = await bolt.command("runs", secret="not-the-signing-secret")
    assert forged.status == 401
    stale = await bolt.command("runs", timestamp=int(time.time()) - 600)
    assert stale.status == 401
    assert bolt.slack.response_posts(forged.response_url) == []
    assert bolt.slack.response_posts(stale.response_url) == []
    assert bolt.cde.requests == [] and bolt.slack.calls == []
    assert "received" not in caplog.text


async def test_every_request_is_logged_with_its_id_and_answer_time(
    bolt: BoltScenario, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await bolt.command("runs site:1002", user="U0002")
    received = [r for r in caplog.records if r.getMessage().startswith("received")]
    assert [r.getMessage() for r in received] == [
        "received command /cde 'runs site:1002' from U0002 in C0001"]
    answered = [r.getMessage() for r in caplog.records if r.getMessage().startswith("answered")]
    assert len(answered) == 1 and re.fullmatch(r"answered runs: ok in \d+ ms", answered[0])
    await bolt.click("run_open")
    assert "received click on 'run_open' from U0001 in C0001" in caplog.text


async def test_a_listener_that_raises_answers_with_a_reference_and_logs_the_traceback(
    broken: BoltScenario, caplog: pytest.LogCaptureFixture
) -> None:
    sent = await broken.command("runs site:1001")
    assert sent.status == 200  # acked before the lookup failed
    [answer] = broken.answers(sent)
    assert answer["replace_original"] is False and answer["response_type"] == "ephemeral"
    reference = re.search(r"Reference: `([0-9a-f]+)`", all_text(answer))
    assert reference, all_text(answer)
    [logged] = [r for r in caplog.records if r.getMessage().startswith("Unhandled error")]
    assert reference.group(1) in logged.getMessage()
    assert "command /cde 'runs site:1001'" in logged.getMessage()
    assert logged.exc_info is not None and logged.exc_info[0] is KeyError
    assert 'cde_bot_commands_total{command="runs",outcome="internal_error"} 1.0' in (
        broken.metrics.render().decode())


async def test_a_click_that_raises_is_answered_beside_the_message(broken: BoltScenario) -> None:
    sent = await broken.click("runs_share", value="runs site:1001")
    [answer] = broken.answers(sent)
    assert "Something went wrong" in all_text(answer) and answer["replace_original"] is False
    assert 'cde_bot_commands_total{command="button",outcome="internal_error"} 1.0' in (
        broken.metrics.render().decode())


async def test_an_error_in_an_ack_answer_is_logged_and_refused(broken: BoltScenario,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    # Help is answered in the ack: a failure there is the error handler's too.
    sent = await broken.command("help")
    assert sent.status == 500
    assert "Unhandled error" in caplog.text


async def _one_workspace(**_: object) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id="T0001", bot_token="xoxb-race",
                           bot_user_id="U0BOT", bot_id="B0BOT")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "slack-bolt 1.30 loses the ack of a listener that raises within 10 ms of acking: its "
    "runner resets ack.response to None after the error handler, and the reply becomes a "
    "404 after the 3-second ack timeout (see BrokenLookups). Passing means Bolt fixed it: "
    "drop this mark and BrokenLookups' sleep."))
async def test_bolt_keeps_the_ack_of_a_listener_that_fails_right_after_it() -> None:
    # A bare app, not the bot's: the bot's error handler answers on the response_url, and
    # that I/O lets Bolt read the ack in time, or not. Here nothing awaits I/O between the
    # ack and the reset, so Bolt's first read, 10 ms on, always comes too late.
    app = AsyncApp(signing_secret="race-secret", authorize=_one_workspace,
                   process_before_response=False)

    @app.command("/cde")
    async def fails_after_acking(ack: AsyncAck) -> None:
        await ack()
        raise KeyError("site-name")

    @app.error
    async def ignore(error: Exception) -> None:
        pass

    # Bolt offers no ack timeout for commands; 1 s instead of 3 keeps the test short.
    [listener] = app._async_listeners
    listener.ack_timeout = 1
    body = encode_slash_command(slash_command_payload(
        "runs", response_url="http://127.0.0.1:9/unused", channel_id="C0001", user_id="U0001"))
    headers: dict[str, str | Sequence[str]] = {"content-type": ["application/x-www-form-urlencoded"]}
    headers.update((name.lower(), [value]) for name, value in sign_request("race-secret", body).items())
    response = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=headers))
    assert response.status == 200, (response.status, response.body)
