"""The store on SQLAlchemy Core (async): SQLite by default, PostgreSQL with the same code.

Only portable column types and statements are used, so a `postgresql+asyncpg://` URL works
unchanged. SQLite gets WAL and a busy timeout so the HTTP handlers and the poller can share
one file, and SQLAlchemy (not the sqlite3 module) emits BEGIN so that every method really
is one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.notices.models import Incident, Mute, NoticeFilter, Subscription
from bot.store.base import SCHEMA_VERSION, SchemaTooNewError, Store, StoreError

logger = logging.getLogger(__name__)

# Larger IN lists hit parameter limits (SQLite's default is 999 on old builds).
IN_CHUNK = 500
# How long a SQLite connection waits for another's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000
FIX_HINT = (
    "make sure its directory exists and is writable by the user running cde-bot, "
    "or set DATABASE_URL to a writable location, e.g. sqlite+aiosqlite:////data/cde-bot.db"
)
# Execution option that marks a transaction as one that will write (BEGIN IMMEDIATE on SQLite).
_WRITE_OPTION = "cde_bot_write"
# Mutes may name no site or no connector; NULL can't take part in a primary key, so the key
# columns hold these instead (real ids are positive and non-empty).
_NO_SITE = -1
_NO_CONNECTOR = ""


# -- schema -------------------------------------------------------------------------------


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored and returned in UTC.

    SQLite keeps no offset, so values are converted to UTC before they are written (which
    also keeps its text comparisons correct) and tagged as UTC when read back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"datetimes given to the store must be timezone-aware, got {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    # Named constraints, so that future migrations can refer to them on every database.
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

schema_version_table = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1: one row
    Column("version", Integer, nullable=False),
)

subscriptions_table = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(255), nullable=False),
    Column("filter", JSON, nullable=False),
    Column("filter_key", String(1024), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel_id", "filter_key"),
    # Never reuse a removed subscription's id: users remove subscriptions by id.
    sqlite_autoincrement=True,
)

announced_table = Table(
    "announced",
    metadata,
    Column("channel_id", String(255), nullable=False),
    Column("run_id", String(255), nullable=False),
    Column("announced_at", UtcDateTime, nullable=False),
    # run_id first: lookups are by run id, and this way the key's index serves them.
    PrimaryKeyConstraint("run_id", "channel_id"),
    Index(None, "announced_at"),
)

incidents_table = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(255), nullable=False),
    Column("site_id", Integer, nullable=True),
    Column("connector_id", String(255), nullable=True),
    Column("message_ts", String(64), nullable=False),
    Column("run", JSON, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("muted_failures", Integer, nullable=False),
    Column("first_failed_at", UtcDateTime, nullable=False),
    Column("last_failed_at", UtcDateTime, nullable=False),
    Column("acknowledged_by", String(255), nullable=True),
    Column("acknowledged_at", UtcDateTime, nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("resolved_by_run", String(255), nullable=True),
    Column("in_digest", Boolean, nullable=False, default=False),
    Index(None, "channel_id", "resolved_at"),
    Index(None, "channel_id", "message_ts"),
    # Buttons carry incident ids; an id must never come to mean another incident.
    sqlite_autoincrement=True,
)

mutes_table = Table(
    "mutes",
    metadata,
    Column("channel_id", String(255), nullable=False),
    Column("site_key", Integer, nullable=False),
    Column("connector_key", String(255), nullable=False),
    Column("site_id", Integer, nullable=True),
    Column("connector_id", String(255), nullable=True),
    Column("until", UtcDateTime, nullable=False),
    Column("muted_by", String(255), nullable=False),
    Column("suppressed", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("channel_id", "site_key", "connector_key"),
)

first_seen_table = Table(
    "first_seen",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False, index=True),
)

state_table = Table(
    "state",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

# Future schema changes go here: MIGRATIONS[n] takes a database at version n - 1 to version n
# (within the transaction `open()` runs it in), and SCHEMA_VERSION in base.py becomes n.
# Write them with portable SQLAlchemy constructs (or branch on `conn.dialect.name`).
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}

_INCIDENT_FIELDS = tuple(f.name for f in dataclasses.fields(Incident) if f.name != "id")


# -- helpers --------------------------------------------------------------------------------


def _filter_key(notice_filter: NoticeFilter) -> str:
    return json.dumps(notice_filter.as_dict(), sort_keys=True, separators=(",", ":"))


def _mute_key(site_id: int | None, connector_id: str | None) -> tuple[int, str]:
    return (
        _NO_SITE if site_id is None else site_id,
        _NO_CONNECTOR if connector_id is None else connector_id,
    )


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig)
    return str(exc)


def _sqlite_file(url: URL) -> Path | None:
    """The database file of an SQLite URL, or None for memory and URI-style databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        return None
    return Path(database)


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (url.database or "") in ("", ":memory:")


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


