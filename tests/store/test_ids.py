"""Ids in the store are 64-bit: the widest stored exactly, anything larger refused before
any SQL with a domain error (never a driver's OverflowError), and older databases widened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from bot.notices.models import Incident, Mute, NoticeFilter
from bot.store import schema
from bot.store.base import MAX_ID, IdOutOfRangeError, StoreError
from bot.store.database import Database
from bot.store.sql import SqlStore

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOO_LARGE = [MAX_ID + 1, 2**64, 10**20, -MAX_ID - 2]


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(url_of(tmp_path / "bot.db"))
    await opened.open()
    yield opened
    await opened.close()


def incident(site_id: int | None = 7, **changes: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 0, "channel_id": "C1", "site_id": site_id, "connector_id": "conn", "message_ts": "1.1",
        "run": {"id": "run-1"}, "failures": 1, "muted_failures": 0,
        "first_failed_at": NOW, "last_failed_at": NOW,
    }
    values.update(changes)
    return Incident(**values)


async def test_the_widest_64_bit_site_id_is_stored_exactly(store: SqlStore) -> None:
    saved = await store.save_incident(incident(site_id=MAX_ID))
    assert (await store.incident(saved.id)).site_id == MAX_ID  # type: ignore[union-attr]
    until = NOW + timedelta(hours=1)
    await store.set_mute(Mute("C1", MAX_ID, "conn", until, "U1"))
    await store.count_suppressed("C1", MAX_ID, "conn")
    [mute] = await store.active_mutes(NOW)
    assert (mute.site_id, mute.suppressed) == (MAX_ID, 1)
    await store.delete_mute("C1", MAX_ID, "conn")
    assert await store.active_mutes(NOW) == []


@pytest.mark.parametrize("number", TOO_LARGE)
async def test_a_site_id_beyond_64_bits_is_refused_by_name(store: SqlStore, number: int) -> None:
    with pytest.raises(IdOutOfRangeError, match=rf"site id {number} is out of range.*{MAX_ID}"):
        await store.save_incident(incident(site_id=number))
    with pytest.raises(IdOutOfRangeError, match=f"site id {number}"):
        await store.set_mute(Mute("C1", number, None, NOW + timedelta(hours=1), "U1"))
    assert await store.open_incidents() == [] and await store.active_mutes(NOW) == []


async def test_a_thousand_digit_id_is_named_shortly(store: SqlStore) -> None:
    with pytest.raises(IdOutOfRangeError) as raised:
        await store.save_incident(incident(site_id=10**999))
    assert "(1000 digits)" in str(raised.value) and len(str(raised.value)) < 200


@pytest.mark.parametrize("number", TOO_LARGE)
async def test_an_id_no_row_can_have_is_simply_not_found(store: SqlStore, number: int) -> None:
    assert await store.incident(number) is None
    assert await store.update_incident(number, lambda i: i) is None
    assert await store.remove_subscription("C1", number) is False
    with pytest.raises(IdOutOfRangeError, match=f"incident id {number}"):
        await store.save_incident(incident(id=number))


async def test_an_overflow_the_checks_missed_is_a_store_error(tmp_path: Path) -> None:
    database = Database(url_of(tmp_path / "bot.db"))
    await database.open()
    try:
        with pytest.raises(IdOutOfRangeError, match="too large for its 64-bit columns") as raised:
            async with database.transaction(write=False) as conn:
                await conn.execute(text("SELECT :n"), {"n": 2**64})
        assert isinstance(raised.value, StoreError)
    finally:
        await database.close()


# -- widening an older database ------------------------------------------------------------------


async def test_a_database_of_the_previous_version_is_migrated_with_its_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bot.db"
    index = schema.MIGRATIONS.index(schema._widen_ids_to_64_bits)
    with monkeypatch.context() as previous:
        previous.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:index])
        older = SqlStore(url_of(path))
        await older.open()
        subscription = await older.add_subscription("C1", NoticeFilter(site_id=1001), "U1", NOW)
        kept = await older.save_incident(incident(site_id=1001))
        await older.set_mute(Mute("C1", 1001, None, NOW + timedelta(hours=1), "U1"))
        await older.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == index + 1
    conn.close()

    migrated = SqlStore(url_of(path))
    await migrated.open()
    try:
        assert [s.id for s in await migrated.subscriptions("C1")] == [subscription.id]  # type: ignore[union-attr]
        assert await migrated.incident(kept.id) == kept
        assert [m.site_id for m in await migrated.active_mutes(NOW)] == [1001]
        wide = await migrated.save_incident(incident(site_id=MAX_ID))
        assert wide.id > kept.id and (await migrated.incident(wide.id)).site_id == MAX_ID  # type: ignore[union-attr]
    finally:
        await migrated.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == schema.schema_version()
    conn.close()


class RecordingConnection:
    """Just enough of a PostgreSQL `Connection` to record what a migration runs."""

    def __init__(self, dialect: str = "postgresql") -> None:
        self.dialect = SimpleNamespace(name=dialect)
        self.statements: list[str] = []

    def execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        self.statements.append(str(statement))
        table = (parameters or {}).get("table")
        recording = self

        class Result:
            def scalar_one(self) -> str:
                recording.statements[-1] += f" [{table}]"
                return f"public.{table}_id_seq"

        return Result()


def test_on_postgresql_the_id_columns_and_their_sequences_become_bigint() -> None:
    conn = RecordingConnection()
    schema._widen_ids_to_64_bits(conn)  # type: ignore[arg-type]
    altered = [s for s in conn.statements if s.startswith("ALTER")]
    assert altered == [
        "ALTER TABLE subscriptions ALTER COLUMN id TYPE BIGINT",
        "ALTER TABLE incidents ALTER COLUMN id TYPE BIGINT",
        "ALTER TABLE incidents ALTER COLUMN site_id TYPE BIGINT",
        "ALTER TABLE mutes ALTER COLUMN site_key TYPE BIGINT",
        "ALTER TABLE mutes ALTER COLUMN site_id TYPE BIGINT",
        "ALTER SEQUENCE public.subscriptions_id_seq AS BIGINT",
        "ALTER SEQUENCE public.incidents_id_seq AS BIGINT",
    ]


def test_on_sqlite_nothing_changes_its_integers_are_64_bit_already() -> None:
    conn = RecordingConnection("sqlite")
    schema._widen_ids_to_64_bits(conn)  # type: ignore[arg-type]
    assert conn.statements == []
