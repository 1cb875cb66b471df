"""The outbox's statements, run inside the store's transactions (see `bot.notices.posts`).

Entries are inserted with `INSERT ... ON CONFLICT (key) DO NOTHING`, so that recording the
same news twice, even from two processes at once, keeps one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.notices import posts
from bot.notices.posts import OutboxEntry
from bot.slack.message import Message
from bot.store.schema import incidents_table, outbox_table


def _insert_ignoring_conflicts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> Insert:
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(outbox_table).values(rows).on_conflict_do_nothing(index_elements=["key"])
    if name == "postgresql":
        # Imported here, where its engine has loaded it already: at the top it would load
        # the PostgreSQL dialect and its drivers' modules for SQLite too (some 40 ms of start).
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(outbox_table).values(rows).on_conflict_do_nothing(
            index_elements=["key"])
    raise NotImplementedError(f"no outbox insert for the {name} database")


async def enqueue(conn: AsyncConnection, entries: Sequence[OutboxEntry], at: datetime) -> None:
    """Record `entries` in this transaction; those whose key is stored already are left out."""
    rows = [_row(entry, at) for entry in dict((e.key, e) for e in entries).values()]
    if rows:
        await conn.execute(_insert_ignoring_conflicts(conn, rows))


def _row(entry: OutboxEntry, at: datetime) -> dict[str, Any]:
    return {
        "key": entry.key, "ref": entry.ref, "channel_id": entry.channel_id, "kind": entry.kind,
        "message": {"text": entry.message.text, "blocks": entry.message.blocks},
        "thread": entry.thread, "draw": entry.draw, "state": posts.PENDING, "attempts": 0,
        "created_at": at,
    }


def entry_of(row: Any) -> OutboxEntry:
    message = row["message"] if isinstance(row["message"], dict) else {}
    return OutboxEntry(
        key=row["key"], channel_id=row["channel_id"], kind=row["kind"],
        message=Message(text=str(message.get("text") or ""), blocks=list(message.get("blocks") or [])),
        thread=row["thread"], draw=bool(row["draw"]), id=row["id"], state=row["state"],
        ts=row["ts"], attempts=row["attempts"], error=row["error"], created_at=row["created_at"],
        attempt_started_at=row["attempt_started_at"], next_attempt_at=row["next_attempt_at"],
    )


async def pending(conn: AsyncConnection) -> list[OutboxEntry]:
    t = outbox_table
    rows = (await conn.execute(
        select(t).where(t.c.state.in_(posts.UNSETTLED)).order_by(t.c.id))).mappings().all()
    return [entry_of(row) for row in rows]


async def by_ref(conn: AsyncConnection, ref: str) -> OutboxEntry | None:
    t = outbox_table
    row = (await conn.execute(select(t).where(t.c.ref == ref))).mappings().first()
    return entry_of(row) if row is not None else None


async def start(conn: AsyncConnection, entry_id: int, at: datetime, *,
                attempts: int | None = None) -> bool:
    """Begin an attempt; with `attempts`, only if no other began one since (a claim)."""
    t = outbox_table
    query = update(t).where(t.c.id == entry_id, t.c.state.in_(posts.UNSETTLED))
    if attempts is not None:
        query = query.where(t.c.attempts == attempts)
    result = await conn.execute(query.values(
        state=posts.SENDING, attempt_started_at=at, attempts=t.c.attempts + 1))
    return result.rowcount == 1


async def finish(conn: AsyncConnection, entry_id: int, ts: str, at: datetime) -> None:
    t = outbox_table
    ref = (await conn.execute(select(t.c.ref).where(t.c.id == entry_id))).scalar_one_or_none()
    await conn.execute(update(t).where(t.c.id == entry_id).values(
        state=posts.DELIVERED, ts=ts, error=None, settled_at=at, next_attempt_at=None))
    if ref is not None:
        i = incidents_table
        await conn.execute(update(i).where(i.c.message_ts == ref).values(message_ts=ts))


async def fail(conn: AsyncConnection, entry_id: int, error: str, at: datetime) -> None:
    t = outbox_table
    ref = (await conn.execute(select(t.c.ref).where(t.c.id == entry_id))).scalar_one_or_none()
    await conn.execute(update(t).where(t.c.id == entry_id).values(
        state=posts.FAILED, error=error[:255], settled_at=at, next_attempt_at=None))
    if ref is not None:
        i = incidents_table
        await conn.execute(update(i).where(i.c.message_ts == ref, i.c.resolved_at.is_(None))
                           .values(resolved_at=at))


async def defer(conn: AsyncConnection, entry_id: int, error: str, retry_at: datetime, *,
                fate_unknown: bool) -> None:
    t = outbox_table
    await conn.execute(update(t).where(t.c.id == entry_id).values(
        state=posts.SENDING if fate_unknown else posts.PENDING, error=error[:255],
        next_attempt_at=retry_at))


def settled_before(before: datetime) -> ColumnElement[bool]:
    """The condition on settled entries older than `before` (for pruning)."""
    t = outbox_table
    return t.c.state.in_((posts.DELIVERED, posts.FAILED)) & (t.c.settled_at < before)

