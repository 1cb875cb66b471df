"""The store on SQLAlchemy Core (async): SQLite by default, PostgreSQL with the same code.

Only portable statements are used, so a `postgresql+asyncpg://` URL works unchanged. The
tables are in `schema`, the engine and its transactions in `database`; every method here
is one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.notices.models import AuditEntry, Incident, Mute, NoticeFilter, Subscription
from bot.notices.posts import OutboxEntry
from bot.store import leases, sql_outbox, urls
from bot.store.base import ClaimedElsewhere, Lease, Store, StoreError, check_id, fits_id
from bot.store.database import Database
from bot.store.schema import (
    announced_table,
    audit_table,
    first_seen_table,
    incidents_table,
    mutes_table,
    outbox_table,
    state_table,
    subscriptions_table,
)

# Larger IN lists hit parameter limits (SQLite's default is 999 on old builds).
IN_CHUNK = 500
# Mutes may name no site or no connector; NULL can't take part in a primary key, so the key
# columns hold these instead (real ids are positive and non-empty).
_NO_SITE = -1
_NO_CONNECTOR = ""

# The state key of the last scan of failed runs: what the bot has seen (see `first_seen`).
SEEN_UNTIL_KEY = "failures_seen_until"

_INCIDENT_FIELDS = tuple(f.name for f in dataclasses.fields(Incident) if f.name != "id")


# -- helpers --------------------------------------------------------------------------------


def _filter_key(notice_filter: NoticeFilter) -> str:
    return json.dumps(notice_filter.as_dict(), sort_keys=True, separators=(",", ":"))


def _mute_key(site_id: int | None, connector_id: str | None) -> tuple[int, str]:
    check_id("site id", site_id)
    return (
        _NO_SITE if site_id is None else site_id,
        _NO_CONNECTOR if connector_id is None else connector_id,
    )


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def _doomed(conn: AsyncConnection, run_id: ColumnElement[str], older: ColumnElement[bool],
                  keep: Iterable[str]) -> list[Sequence[str]]:
    """The run ids of the rows matching `older`, but those in `keep`, in IN_CHUNK batches.

    The runs to keep are all those the API still lists, tens of thousands on a busy
    installation: as `NOT IN` lists they would exceed the parameters one statement may bind
    (32 767 on PostgreSQL and SQLite alike). So the old ids are read (a query with one
    parameter), the kept ones left out here, and the rest deleted a bounded batch at a time.
    """
    kept = set(keep)
    old = (await conn.execute(select(run_id).where(older).distinct())).scalars()
    doomed = [found for found in old if found not in kept]
    return list(_chunks(doomed))


def _as_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def store_from_url(url: str) -> SqlStore:
    """A store for `url`; plain `sqlite://` and `postgresql://` URLs get their async drivers."""
    return SqlStore(urls.async_url(url))


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id(result: CursorResult[Any]) -> int:
    """The primary key the database gave the row just inserted."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise StoreError("the database driver did not return the id of the row just inserted")
    return int(key[0])


async def _record(conn: AsyncConnection, entry: AuditEntry) -> AuditEntry:
    """Insert an audit entry within the caller's transaction; it, with its id."""
    result = await conn.execute(insert(audit_table).values(
        at=entry.at, user_id=entry.user_id, channel_id=entry.channel_id, action=entry.action,
        target=entry.target[:255], details=entry.details))
    return dataclasses.replace(entry, id=_new_id(result))


# -- the store ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _claims() -> AsyncIterator[None]:
    """A unique key that another transaction took first (a run told, an incident opened:
    `uq_incidents_open`) means another poller carried the action out: `ClaimedElsewhere`.
    """
    try:
        yield
    except IntegrityError as exc:
        text = str(exc.orig)
        if any(name in text for name in _CLAIM_KEYS):
            raise ClaimedElsewhere(f"another poller recorded it first ({type(exc.orig).__name__})") from exc
        raise StoreError(f"the database refused the write: {text}") from exc


# The unique keys a claim may lose on, as SQLite and PostgreSQL name them in their errors.
_CLAIM_KEYS = ("uq_incidents_open", "pk_announced", "announced.run_id")


