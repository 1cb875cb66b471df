"""The store's readiness probe writes and reads back, and on SQLite notices that its file
was deleted, replaced or overwritten under the running bot (where `SELECT 1` still answers
from the file the bot opened, and state is silently lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.notices.models import NoticeFilter
from bot.ops import readiness
from bot.ops.readiness import Readiness
from bot.store.database import PROBE_KEY
from bot.store.sql import SqlStore

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(url_of(db_path))
    await opened.open()
    await opened.add_subscription("C1", NoticeFilter(site_id=1001), "U1", NOW)
    yield opened
    await opened.close()


def delete(path: Path) -> None:
    path.unlink()


def overwrite_with_junk(path: Path) -> None:
    """The same file (inode), its bytes junk."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.write(b"\xde\xad\xbe\xef" * (size // 4))


async def store_check(store: SqlStore) -> tuple[bool, str]:
    check = (await Readiness(stale_after=60).checks(store))["store"]
    return check.ok, check.detail


async def test_a_healthy_store_writes_and_reads_back(store: SqlStore) -> None:
    assert await store.problem() is None
    first = await store.get_state(PROBE_KEY)
    assert await store.ping() is True
    assert first is not None and await store.get_state(PROBE_KEY) not in (None, first)  # written anew
    assert await store_check(store) == (True, "reads and writes")


async def test_a_deleted_file_is_not_ready(store: SqlStore, db_path: Path) -> None:
    delete(db_path)
    ok, detail = await store_check(store)
    assert not ok
    assert f"the database file {db_path} is gone" in detail and "restart" in detail
    assert await store.ping() is False


async def test_a_file_replaced_by_another_database_is_not_ready(store: SqlStore, db_path: Path,
                                                                tmp_path: Path) -> None:
    other = SqlStore(url_of(tmp_path / "other.db"))
    await other.open()
    await other.close()
    os.replace(tmp_path / "other.db", db_path)
    ok, detail = await store_check(store)
    assert not ok
    assert f"the database file {db_path} was replaced by another file" in detail


async def test_a_file_overwritten_with_junk_is_not_ready(store: SqlStore, db_path: Path) -> None:
    overwrite_with_junk(db_path)
    ok, detail = await store_check(store)
    assert not ok
    assert f"the database file {db_path} is not an SQLite database any more" in detail
    assert "restore it from a backup" in detail


class StuckStore:
    """A store whose probe is stuck where no cancellation reaches (as SQLite's busy wait is,
    in its thread): cancelled, it still finishes only when `released`."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.probes = 0

    async def problem(self) -> str | None:
        self.probes += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self.released.wait()
            raise
        return None  # never reached


async def test_a_stuck_probe_is_not_waited_for_nor_started_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "STORE_PING_TIMEOUT", 0.05)
    store = StuckStore()
    checks = Readiness(stale_after=60)
    # Should /readyz wait for the probe after all, it is let go in the end, and fails below.
    asyncio.get_running_loop().call_later(5, store.released.set)
    for _ in range(3):
        check = (await checks.checks(store))["store"]  # type: ignore[arg-type]
        assert not store.released.is_set(), "/readyz waited for a stuck probe"
        assert (check.ok, check.detail) == (False, "no answer within 0.05s")
    assert store.probes == 1
    probe = checks._store_probe
    assert probe is not None and not probe.done()
    store.released.set()
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
