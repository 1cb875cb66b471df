"""The connection side of the SQL store: the async engine, one transaction at a time where
SQLite needs it, and opening (creating or migrating) the database.

SQLite gets WAL and a busy timeout so the HTTP handlers and the poller can share one file,
and SQLAlchemy (not the sqlite3 module) emits BEGIN so that every transaction really is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy import Connection, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store import leases, schema, urls
from bot.store.base import IdOutOfRangeError, Lease, StoreError

logger = logging.getLogger(__name__)

# How long a SQLite connection waits for another's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000
FIX_HINT = (
    "make sure its directory exists and is writable by the user running cde-bot, "
    "or set DATABASE_URL to a writable location, e.g. sqlite+aiosqlite:////data/cde-bot.db"
)
SERVER_HINT = (
    "check that the PostgreSQL server is up and reachable from here, and that DATABASE_URL's "
    "host, port, user, password and database are right (create the database first: cde-bot "
    "creates the tables, not the database)"
)
# The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
# The state row the readiness probe writes and reads back.
PROBE_KEY = "readiness_probe"
# Execution option that marks a transaction as one that will write (BEGIN IMMEDIATE on SQLite).
_WRITE_OPTION = "cde_bot_write"
# The lease the writes of this context are fenced by (the poller's task and the tasks it
# starts); the listeners' writes are not.
_fence: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("cde_bot_fence", default=None)


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
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> bool:
    """Put the file in WAL mode (it stays so), which lets readers go on while one connection
    writes; True once it is.

    Switching needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting out busy_timeout, when another connection is in a transaction (replicas
    opening a new file together). The switch is then left to `Database.open`, which retries
    it; until then this connection works in the file's current mode, which is safe, and
    picks up WAL when the file changes to it.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return True
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    return str(cursor.fetchone()[0]).lower() == "wal"


def _switch_connection_to_wal(conn: Connection) -> bool:
    # On the driver's connection, outside any transaction SQLAlchemy would begin.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return _switch_to_wal(cursor)
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
            self._url = make_url(urls.async_url(database_url))
            urls.check_driver(self._url)
            is_sqlite = self._url.get_backend_name() == "sqlite"
            self._engine: AsyncEngine = create_async_engine(
                self._url,
                # A long-running bot outlives server restarts; SQLite has no server.
                pool_pre_ping=not is_sqlite,
            )
        except ImportError as exc:
            raise StoreError(urls.missing_package(self._url, exc.name)) from exc
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
        # The SQLite file as opened (device, inode): a file put in its place is another one.
        self._identity: tuple[int, int] | None = None

    @property
    def where(self) -> str:
        """The database as messages name it: its file, or its URL without the password."""
        if self._file is not None:
            return f"the database file {self._file.resolve()}"
        return f"the database {urls.display_url(self._url)}"

    @contextlib.contextmanager
    def fenced(self, lease: Lease) -> Iterator[None]:
        """Write transactions in this context check `lease` first (see `bot.store.leases`)."""
        token = _fence.set(lease)
        try:
            yield
        finally:
            _fence.reset(token)

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """One transaction; `write` ones take SQLite's write lock up front, and check the
        lease of a fenced context (raising `LeaseLost`, a `StoreError`, when it is gone).

        Driver and OS errors become `StoreError`; an `IntegrityError` is passed on as it is.
        """
        engine = self._writer if write else self._engine
        fence = _fence.get() if write else None
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None and (write or self._lock_reads):
                await stack.enter_async_context(self._lock)
            try:
                async with engine.begin() as conn:
                    if fence is not None:
                        await leases.check(conn, fence)
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
            if self._file is not None:
                await self._ensure_wal()
        except IntegrityError as exc:
            # The migration lock makes this impossible between cde-bots that take it; an
            # older cde-bot (from before the lock) starting alongside does not.
            raise StoreError(
                f"cannot create or migrate the schema of {self.where}: {reason(exc)}; another "
                "cde-bot was changing it at the same time (one older than this, which does "
                "not wait for the others): start this cde-bot again once the others are up"
            ) from exc
        except StoreError as exc:
            cause = exc.__cause__
            if not isinstance(cause, DBAPIError | OSError):
                raise
            hint = FIX_HINT if self._file is not None else SERVER_HINT
            raise StoreError(f"cannot open {self.where}: {reason(cause)}; {hint}") from cause
        if self._file is not None:
            found = self._file.stat()
            self._identity = (found.st_dev, found.st_ino)

    async def _ensure_wal(self) -> None:
        """Switch the SQLite file to WAL if no connection could yet (see `_switch_to_wal`),
        retrying while other connections hold it for up to busy_timeout, as SQLite would."""
        waited, pause = 0.0, 0.01
        async with self._engine.connect() as conn:
            while not await conn.run_sync(_switch_connection_to_wal):
                if waited * 1000 >= SQLITE_BUSY_TIMEOUT_MS:
                    raise StoreError(f"{self.where} could not be switched to WAL mode: database is locked")
                await asyncio.sleep(pause)
                waited, pause = waited + pause, min(pause * 2, 0.5)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database reads and writes (see `problem`)."""
        return await self.problem() is None

    async def problem(self) -> str | None:
        """Why the store cannot keep the bot's state right now, or None when it can: the
        SQLite file is the one opened and still an SQLite database, and a row written in
        one transaction reads back. Errors are logged and described, not raised.
        """
        if self._file is not None:
            found = await asyncio.to_thread(self._file_problem)
            if found is not None:
                logger.warning("database not ready: %s", found)
                return found
        try:
            await self._write_and_read_back()
        except (StoreError, SQLAlchemyError, OSError) as exc:
            logger.warning("database probe failed for %s", self.where, exc_info=True)
            return reason(exc) if isinstance(exc, StoreError) else f"{self.where} failed: {reason(exc)}"
        return None

    def _file_problem(self) -> str | None:
        """What is wrong with the SQLite file under the bot, or None (blocking: a thread's)."""
        assert self._file is not None
        try:
            found = self._file.stat()
            with self._file.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return (f"{self.where} is gone (deleted or moved while the bot runs), so what the "
                    "bot writes is lost when it stops; put the file back, or restart the bot "
                    "to start with an empty one")
        except OSError as exc:
            return f"cannot read {self.where}: {exc.strerror or exc}"
        if self._identity is not None and (found.st_dev, found.st_ino) != self._identity:
            return (f"{self.where} was replaced by another file while the bot runs (the bot "
                    "still writes to the one it opened); restart the bot to use the new one")
        if header != SQLITE_HEADER:
            return (f"{self.where} is not an SQLite database any more (its header was "
                    "overwritten): restore it from a backup, or move it aside and restart "
                    "the bot to start with an empty one")
        return None

    async def _write_and_read_back(self) -> None:
        """Write a fresh value into the state table and read it back, in one transaction."""
        t = schema.state_table
        token = uuid.uuid4().hex

        async def attempt() -> None:
            async with self.transaction(write=True) as conn:
                written = await conn.execute(update(t).where(t.c.key == PROBE_KEY).values(value=token))
                if written.rowcount == 0:
                    await conn.execute(insert(t).values(key=PROBE_KEY, value=token))
                read = await conn.scalar(select(t.c.value).where(t.c.key == PROBE_KEY))
            if read != token:
                raise StoreError(f"{self.where} did not read back what it had just written")

        await self.retry_on_conflict(attempt)