class SqlStore(Store):
    """The store on an SQLAlchemy async database URL: written for SQLite and PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        self._db = Database(database_url)

    def _transaction(self, *, write: bool) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._db.transaction(write=write)

    async def _retry_on_conflict(self, attempt: Callable[[], Awaitable[None]]) -> None:
        await self._db.retry_on_conflict(attempt)

    # -- the poller's lease -------------------------------------------------------------------

    async def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        async with self._transaction(write=True) as conn:
            return await leases.take(conn, name, holder, now, ttl)

    async def current_lease(self, name: str) -> Lease | None:
        async with self._transaction(write=False) as conn:
            return await leases.current(conn, name)

    async def release_lease(self, lease: Lease) -> None:
        async with self._transaction(write=True) as conn:
            await leases.release(conn, lease, _now())

    def fenced(self, lease: Lease) -> contextlib.AbstractContextManager[None]:
        return self._db.fenced(lease)

    async def confirm_lease(self) -> None:
        async with self._transaction(write=True):
            pass  # a fenced write transaction checks the lease as it begins

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the database (and its directory) if missing, or check and migrate its schema.

        Raises `StoreError` when the database cannot be opened or written, and
        `SchemaTooNewError` when it was written by a newer cde-bot.
        """
        await self._db.open()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._db.close()

    async def ping(self) -> bool:
        """True when the database reads and writes; errors are logged, not raised."""
        return await self._db.ping()

    async def problem(self) -> str | None:
        """Why the store cannot keep the bot's state now (the file deleted, replaced or
        overwritten, a write or read failing), or None."""
        return await self._db.problem()

    # -- subscriptions ------------------------------------------------------------------------

    async def add_subscription(
        self, channel_id: str, notice_filter: NoticeFilter, created_by: str, now: datetime, *,
        audit: Callable[[Subscription], AuditEntry] | None = None,
    ) -> Subscription | None:
        """The new subscription, or None when the channel already has this same filter.

        It records what the bot had seen of failed runs by then, and `audit`'s entry, in the
        same transaction, so that no scan can fall between the two.
        """
        try:
            async with self._transaction(write=True) as conn:
                seen_until = _as_time(await conn.scalar(
                    select(state_table.c.value).where(state_table.c.key == SEEN_UNTIL_KEY)))
                result = await conn.execute(
                    insert(subscriptions_table).values(
                        channel_id=channel_id,
                        filter=notice_filter.as_dict(),
                        filter_key=_filter_key(notice_filter),
                        created_by=created_by,
                        created_at=now,
                        seen_until=seen_until,
                    )
                )
                subscription = Subscription(
                    id=_new_id(result), channel_id=channel_id, notice_filter=notice_filter,
                    created_by=created_by, created_at=now.astimezone(UTC), seen_until=seen_until,
                )
                if audit is not None:
                    await _record(conn, audit(subscription))
        except IntegrityError:
            return None
        return subscription

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
                seen_until=row["seen_until"],
            )
            for row in rows
        ]

    async def remove_subscription(self, channel_id: str, subscription_id: int, *,
                                  audit: AuditEntry | None = None) -> bool:
        """False when the channel has no subscription with that id; `audit` is stored with
        the removal."""
        if not fits_id(subscription_id):
            return False  # no row can have it
        t = subscriptions_table
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                delete(t).where(t.c.channel_id == channel_id, t.c.id == subscription_id)
            )
            if result.rowcount > 0 and audit is not None:
                await _record(conn, audit)
        return result.rowcount > 0

    async def remove_all_subscriptions(self, channel_id: str, *,
                                       audit: Callable[[int], AuditEntry] | None = None) -> int:
        """How many were removed; `audit`'s entry for them is stored with the removal."""
        t = subscriptions_table
        async with self._transaction(write=True) as conn:
            result = await conn.execute(delete(t).where(t.c.channel_id == channel_id))
            if result.rowcount > 0 and audit is not None:
                await _record(conn, audit(result.rowcount))
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

    async def _claim(self, conn: AsyncConnection, pairs: Iterable[tuple[str, str]],
                     at: datetime) -> None:
        """Record (channel_id, run_id) pairs as told by this action, or raise
        `ClaimedElsewhere` when one of them was told already (by another poller: triage plans
        only runs not told yet). Taken in key order, so that two transactions claiming the
        same runs lock them in the same order and cannot deadlock.
        """
        wanted = sorted(set(pairs), key=lambda pair: (pair[1], pair[0]))
        if not wanted:
            return
        known = await self._announced(conn, list(dict.fromkeys(run for _, run in wanted)))
        if known & set(wanted):
            raise ClaimedElsewhere(f"{len(known & set(wanted))} of {len(wanted)} runs were "
                                   "told already by another poller")
        await conn.execute(insert(announced_table), [
            {"channel_id": channel_id, "run_id": run_id, "announced_at": at}
            for channel_id, run_id in wanted])

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
        dropped = 0
        async with self._transaction(write=True) as conn:
            for chunk in await _doomed(conn, t.c.run_id, t.c.announced_at < before, keep):
                result = await conn.execute(
                    delete(t).where(t.c.announced_at < before, t.c.run_id.in_(chunk)))
                dropped += result.rowcount
        return dropped

    async def first_seen(self, run_ids: Iterable[str], now: datetime) -> dict[str, datetime]:
        """When each run was first seen, recording `now` for the ones never seen before, and
        `now` as what the bot has seen.
        """
        wanted = list(dict.fromkeys(run_ids))
        t = first_seen_table
        seen: dict[str, datetime] = {}
        state = state_table

        async def attempt() -> None:
            seen.clear()
            async with self._transaction(write=True) as conn:
                moment = {"value": now.astimezone(UTC).isoformat()}
                result = await conn.execute(
                    update(state).where(state.c.key == SEEN_UNTIL_KEY).values(**moment))
                if result.rowcount == 0:
                    await conn.execute(insert(state).values(key=SEEN_UNTIL_KEY, **moment))
                for chunk in _chunks(wanted):
                    rows = await conn.execute(select(t.c.run_id, t.c.seen_at).where(t.c.run_id.in_(chunk)))
                    seen.update({row.run_id: row.seen_at for row in rows})
                new = [run_id for run_id in wanted if run_id not in seen]
                if new:
                    await conn.execute(insert(t), [{"run_id": run_id, "seen_at": now} for run_id in new])
                    seen.update(dict.fromkeys(new, now))

        await self._retry_on_conflict(attempt)
        return seen

    async def prune(self, before: datetime, keep: Iterable[str] = ()) -> None:
        """Drop what is older than `before`: first sightings (but those of `keep`), resolved
        incidents and ended mutes.
        """
        t = first_seen_table
        async with self._transaction(write=True) as conn:
            for chunk in await _doomed(conn, t.c.run_id, t.c.seen_at < before, keep):
                await conn.execute(delete(t).where(t.c.seen_at < before, t.c.run_id.in_(chunk)))
            await conn.execute(delete(incidents_table).where(incidents_table.c.resolved_at < before))
            await conn.execute(delete(mutes_table).where(mutes_table.c.until < before))
            await conn.execute(delete(outbox_table).where(sql_outbox.settled_before(before)))

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
        conditions: list[ColumnElement[bool]] = [t.c.resolved_at.is_(None)]
        if channel_id is not None:
            conditions.append(t.c.channel_id == channel_id)
        return await self._incidents(*conditions)

    async def incident(self, incident_id: int) -> Incident | None:
        """The incident with this id, or None."""
        if not fits_id(incident_id):
            return None  # no row can have it
        found = await self._incidents(incidents_table.c.id == incident_id)
        return found[0] if found else None

    async def incidents_of_message(self, channel_id: str, message_ts: str) -> list[Incident]:
        """Every incident whose parent is this message (one for a notice, more for a digest)."""
        t = incidents_table
        return await self._incidents(t.c.channel_id == channel_id, t.c.message_ts == message_ts)

    async def save_incident(self, incident: Incident, *, announce: Iterable[tuple[str, str]] = (),
                            at: datetime | None = None,
                            outbox: Sequence[OutboxEntry] = ()) -> Incident:
        """Insert when `incident.id == 0` (returning it with its new id), else update; and
        record `announce` as told, in the same transaction.

        Raises `StoreError` when updating an id that does not exist.
        """
        [saved] = await self.save_incidents([incident], announce=announce, at=at, outbox=outbox)
        return saved

    async def save_incidents(self, incidents: Sequence[Incident], *,
                             announce: Iterable[tuple[str, str]] = (),
                             at: datetime | None = None,
                             outbox: Sequence[OutboxEntry] = ()) -> list[Incident]:
        """`save_incident` for several incidents at once, all in one transaction."""
        for incident in incidents:
            check_id("incident id", incident.id)
            check_id("site id", incident.site_id)
        t = incidents_table
        pairs = list(announce)
        saved = []
        async with _claims(), self._transaction(write=True) as conn:
            for incident in incidents:
                values = {name: getattr(incident, name) for name in _INCIDENT_FIELDS}
                if incident.id == 0:
                    result = await conn.execute(insert(t).values(**values))
                    incident = dataclasses.replace(incident, id=_new_id(result))
                else:
                    result = await conn.execute(update(t).where(t.c.id == incident.id).values(**values))
                    if result.rowcount == 0:
                        raise StoreError(f"no incident with id {incident.id} to update")
                saved.append(incident)
            if pairs:
                await self._claim(conn, pairs, at or saved[0].last_failed_at)
            await sql_outbox.enqueue(conn, outbox, at or _now())
        return saved

    async def update_incident(
        self, incident_id: int, change: Callable[[Incident], Incident], *,
        announce: Iterable[tuple[str, str]] = (), at: datetime | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> Incident | None:
        """Apply `change` to the incident as it is stored now, in one transaction that holds
        the row, so that a click and a poll never overwrite each other's update.
        """
        pairs = list(announce)

        async def record(conn: AsyncConnection, _: Incident, changed: Incident) -> None:
            if pairs:
                await self._claim(conn, pairs, at or changed.last_failed_at)
            await sql_outbox.enqueue(conn, outbox, at or _now())

        async with _claims():
            return await self._update(incident_id, change, record)

    async def acknowledge_incident(self, incident_id: int, user: str, at: datetime, *,
                                   audit: AuditEntry | None = None) -> Incident | None:
        """Taken by `user` unless taken already, with `audit` when it was (one transaction)."""
        def take(current: Incident) -> Incident:
            return current if current.acknowledged_by else dataclasses.replace(
                current, acknowledged_by=user, acknowledged_at=at)

        async def record(conn: AsyncConnection, before: Incident, after: Incident) -> None:
            if audit is not None and after != before:
                await _record(conn, audit)

        return await self._update(incident_id, take, record)

    async def _update(self, incident_id: int, change: Callable[[Incident], Incident],
                      record: Callable[[AsyncConnection, Incident, Incident], Awaitable[None]],
                      ) -> Incident | None:
        """Apply `change` to the incident as stored now, then `record` (given the incident
        before and after) in the same transaction, which holds the row."""
        if not fits_id(incident_id):
            return None  # no row can have it
        t = incidents_table
        async with self._transaction(write=True) as conn:
            row = (await conn.execute(
                select(t).where(t.c.id == incident_id).with_for_update()
            )).mappings().first()
            if row is None:
                return None
            current = self._incident(row)
            changed = change(current)
            values = {name: getattr(changed, name) for name in _INCIDENT_FIELDS}
            await conn.execute(update(t).where(t.c.id == incident_id).values(**values))
            await record(conn, current, changed)
        return changed

    # -- mutes ---------------------------------------------------------------------------------

    async def set_mute(self, mute: Mute, *, audit: AuditEntry | None = None) -> None:
        """Create or replace the mute for (channel, site, connector), counter included, and
        store `audit` in the same transaction."""
        site_key, connector_key = _mute_key(mute.site_id, mute.connector_id)
        await self._upsert(
            mutes_table,
            {"channel_id": mute.channel_id, "site_key": site_key, "connector_key": connector_key},
            {"site_id": mute.site_id, "connector_id": mute.connector_id, "until": mute.until,
             "muted_by": mute.muted_by, "suppressed": mute.suppressed},
            audit=audit,
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

    async def delete_mute(self, channel_id: str, site_id: int | None, connector_id: str | None,
                          *, outbox: Sequence[OutboxEntry] = (), audit: AuditEntry | None = None) -> None:
        t = mutes_table
        site_key, connector_key = _mute_key(site_id, connector_id)
        async with self._transaction(write=True) as conn:
            await conn.execute(delete(t).where(t.c.channel_id == channel_id, t.c.site_key == site_key,
                                               t.c.connector_key == connector_key))
            await sql_outbox.enqueue(conn, outbox, _now())
            if audit is not None:
                await _record(conn, audit)

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

    # -- the outbox ------------------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[OutboxEntry], at: datetime) -> None:
        """Record posts to make; an entry whose key is stored already is left out."""
        async with self._transaction(write=True) as conn:
            await sql_outbox.enqueue(conn, entries, at)

    async def pending_posts(self) -> list[OutboxEntry]:
        """Entries not settled yet, in the order they were recorded."""
        async with self._transaction(write=False) as conn:
            return await sql_outbox.pending(conn)

    async def post_of_ref(self, ref: str) -> OutboxEntry | None:
        """The entry whose message `ref` stands for."""
        async with self._transaction(write=False) as conn:
            return await sql_outbox.by_ref(conn, ref)

    async def start_post(self, entry_id: int, at: datetime, *, attempts: int | None = None) -> bool:
        """An attempt begins; its fate is unknown until settled (see `Store.start_post`)."""
        async with self._transaction(write=True) as conn:
            return await sql_outbox.start(conn, entry_id, at, attempts=attempts)

    async def finish_post(self, entry_id: int, ts: str, at: datetime) -> None:
        """Slack took it as `ts`; the incidents of its message now name `ts`."""
        async with self._transaction(write=True) as conn:
            await sql_outbox.finish(conn, entry_id, ts, at)

    async def fail_post(self, entry_id: int, error: str, at: datetime) -> None:
        """Refused for good; the incidents whose message it was are resolved."""
        async with self._transaction(write=True) as conn:
            await sql_outbox.fail(conn, entry_id, error, at)

    async def defer_post(self, entry_id: int, error: str, retry_at: datetime, *,
                         fate_unknown: bool) -> None:
        """Try again from `retry_at`."""
        async with self._transaction(write=True) as conn:
            await sql_outbox.defer(conn, entry_id, error, retry_at, fate_unknown=fate_unknown)

    # -- the audit trail ---------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Store an entry of its own; it, with its id."""
        async with self._transaction(write=True) as conn:
            return await _record(conn, entry)

    async def audit_log(self, limit: int, channel_id: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries of a channel (of every channel when None), newest first."""
        t = audit_table
        query = select(t).order_by(t.c.id.desc()).limit(max(0, limit))
        if channel_id is not None:
            query = query.where(t.c.channel_id == channel_id)
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            AuditEntry(at=row["at"], user_id=row["user_id"], channel_id=row["channel_id"],
                       action=row["action"], target=row["target"],
                       details=dict(row["details"] or {}), id=row["id"])
            for row in rows
        ]

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

    async def _upsert(self, table: Table, key: dict[str, Any], values: dict[str, Any], *,
                      audit: AuditEntry | None = None) -> None:
        """Update the row with this key, or insert it, and store `audit`; one transaction."""
        async def attempt() -> None:
            async with self._transaction(write=True) as conn:
                where = [table.c[name] == value for name, value in key.items()]
                result = await conn.execute(update(table).where(*where).values(**values))
                if result.rowcount == 0:
                    await conn.execute(insert(table).values(**key, **values))
                if audit is not None:
                    await _record(conn, audit)

        await self._retry_on_conflict(attempt)