def store_from_url(url: str) -> SqlStore:
    """A store for `url`; plain `sqlite://` and `postgresql://` URLs get their async drivers."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise StoreError(f"DATABASE_URL is not a valid SQLAlchemy URL: {exc}") from exc
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
               "postgres": "postgresql+asyncpg"}
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    return SqlStore(parsed.render_as_string(hide_password=False))


# -- the store ------------------------------------------------------------------------------


class SqlStore(Store):
    """The store on an SQLAlchemy async database URL: written for SQLite and PostgreSQL."""

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
                f"DATABASE_URL {self._display_url(database_url)} needs the Python package "
                f"{exc.name!r}, which is not installed; install it or use sqlite+aiosqlite:///cde-bot.db"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot use DATABASE_URL {self._display_url(database_url)}: {exc}; "
                "use an async driver, e.g. sqlite+aiosqlite:///cde-bot.db or postgresql+asyncpg://..."
            ) from exc
        self._file = _sqlite_file(self._url)
        if is_sqlite:
            event.listen(self._engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self._engine.sync_engine, "begin", _sqlite_on_begin)
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})
        # SQLite has one writer at a time; queueing this process's writers here costs less than
        # having them poll for the file lock. A memory database is one shared connection, so
        # there every transaction must take its turn.
        self._lock = asyncio.Lock() if is_sqlite else None
        self._lock_reads = _is_sqlite_memory(self._url)

    @staticmethod
    def _display_url(url: str | URL) -> str:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            return "(unparseable)"

    @property
    def _where(self) -> str:
        if self._file is not None:
            return f"the database file {self._file.resolve()}"
        return f"the database {self._display_url(self._url)}"

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
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
                raise StoreError(f"{self._where} failed: {_reason(exc)}") from exc

    # -- lifecycle --------------------------------------------------------------------------

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
                    f"cannot create the directory {exc.filename or self._file.parent} for {self._where}: "
                    f"{exc.strerror or exc}; {FIX_HINT}"
                ) from exc
        try:
            async with self._transaction(write=True) as conn:
                await conn.run_sync(self._create_or_migrate)
        except StoreError as exc:
            cause = exc.__cause__
            if self._file is None or not isinstance(cause, DBAPIError | OSError):
                raise
            raise StoreError(f"cannot open {self._where}: {_reason(cause)}; {FIX_HINT}") from cause

    def _create_or_migrate(self, conn: Connection) -> None:
        found = None
        if inspect(conn).has_table(schema_version_table.name):
            found = conn.execute(
                select(schema_version_table.c.version).where(schema_version_table.c.id == 1)
            ).scalar_one_or_none()
        if found is None:
            metadata.create_all(conn)
            conn.execute(insert(schema_version_table).values(id=1, version=SCHEMA_VERSION))
            logger.info("created schema version %d in %s", SCHEMA_VERSION, self._where)
            return
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self._where} has schema version {found}, but this cde-bot knows only up to "
                f"version {SCHEMA_VERSION}: it was written by a newer cde-bot. Upgrade cde-bot, "
                "or point DATABASE_URL at another database."
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            migrate = MIGRATIONS.get(version)
            if migrate is None:
                raise StoreError(f"no migration from schema version {version - 1} to {version}")
            migrate(conn)
            logger.info("migrated %s to schema version %d", self._where, version)
        if found < SCHEMA_VERSION:
            conn.execute(
                update(schema_version_table)
                .where(schema_version_table.c.id == 1)
                .values(version=SCHEMA_VERSION)
            )

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers `SELECT 1`; errors are logged, not raised."""
        try:
            async with self._transaction(write=False) as conn:
                await conn.execute(text("SELECT 1"))
        except (StoreError, SQLAlchemyError, OSError):
            logger.warning("database ping failed for %s", self._where, exc_info=True)
            return False
        return True

    # -- subscriptions ------------------------------------------------------------------------

    async def add_subscription(
        self, channel_id: str, notice_filter: NoticeFilter, created_by: str, now: datetime
    ) -> Subscription | None:
        """The new subscription, or None when the channel already has this same filter."""
        try:
            async with self._transaction(write=True) as conn:
                result = await conn.execute(
                    insert(subscriptions_table).values(
                        channel_id=channel_id,
                        filter=notice_filter.as_dict(),
                        filter_key=_filter_key(notice_filter),
                        created_by=created_by,
                        created_at=now,
                    )
                )
                new_id = result.inserted_primary_key[0]
        except IntegrityError:
            return None
        return Subscription(
            id=new_id, channel_id=channel_id, notice_filter=notice_filter,
            created_by=created_by, created_at=now.astimezone(UTC),
        )

    async def subscriptions(self, channel_id: str | None = None) -> list[Subscription]:
        """A channel's subscriptions (every channel's when None), oldest first."""
        t = subscriptions_table
        query = select(t).order_by(t.c.created_at, t.c.id)
        if channel_id is not None:
            query = query.where(t.c.channel_id == channel_id)
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Subscription(
                id=row["id"], channel_id=row["channel_id"],
                notice_filter=NoticeFilter.from_dict(row["filter"]),
                created_by=row["created_by"], created_at=row["created_at"],
            )
            for row in rows
        ]

    async def remove_subscription(self, channel_id: str, subscription_id: int) -> bool:
        """False when the channel has no subscription with that id."""
        t = subscriptions_table
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                delete(t).where(t.c.channel_id == channel_id, t.c.id == subscription_id)
            )
        return result.rowcount > 0

    async def remove_all_subscriptions(self, channel_id: str) -> int:
        """How many were removed."""
        t = subscriptions_table
        async with self._transaction(write=True) as conn:
            result = await conn.execute(delete(t).where(t.c.channel_id == channel_id))
        return result.rowcount

    # -- announced runs -----------------------------------------------------------------------

    @staticmethod
    async def _announced(conn: AsyncConnection, run_ids: Sequence[str]) -> set[tuple[str, str]]:
        t = announced_table
        found: set[tuple[str, str]] = set()
        for chunk in _chunks(run_ids):
            rows = await conn.execute(select(t.c.channel_id, t.c.run_id).where(t.c.run_id.in_(chunk)))
            found.update((channel_id, run_id) for channel_id, run_id in rows)
        return found

    async def announced(self, run_ids: Iterable[str]) -> set[tuple[str, str]]:
        """Of these runs, the (channel_id, run_id) pairs already told."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return set()
        async with self._transaction(write=False) as conn:
            return await self._announced(conn, wanted)

    async def _announce(self, conn: AsyncConnection, pairs: Iterable[tuple[str, str]],
                        at: datetime) -> None:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return
        known = await self._announced(conn, list(dict.fromkeys(run for _, run in wanted)))
        rows = [
            {"channel_id": channel_id, "run_id": run_id, "announced_at": at}
            for channel_id, run_id in wanted
            if (channel_id, run_id) not in known
        ]
        if rows:
            await conn.execute(insert(announced_table), rows)

    async def mark_announced(self, pairs: Iterable[tuple[str, str]], at: datetime) -> None:
        """Record (channel_id, run_id) pairs as told; recording one twice is harmless."""
        wanted = list(pairs)
        if not wanted:
            return

        async def attempt() -> None:
            async with self._transaction(write=True) as conn:
                await self._announce(conn, wanted, at)

        await self._retry_on_conflict(attempt)

    async def prune_announced(self, before: datetime, keep: Iterable[str] = ()) -> int:
        """Forget records older than `before`, except those of the runs in `keep`."""
        t = announced_table
        kept = list(dict.fromkeys(keep))
        async with self._transaction(write=True) as conn:
            query = delete(t).where(t.c.announced_at < before)
            for chunk in _chunks(kept):
                query = query.where(t.c.run_id.not_in(chunk))
            result = await conn.execute(query)
        return result.rowcount

    async def first_seen(self, run_ids: Iterable[str], now: datetime) -> dict[str, datetime]:
        """When each run was first seen, recording `now` for the ones never seen before."""
        wanted = list(dict.fromkeys(run_ids))
        if not wanted:
            return {}
        t = first_seen_table
        seen: dict[str, datetime] = {}

        async def attempt() -> None:
            seen.clear()
            async with self._transaction(write=True) as conn:
                for chunk in _chunks(wanted):
                    rows = await conn.execute(select(t.c.run_id, t.c.seen_at).where(t.c.run_id.in_(chunk)))
                    seen.update({row.run_id: row.seen_at for row in rows})
                new = [{"run_id": run_id, "seen_at": now} for run_id in wanted if run_id not in seen]
                if new:
                    await conn.execute(insert(t), new)
                    seen.update({row["run_id"]: now for row in new})

        await self._retry_on_conflict(attempt)
        return seen

    async def prune(self, before: datetime, keep: Iterable[str] = ()) -> None:
        """Drop what is older than `before`: first sightings (but those of `keep`), resolved
        incidents and ended mutes.
        """
        kept = list(dict.fromkeys(keep))
        async with self._transaction(write=True) as conn:
            query = delete(first_seen_table).where(first_seen_table.c.seen_at < before)
            for chunk in _chunks(kept):
                query = query.where(first_seen_table.c.run_id.not_in(chunk))
            await conn.execute(query)
            await conn.execute(delete(incidents_table).where(incidents_table.c.resolved_at < before))
            await conn.execute(delete(mutes_table).where(mutes_table.c.until < before))

    # -- incidents ---------------------------------------------------------------------------

    @staticmethod
    def _incident(row: Any) -> Incident:
        return Incident(id=row["id"], **{name: row[name] for name in _INCIDENT_FIELDS})

    async def _incidents(self, *conditions: Any) -> list[Incident]:
        t = incidents_table
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(select(t).where(*conditions).order_by(t.c.id))).mappings().all()
        return [self._incident(row) for row in rows]

    async def open_incidents(self, channel_id: str | None = None) -> list[Incident]:
        """Unresolved incidents of a channel (of every channel when None), oldest first."""
        t = incidents_table
        conditions = [t.c.resolved_at.is_(None)]
        if channel_id is not None:
            conditions.append(t.c.channel_id == channel_id)
        return await self._incidents(*conditions)

    async def incident(self, incident_id: int) -> Incident | None:
        """The incident with this id, or None."""
        found = await self._incidents(incidents_table.c.id == incident_id)
        return found[0] if found else None

    async def incidents_of_message(self, channel_id: str, message_ts: str) -> list[Incident]:
        """Every incident whose parent is this message (one for a notice, more for a digest)."""
        t = incidents_table
        return await self._incidents(t.c.channel_id == channel_id, t.c.message_ts == message_ts)

    async def save_incident(self, incident: Incident, *, announce: Iterable[tuple[str, str]] = (),
                            at: datetime | None = None) -> Incident:
        """Insert when `incident.id == 0` (returning it with its new id), else update; and
        record `announce` as told, in the same transaction.

        Raises `StoreError` when updating an id that does not exist.
        """
        [saved] = await self.save_incidents([incident], announce=announce, at=at)
        return saved

    async def save_incidents(self, incidents: Sequence[Incident], *,
                             announce: Iterable[tuple[str, str]] = (),
                             at: datetime | None = None) -> list[Incident]:
        """`save_incident` for several incidents at once, all in one transaction."""
        t = incidents_table
        pairs = list(announce)
        saved = []
        async with self._transaction(write=True) as conn:
            for incident in incidents:
                values = {name: getattr(incident, name) for name in _INCIDENT_FIELDS}
                if incident.id == 0:
                    result = await conn.execute(insert(t).values(**values))
                    incident = dataclasses.replace(incident, id=result.inserted_primary_key[0])
                else:
                    result = await conn.execute(update(t).where(t.c.id == incident.id).values(**values))
                    if result.rowcount == 0:
                        raise StoreError(f"no incident with id {incident.id} to update")
                saved.append(incident)
            if pairs:
                await self._announce(conn, pairs, at or saved[0].last_failed_at)
        return saved

    async def update_incident(
        self, incident_id: int, change: Callable[[Incident], Incident], *,
        announce: Iterable[tuple[str, str]] = (), at: datetime | None = None,
    ) -> Incident | None:
        """Apply `change` to the incident as it is stored now, in one transaction that holds
        the row, so that a click and a poll never overwrite each other's update.
        """
        t = incidents_table
        pairs = list(announce)
        async with self._transaction(write=True) as conn:
            row = (await conn.execute(
                select(t).where(t.c.id == incident_id).with_for_update()
            )).mappings().first()
            if row is None:
                return None
            changed = change(self._incident(row))
            values = {name: getattr(changed, name) for name in _INCIDENT_FIELDS}
            await conn.execute(update(t).where(t.c.id == incident_id).values(**values))
            if pairs:
                await self._announce(conn, pairs, at or changed.last_failed_at)
        return changed

    # -- mutes ---------------------------------------------------------------------------------

    async def set_mute(self, mute: Mute) -> None:
        """Create or replace the mute for (channel, site, connector), counter included."""
        site_key, connector_key = _mute_key(mute.site_id, mute.connector_id)
        await self._upsert(
            mutes_table,
            {"channel_id": mute.channel_id, "site_key": site_key, "connector_key": connector_key},
            {"site_id": mute.site_id, "connector_id": mute.connector_id, "until": mute.until,
             "muted_by": mute.muted_by, "suppressed": mute.suppressed},
        )

    async def active_mutes(self, now: datetime) -> list[Mute]:
        """Mutes still in force at `now` (ending after it)."""
        t = mutes_table
        query = select(t).where(t.c.until > now).order_by(t.c.channel_id, t.c.site_key, t.c.connector_key)
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Mute(
                channel_id=row["channel_id"], site_id=row["site_id"], connector_id=row["connector_id"],
                until=row["until"], muted_by=row["muted_by"], suppressed=row["suppressed"],
            )
            for row in rows
        ]

    async def ended_mutes(self, now: datetime) -> list[Mute]:
        """Mutes that have run out but are still stored (their end not yet told)."""
        t = mutes_table
        query = select(t).where(t.c.until <= now).order_by(t.c.channel_id, t.c.site_key, t.c.connector_key)
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Mute(
                channel_id=row["channel_id"], site_id=row["site_id"], connector_id=row["connector_id"],
                until=row["until"], muted_by=row["muted_by"], suppressed=row["suppressed"],
            )
            for row in rows
        ]

    async def delete_mute(self, channel_id: str, site_id: int | None, connector_id: str | None) -> None:
        t = mutes_table
        site_key, connector_key = _mute_key(site_id, connector_id)
        async with self._transaction(write=True) as conn:
            await conn.execute(delete(t).where(t.c.channel_id == channel_id, t.c.site_key == site_key,
                                               t.c.connector_key == connector_key))

    async def count_suppressed(self, channel_id: str, site_id: int | None,
                               connector_id: str | None) -> None:
        """Add one to the mute's count of failures not posted; nothing when there is no mute."""
        t = mutes_table
        site_key, connector_key = _mute_key(site_id, connector_id)
        async with self._transaction(write=True) as conn:
            await conn.execute(
                update(t)
                .where(t.c.channel_id == channel_id, t.c.site_key == site_key,
                       t.c.connector_key == connector_key)
                .values(suppressed=t.c.suppressed + 1)
            )

    # -- poller state --------------------------------------------------------------------------

    async def get_state(self, key: str) -> str | None:
        """The value stored under `key`, or None."""
        t = state_table
        async with self._transaction(write=False) as conn:
            return (await conn.execute(select(t.c.value).where(t.c.key == key))).scalar_one_or_none()

    async def set_state(self, key: str, value: str | None) -> None:
        """Set (or with None, delete) a small named value, such as the last poll time."""
        if value is None:
            t = state_table
            async with self._transaction(write=True) as conn:
                await conn.execute(delete(t).where(t.c.key == key))
            return
        await self._upsert(state_table, {"key": key}, {"value": value})

    # -- portable upsert ---------------------------------------------------------------------

    async def _upsert(self, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with this key, or insert it; one transaction."""
        async def attempt() -> None:
            async with self._transaction(write=True) as conn:
                where = [table.c[name] == value for name, value in key.items()]
                result = await conn.execute(update(table).where(*where).values(**values))
                if result.rowcount == 0:
                    await conn.execute(insert(table).values(**key, **values))

        await self._retry_on_conflict(attempt)

    async def _retry_on_conflict(self, attempt: Callable[[], Any]) -> None:
        # SQLite serialises writers (BEGIN IMMEDIATE), so a conflict there is impossible; on
        # PostgreSQL a concurrent transaction may insert the same key between our read and
        # our insert. The second attempt, in a fresh transaction, sees that row.
        try:
            await attempt()
        except IntegrityError:
            try:
                await attempt()
            except IntegrityError as exc:
                raise StoreError(f"{self._where} failed: {_reason(exc)}") from exc
