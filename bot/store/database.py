"""The connection side of the SQL store: the async engine, one transaction at a time where
SQLite needs it, and opening (creating or migrating) the database.

SQLite gets WAL and a busy timeout so the HTTP handlers and the poller can share one file,
and SQLAlchemy (not the sqlite3 module) emits BEGIN so that every transaction really is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store import schema, urls
from bot.store.base import IdOutOfRangeError, StoreError

logger = logging.getLogger(__name__)

# How long a SQLite connection waits for another's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000
FIX_HINT = (
    "make sure its directory exists and is writable by the user running cde-bot, "
    "or set DATABASE_URL to a writable location, e.g. sqlite+aiosqlite:////data/cde-bot.db"
)
# Execution option that marks a transaction as one that will write (BEGIN IMMEDIATE on SQLite).
_WRITE_OPTION = "cde_bot_write"


def reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    return str(exc)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin); the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers go on while one connection writes.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front, so its reads and writes are atomic
    # and waiting for another writer goes through busy_timeout rather than failing.
    writes = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class Database:
    """An SQLAlchemy async engine for one database URL, handing out transactions."""

    def __init__(self, database_url: str) -> None:
        try:
            self._url = make_url(database_url)
            is_sqlite = self._url.get_backend_name() == "sqlite"
            self._engine: AsyncEngine = create_async_engine(
                self._url,
                # A long-running bot outlives server restarts; SQLite has no server.
                pool_pre_ping=not is_sqlite,
            )
        except ImportError as exc:
            raise StoreError(
                f"DATABASE_URL {urls.display_url(database_url)} needs the Python package "
                f"{exc.name!r}, which is not installed; install it or use sqlite+aiosqlite:///cde-bot.db"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot use DATABASE_URL {urls.display_url(database_url)}: {exc}; "
                "use an async driver, e.g. sqlite+aiosqlite:///cde-bot.db or postgresql+asyncpg://..."
            ) from exc
        self._file = urls.sqlite_file(self._url)
        if is_sqlite:
            event.listen(self._engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self._engine.sync_engine, "begin", _sqlite_on_begin)
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})
        # SQLite has one writer at a time; queueing this process's writers here costs less than
        # having them poll for the file lock. A memory database is one shared connection, so
        # there every transaction must take its turn.
        self._lock = asyncio.Lock() if is_sqlite else None
        self._lock_reads = urls.is_sqlite_memory(self._url)

    @property
    def where(self) -> str:
        """The database as messages name it: its file, or its URL without the password."""
        if self._file is not None:
            return f"the database file {self._file.resolve()}"
        return f"the database {urls.display_url(self._url)}"

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """One transaction; `write` ones take SQLite's write lock up front.

        Driver and OS errors become `StoreError`; an `IntegrityError` is passed on as it is.
        """
        engine = self._writer if write else self._engine
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None and (write or self._lock_reads):
                await stack.enter_async_context(self._lock)
            try:
                async with engine.begin() as conn:
                    yield conn
            except IntegrityError:
                raise  # the callers that expect one handle it
            except (DBAPIError, OSError) as exc:
                raise StoreError(f"{self.where} failed: {reason(exc)}") from exc
            except OverflowError as exc:
                # sqlite3 raises it for an int beyond 64 bits, before SQLAlchemy sees it. The
                # store checks ids first (base.check_id); this is the edge for any it missed.
                raise IdOutOfRangeError(
                    f"{self.where} refused a number too large for its 64-bit columns: {exc}") from exc

    async def retry_on_conflict(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run `attempt` (one transaction), and once more if it hit a unique key conflict."""
        # SQLite serialises writers (BEGIN IMMEDIATE), so a conflict there is impossible; on
        # PostgreSQL a concurrent transaction may insert the same key between our read and
        # our insert. The second attempt, in a fresh transaction, sees that row.
        try:
            await attempt()
        except IntegrityError:
            try:
                await attempt()
            except IntegrityError as exc:
                raise StoreError(f"{self.where} failed: {reason(exc)}") from exc

    async def open(self) -> None:
        """Create the database (and its directory) if missing, or check and migrate its schema.

        Raises `StoreError` when the database cannot be opened or written, and
        `SchemaTooNewError` when it was written by a newer cde-bot.
        """
        if self._file is not None:
            try:
                self._file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory {exc.filename or self._file.parent} for {self.where}: "
                    f"{exc.strerror or exc}; {FIX_HINT}"
                ) from exc
        try:
            async with self.transaction(write=True) as conn:
                await conn.run_sync(schema.create_or_migrate, self.where)
        except StoreError as exc:
            cause = exc.__cause__
            if self._file is None or not isinstance(cause, DBAPIError | OSError):
                raise
            raise StoreError(f"cannot open {self.where}: {reason(cause)}; {FIX_HINT}") from cause

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers `SELECT 1`; errors are logged, not raised."""
        try:
            async with self.transaction(write=False) as conn:
                await conn.execute(text("SELECT 1"))
        except (StoreError, SQLAlchemyError, OSError):
            logger.warning("database ping failed for %s", self.where, exc_info=True)
            return False
        return True
