"""Pruning with as many runs to keep as a busy installation lists: no statement may bind more
parameters than the database allows (32 767 on PostgreSQL, and on SQLite's default build).
Some SQLite builds allow more, so the tests count what each statement binds themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from bot.store.sql import SqlStore

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=10)
BEFORE = NOW - timedelta(days=1)
KEPT = 40_100  # beyond 32 767 kept ids, where one NOT IN per chunk made the statement fail
# The most parameters any statement of a prune may bind: one batch of ids and the time bound.
BOUND = 501


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(f"sqlite+aiosqlite:///{db_path}")
    await opened.open()
    yield opened
    await opened.close()


def run_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(count)]


def stored(path: Path, query: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = {row[0] for row in conn.execute(query)}
    conn.close()
    return found


@pytest.fixture
def largest_binding(store: SqlStore) -> list[int]:
    """The most parameters any one statement has bound so far (SQLAlchemy's own count)."""
    most = [0]
    engine = store._db._engine.sync_engine

    def count(conn: object, cursor: object, statement: str, parameters: object, context: object,
              executemany: bool) -> None:
        rows = parameters if executemany and isinstance(parameters, list) else [parameters]
        for row in rows:
            most[0] = max(most[0], len(row) if isinstance(row, tuple | list | dict) else 0)

    event.listen(engine, "before_cursor_execute", count)
    return most


async def test_prune_keeps_tens_of_thousands_of_listed_runs(store: SqlStore, db_path: Path,
                                                            largest_binding: list[int]) -> None:
    kept, gone = run_ids("kept", KEPT), run_ids("gone", 1_234)
    recent = run_ids("recent", 10)
    await store.first_seen([*kept, *gone], OLD)
    await store.first_seen(recent, NOW)
    largest_binding[0] = 0

    await store.prune(BEFORE, keep=[*kept, *recent, "never-seen"])

    assert stored(db_path, "SELECT run_id FROM first_seen") == {*kept, *recent}
    assert 0 < largest_binding[0] <= BOUND


async def test_prune_announced_keeps_tens_of_thousands_of_listed_runs(
        store: SqlStore, db_path: Path, largest_binding: list[int]) -> None:
    kept, gone = run_ids("kept", KEPT), run_ids("gone", 777)
    await store.mark_announced([("C1", run_id) for run_id in [*kept, *gone]], OLD)
    await store.mark_announced([("C2", run_id) for run_id in gone[:5]], OLD)
    await store.mark_announced([("C1", "recent")], NOW)
    largest_binding[0] = 0

    dropped = await store.prune_announced(BEFORE, keep=kept)

    assert dropped == len(gone) + 5
    assert stored(db_path, "SELECT run_id FROM announced") == {*kept, "recent"}
    assert 0 < largest_binding[0] <= BOUND


async def test_prune_with_nothing_to_keep_drops_everything_old(store: SqlStore, db_path: Path) -> None:
    await store.first_seen(run_ids("old", 1_200), OLD)
    await store.first_seen(["recent"], NOW)
    await store.prune(BEFORE)
    assert stored(db_path, "SELECT run_id FROM first_seen") == {"recent"}
