"""The poller's lease in SQL: taken, renewed and released with conditional statements, and
checked inside fenced write transactions.

Taking a lease is one conditional UPDATE (held by us, or expired), or an INSERT that
loses quietly to another's; a new holder gets the next token. A fenced transaction reads
the lease row first, on PostgreSQL `FOR SHARE` so that a takeover waits for it to commit,
and SQLite runs one writer at a time: either way the check and the writes are one atomic
step, so nothing a deposed leader writes is kept.

Expiry compares the replicas' clocks, which only decides *when* another may take over; the
token is what keeps two leaders from both writing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import Lease, LeaseLost
from bot.store.schema import leases_table


async def take(conn: AsyncConnection, name: str, holder: str, now: datetime,
               ttl: timedelta) -> Lease | None:
    """See `Store.take_lease`; runs in the caller's write transaction."""
    t = leases_table
    until = now + ttl
    row = (await conn.execute(select(t).where(t.c.name == name).with_for_update())).mappings().first()
    if row is None:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(t).values(name=name, holder=holder, token=1, expires_at=until))
        except IntegrityError:
            return None  # another replica inserted it first
        return Lease(name, holder, 1, until)
    if row["holder"] == holder and row["expires_at"] > now:
        token = row["token"]
    elif row["expires_at"] <= now:
        token = row["token"] + 1
    else:
        return None
    result = await conn.execute(
        update(t).where(t.c.name == name, t.c.token == row["token"])
        .values(holder=holder, token=token, expires_at=until))
    if result.rowcount != 1:
        return None  # taken by another since we read it
    return Lease(name, holder, token, until)


async def current(conn: AsyncConnection, name: str) -> Lease | None:
    """See `Store.current_lease`."""
    t = leases_table
    row = (await conn.execute(select(t).where(t.c.name == name))).mappings().first()
    return None if row is None else Lease(name, row["holder"], row["token"], row["expires_at"])


async def release(conn: AsyncConnection, lease: Lease, now: datetime) -> None:
    """See `Store.release_lease`."""
    t = leases_table
    await conn.execute(update(t).where(t.c.name == lease.name, t.c.holder == lease.holder,
                                       t.c.token == lease.token).values(expires_at=now))


async def check(conn: AsyncConnection, lease: Lease) -> None:
    """Raise `LeaseLost` unless `lease` is still the one recorded."""
    t = leases_table
    query = select(t.c.holder, t.c.token).where(t.c.name == lease.name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    if row is None or (row.holder, row.token) != (lease.holder, lease.token):
        holder = "nobody" if row is None else f"{row.holder} (token {row.token})"
        raise LeaseLost(f"the {lease.name} lease (token {lease.token}) is held by {holder} now")
