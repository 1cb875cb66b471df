"""A new SQLite file that another connection is writing to while the store opens it: the
store waits its turn, and the file ends up in WAL mode all the same."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.store.schema import schema_version
from bot.store.sql import SqlStore


async def test_a_store_opening_a_file_another_connection_writes_to_waits_and_switches_it_to_wal(
        tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    other = sqlite3.connect(path, isolation_level=None)  # a new file, in rollback-journal mode
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the file's write lock
        other.execute("CREATE TABLE other_app (id INTEGER PRIMARY KEY)")
        store = SqlStore(f"sqlite+aiosqlite:///{path}")
        connected = asyncio.Event()
        loop = asyncio.get_running_loop()

        def after_connect(_dbapi_connection: Any, _record: Any) -> None:
            # Called after the store's own set-up of the connection (WAL included) ran.
            loop.call_soon_threadsafe(connected.set)

        # On the store's own engine, after its set-up listener: when this runs, the switch to WAL
        # has been tried while the other writer holds the lock.
        event.listen(store._db._engine.sync_engine, "connect", after_connect)
        opening = asyncio.create_task(store.open())
        set_up = asyncio.create_task(connected.wait())
        await asyncio.wait({opening, set_up}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        set_up.cancel()
        if opening.done():
            opening.result()  # it must not have given up
        assert connected.is_set(), "the store never connected"
        other.execute("COMMIT")  # the other writer is done: the store's turn
        await asyncio.wait_for(opening, 30)
        await store.close()
    finally:
        other.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == schema_version()
    conn.close()
