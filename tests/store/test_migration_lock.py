"""Replicas starting together on one database: creating and migrating the schema is done
once, under a lock, on both backends; none of them fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.notices.models import NoticeFilter
from bot.store import schema
from bot.store.base import StoreError
from bot.store.sql import SqlStore
from tests.helpers.postgres import fresh_database
from tests.helpers.waiting import until
from tests.store.test_sql_store import version_1_database, version_1_postgresql

REPLICAS = 6
NOW = datetime(2026, 1, 5, tzinfo=UTC)


async def open_at_once(url: str) -> list[SqlStore]:
    """`REPLICAS` stores opening `url` concurrently; fails the test naming every error."""
    stores = [SqlStore(url) for _ in range(REPLICAS)]
    results = await asyncio.gather(*(store.open() for store in stores), return_exceptions=True)
    errors = [f"{type(found).__name__}: {found}" for found in results if isinstance(found, BaseException)]
    if errors:
        await close_all(stores)
        pytest.fail(f"{len(errors)} of {REPLICAS} stores failed to open: " + "; ".join(errors))
    return stores


async def close_all(stores: list[SqlStore]) -> None:
    for store in stores:
        await store.close()


async def version_rows(url: str) -> list[int]:
    """Every version recorded in the schema_version table (one row, when all is well)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(schema.schema_version_table.c.version))).scalars())
    finally:
        await engine.dispose()


async def count(url: str, table: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            found: int = (await conn.execute(select(func.count()).select_from(text(table)))).scalar_one()
            return found
    finally:
        await engine.dispose()


@pytest.mark.parametrize("attempt", range(3))
async def test_replicas_starting_together_on_an_empty_database_create_it_once(
        database_url: str, attempt: int) -> None:
    stores = await open_at_once(database_url)
    try:
        # Every one of them works on the schema the first one made.
        for index, store in enumerate(stores):
            added = await store.add_subscription(f"C{index}", NoticeFilter(site_id=index), "U1", NOW)
            assert added is not None
        assert len(await stores[0].subscriptions()) == REPLICAS
    finally:
        await close_all(stores)
    assert await version_rows(database_url) == [schema.schema_version()]


@pytest.mark.parametrize("attempt", range(2))
async def test_replicas_starting_together_on_a_version_1_database_migrate_it_once(
        database_url: str, tmp_path: Path, attempt: int) -> None:
    if database_url.startswith("sqlite"):
        version_1_database(tmp_path / "bot.db")
    else:
        await version_1_postgresql(database_url)
    stores = await open_at_once(database_url)
    try:
        for store in stores:
            [subscription] = await store.subscriptions()  # the one version 1 held, kept once
            assert subscription.notice_filter == NoticeFilter(site_id=1001)
    finally:
        await close_all(stores)
    assert await version_rows(database_url) == [schema.schema_version()]


def counting_migration(runs: list[int]) -> Callable[[Connection], None]:
    """A next migration that cannot run twice (its CREATE TABLE would fail) and counts its runs."""

    def add_notes(conn: Connection) -> None:
        runs.append(1)
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO notes (id) VALUES (1)"))

    return add_notes


async def test_replicas_of_a_newer_cde_bot_starting_together_run_its_migration_once(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The database as this cde-bot writes it is the previous version of the next one.
    await close_all(await open_at_once(database_url))
    runs: list[int] = []
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, counting_migration(runs)])
    await close_all(await open_at_once(database_url))
    assert runs == [1]
    assert await count(database_url, "notes") == 1
    assert await version_rows(database_url) == [schema.schema_version()]


async def test_a_schema_change_raced_by_an_older_cde_bot_is_told_plainly() -> None:
    """A cde-bot from before the lock creates the schema without waiting for it: the one
    that loses the race says which database, what happened and what to do."""
    import asyncpg

    async with fresh_database() as url:
        older = await asyncpg.connect(dsn(url))
        # Outside the older one's transaction, which would see one snapshot of the activity.
        watcher = await asyncpg.connect(dsn(url))
        try:
            async with older.transaction():
                await older.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER)")
                store = SqlStore(url)
                opening = asyncio.create_task(store.open())
                # Its CREATE TABLE waits for the older one's transaction to end.
                await until(lambda: blocked_behind(watcher, url), "the store's CREATE TABLE to wait")
            with pytest.raises(StoreError) as caught:
                await opening
        finally:
            await older.close()
            await watcher.close()
            await store.close()
    message = str(caught.value)
    assert make_url(url).database in message  # which database
    assert "another cde-bot was changing it at the same time" in message
    assert "start this cde-bot again" in message
    assert "[SQL:" not in message  # the driver's words, not SQLAlchemy's dump


def dsn(url: str) -> str:
    """The asyncpg DSN of an SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def blocked_behind(conn: Any, url: str) -> bool:
    waiting: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        make_url(url).database)
    return waiting > 0
