"""Commands and buttons when the store is locked or broken: each is acked at once and then
answered with what happened (the database is not answering, try again, admins see /readyz),
never a generic error, and never Bolt's 404 after 3 s.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.store import database
from tests.helpers.bolt import OPS, BoltScenario, Sent, all_text, bolt_scenario

STORE_DOWN = "The bot's database is not answering, so nothing was done; try again in a minute."


@pytest.fixture
async def bolt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BoltScenario]:
    # A locked database fails after the busy timeout; a short one keeps the tests short.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    async with bolt_scenario(tmp_path) as scenario:
        yield scenario


@contextlib.contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another process holds the database's write lock (as a backup or a stuck bot may)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def counted(bolt: BoltScenario, command: str, outcome: str) -> float:
    text = bolt.metrics.render().decode()
    found = re.search(rf'cde_bot_commands_total{{command="{command}",outcome="{outcome}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def told_the_store_is_down(bolt: BoltScenario, sent: Sent) -> None:
    assert (sent.status, sent.body) == (200, "")  # acked at once, answered later
    [answer] = bolt.answers(sent)
    text = all_text(answer)
    assert STORE_DOWN in text and "Admins: see `/readyz`" in text, text
    assert re.search(r"Reference: `[0-9a-f]+`", text)
    assert "Something went wrong" not in text
    assert answer["replace_original"] is False


async def test_commands_on_a_locked_database_say_so(bolt: BoltScenario, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with write_locked(tmp_path / "bot.db"):
        for text in ("subscribe site:1001", "unsubscribe 1", "unsubscribe all"):
            told_the_store_is_down(bolt, await bolt.command(text))
    assert counted(bolt, "subscribe", "store_error") == 1
    assert counted(bolt, "unsubscribe", "store_error") == 2
    # The reason is logged, without a traceback: an outage, not a bug.
    [logged, *_] = [r for r in caplog.records if r.getMessage().startswith("The store failed")]
    assert "database is locked" in logged.getMessage() and logged.exc_info is None
    assert bolt.slack.messages(OPS) == []  # nothing announced that was not done


async def test_listing_goes_on_while_another_process_writes(bolt: BoltScenario,
                                                            tmp_path: Path) -> None:
    await bolt.command("subscribe site:1001")
    with write_locked(tmp_path / "bot.db"):  # WAL: readers do not wait for the writer
        [listing] = bolt.answers(await bolt.command("subscriptions"))
    assert "on site 1001" in all_text(listing)


async def test_buttons_on_a_locked_database_say_so(bolt: BoltScenario, tmp_path: Path) -> None:
    incident, notice = await bolt.post_notice()
    with write_locked(tmp_path / "bot.db"):
        told_the_store_is_down(bolt, await bolt.click("incident_ack", notice, user="U0002"))
        told_the_store_is_down(bolt, await bolt.click("incident_mute", notice, selected="4"))
        confirm = {"ts": "1.0", "text": "subscribe to everything?"}
        told_the_store_is_down(bolt, await bolt.click("subscribe_all", confirm))
    assert counted(bolt, "button", "store_error") == 3
    assert await bolt.store.incident(incident.id) == incident  # nothing half done
    assert await bolt.store.active_mutes(bolt.services.clock()) == []


def make_unopenable(path: Path) -> None:
    """The database file and its journals gone, and a directory in the file's place."""
    for file in path.parent.glob(f"{path.name}*"):
        file.unlink()
    path.mkdir()


async def test_a_database_that_fails_at_once_is_answered_not_a_404(bolt: BoltScenario,
                                                                   tmp_path: Path) -> None:
    # The file cannot be opened any more (a disk gone): every transaction fails within a
    # millisecond of the ack, where Bolt used to lose the ack and answer 404 after 3 s.
    _, notice = await bolt.post_notice()
    await bolt.store.close()
    make_unopenable(tmp_path / "bot.db")
    try:
        for text in ("subscriptions", "subscribe site:1001", "unsubscribe 1", "subscriptions"):
            told_the_store_is_down(bolt, await bolt.command(text))
        told_the_store_is_down(bolt, await bolt.click("incident_ack", notice))
        told_the_store_is_down(bolt, await bolt.click("incident_mute", notice, selected="24"))
    finally:
        shutil.rmtree(tmp_path / "bot.db")
