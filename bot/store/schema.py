"""The store's schema: its tables, the UTC datetime column type, and the schema version
with the migrations that bring an older database up to it.

Only portable column types are used, so SQLite and PostgreSQL share one schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from bot.store.base import SchemaTooNewError, StoreError

logger = logging.getLogger(__name__)

# Ids are 64-bit (see `base.MAX_ID`). A primary key stays INTEGER on SQLite, where only
# `INTEGER PRIMARY KEY` is the rowid that AUTOINCREMENT needs (and it is 64-bit there).
Id = BigInteger().with_variant(Integer(), "sqlite")


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
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel_id", String(255), nullable=False),
    Column("filter", JSON, nullable=False),
    Column("filter_key", String(1024), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("seen_until", UtcDateTime, nullable=True),
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
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel_id", String(255), nullable=False),
    Column("site_id", BigInteger, nullable=True),
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

# One open incident per channel, site and connector, whatever two pollers may try: the
# second to open one fails and rolls its action back (see `ClaimedElsewhere`). NULLs are
# distinct in a unique index, hence the COALESCEs. Written as DDL, which SQLite and
# PostgreSQL spell alike: an `Index` with `postgresql_where` would import SQLAlchemy's
# PostgreSQL dialect and all its drivers' modules at start (some 40 ms) on SQLite as well.
OPEN_INCIDENT_INDEX = text(
    "CREATE UNIQUE INDEX uq_incidents_open ON incidents "
    "(channel_id, coalesce(site_id, -1), coalesce(connector_id, '')) WHERE resolved_at IS NULL"
)


def _create_open_incident_index(table: Table, conn: Connection, **kw: Any) -> None:
    conn.execute(OPEN_INCIDENT_INDEX)


event.listen(incidents_table, "after_create", _create_open_incident_index)

mutes_table = Table(
    "mutes",
    metadata,
    Column("channel_id", String(255), nullable=False),
    Column("site_key", BigInteger, nullable=False),
    Column("connector_key", String(255), nullable=False),
    Column("site_id", BigInteger, nullable=True),
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

outbox_table = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # What the post tells: unique, so that recording the same news twice keeps the first.
    Column("key", String(255), nullable=False),
    Column("ref", String(64), nullable=False),  # stands for its ts until it is posted
    Column("channel_id", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", JSON, nullable=False),  # {"text": ..., "blocks": [...]}
    Column("thread", String(64), nullable=True),
    Column("draw", Boolean, nullable=False, default=False),
    Column("state", String(16), nullable=False),
    Column("ts", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempt_started_at", UtcDateTime, nullable=True),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("settled_at", UtcDateTime, nullable=True),
    UniqueConstraint("key"),
    Index(None, "ref"),
    Index(None, "state", "id"),
    sqlite_autoincrement=True,
)

# Which replica polls: the lease row of the poller, held by one replica until it expires.
# `token` grows by one with every new holder: writes fenced by a lease check it (see
# `bot.store.leases`).
leases_table = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)


audit_table = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("channel_id", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(255), nullable=False),
    Column("details", JSON, nullable=False),
    # `/cde subscriptions` and `/cde audit` read a channel's newest entries.
    Index(None, "channel_id", "id"),
    sqlite_autoincrement=True,
)


def _add_subscriptions_seen_until(conn: Connection) -> None:
    column_type = UtcDateTime().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE subscriptions ADD COLUMN seen_until {column_type}"))


def _add_outbox(conn: Connection) -> None:
    """Posts are recorded before they are made (the transactional outbox)."""
    outbox_table.create(conn)


# The columns that hold ids from outside (site ids) or ids users send back (subscription
# and incident ids, in commands and on buttons): 32-bit on PostgreSQL until this migration.
_WIDENED = (
    ("subscriptions", "id"), ("incidents", "id"), ("incidents", "site_id"),
    ("mutes", "site_key"), ("mutes", "site_id"),
)


def _widen_ids_to_64_bits(conn: Connection) -> None:
    """Ids become 64-bit. SQLite's INTEGER is 64-bit already, so only PostgreSQL changes:
    its INTEGER is 32-bit, and so are the sequences behind SERIAL keys.
    """
    if conn.dialect.name != "postgresql":
        return
    for table, column in _WIDENED:
        conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT"))
    for table in ("subscriptions", "incidents"):
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}).scalar_one()
        if sequence is not None:
            conn.execute(text(f"ALTER SEQUENCE {sequence} AS BIGINT"))


def _add_audit_log(conn: Connection) -> None:
    """Every change to subscriptions, mutes and acknowledgements is recorded (who, when,
    what, where). `checkfirst`: a database first made by `create_all` may have it already."""
    audit_table.create(conn, checkfirst=True)


def _add_leases_and_one_open_incident(conn: Connection) -> None:
    """The poller's lease, and at most one open incident per channel, site and connector.
    Replicas that polled side by side before may have left duplicates open: all but the
    first are closed, so that the index can be made.
    """
    leases_table.create(conn, checkfirst=True)
    t = incidents_table
    key = (t.c.channel_id, func.coalesce(t.c.site_id, -1), func.coalesce(t.c.connector_id, ""))
    first = select(func.min(t.c.id)).where(t.c.resolved_at.is_(None)).group_by(*key)
    closed = conn.execute(update(t).where(t.c.resolved_at.is_(None), t.c.id.not_in(first))
                          .values(resolved_at=datetime.now(UTC)))
    if closed.rowcount:
        logger.warning("closed %d duplicate open incidents left by replicas that polled side by "
                       "side", closed.rowcount)
    if not _has_index(conn, "uq_incidents_open"):
        conn.execute(OPEN_INCIDENT_INDEX)


def _has_index(conn: Connection, name: str) -> bool:
    # The inspector does not list expression indexes on every database: ask the catalogue.
    if conn.dialect.name == "sqlite":
        query = text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name")
    else:
        query = text("SELECT 1 FROM pg_indexes WHERE indexname = :name")
    return conn.execute(query, {"name": name}).first() is not None


# Schema changes, oldest first: MIGRATIONS[i] takes a database at version i + 1 to version
# i + 2 (within the transaction `open()` runs it in). Append new ones; never reorder or
# remove one that has shipped. Write them with portable SQLAlchemy constructs (or branch on
# `conn.dialect.name`).
MIGRATIONS: list[Callable[[Connection], None]] = [
    _add_subscriptions_seen_until,
    _add_outbox,
    _widen_ids_to_64_bits,
    _add_audit_log,
    _add_leases_and_one_open_incident,
]


def schema_version() -> int:
    """The version this cde-bot writes: the first schema plus one per migration."""
    return 1 + len(MIGRATIONS)


# The PostgreSQL advisory lock that serializes schema changes: "cde-bot" and 0x01, a fixed
# 64-bit key of this bot's own (the lock space is shared by every application on the server).
MIGRATION_LOCK_KEY = 0x6364_652D_626F_7401


def create_or_migrate(conn: Connection, where: str) -> None:
    """Create the schema in an empty database, or bring an older one up to `schema_version()`.

    Run it in a write transaction: it takes the migration lock first, so that replicas
    starting together change the schema once, one after the other. `where` names the
    database in messages. Raises `SchemaTooNewError` for a database written by a newer cde-bot.
    """
    _lock_for_migration(conn)
    target = schema_version()
    # Read under the lock: a replica that waited for it finds what the one before it did.
    found = _stored_version(conn)
    if found is None:
        # The tables not there yet, from one query: `create_all`'s own check would ask the
        # database about each table in turn (a round trip to SQLite's thread each).
        existing = set(inspect(conn).get_table_names())
        missing = [table for table in metadata.sorted_tables if table.name not in existing]
        metadata.create_all(conn, tables=missing, checkfirst=False)
        conn.execute(insert(schema_version_table).values(id=1, version=target))
        logger.info("created schema version %d in %s", target, where)
        return
    if found > target:
        raise SchemaTooNewError(
            f"{where} has schema version {found}, but this cde-bot knows only up to "
            f"version {target}: it was written by a newer cde-bot. Upgrade cde-bot, "
            "or point DATABASE_URL at another database."
        )
    if found < 1:
        raise StoreError(f"{where} has schema version {found}, which no cde-bot ever wrote")
    for version in range(found + 1, target + 1):
        MIGRATIONS[version - 2](conn)
        logger.info("migrated %s to schema version %d", where, version)
    if found < target:
        conn.execute(
            update(schema_version_table)
            .where(schema_version_table.c.id == 1)
            .values(version=target)
        )


def _lock_for_migration(conn: Connection) -> None:
    """Wait until no other cde-bot is creating or migrating the schema.

    PostgreSQL: a transaction-level advisory lock, let go at commit or rollback (and when
    the connection dies), taken before anything is read. At the default READ COMMITTED
    level each later statement sees what the transaction before it committed.
    SQLite: the write transaction (BEGIN IMMEDIATE, see `database`) already holds the
    file's only write lock, taken before the first read.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _stored_version(conn: Connection) -> int | None:
    """The schema version recorded in the database; None when it has no schema yet."""
    if not inspect(conn).has_table(schema_version_table.name):
        return None
    version: int | None = conn.execute(
        select(schema_version_table.c.version).where(schema_version_table.c.id == 1)
    ).scalar_one_or_none()
    return version
