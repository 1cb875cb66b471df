"""The app around the listeners, in process: signature checks, the request middleware and
the one error handler.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.lookups.service import Lookup, Lookups
from bot.slack.message import Message
from tests.helpers.bolt import BoltScenario, all_text, bolt_scenario, with_lookups


class BrokenLookups(Lookups):
    """Lookups with a bug: every answer raises."""

    def __init__(self) -> None:
        pass

    async def answer(self, command: Lookup, *, shared_by: str | None = None) -> Message:
        # Fails after a moment, as a lookup would after its first I/O. (Bolt reads the ack
        # every 10 ms; a listener failing sooner after its ack, with an error handler that
        # is as quick, can leave Bolt without the ack it sent.)
        await asyncio.sleep(0.05)
        raise KeyError("site-name")


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
