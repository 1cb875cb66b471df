"""Crashes and a broken store: a database locked just after Slack took a post, a database
deleted, corrupted or replaced under the running bot.

SIGKILL/restart cycles of the real process are measured by tests/e2e/test_crashes.py (every
kill as Slack takes a post, before its answer leaves); they are not repeated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from bench.hostile.cases import case, failure
from bench.hostile.census import Observation
from bench.hostile.world import OPS, World
from tests.standins.slack.records import ApiCall


class Lock:
    """An exclusive lock on the bot's SQLite file, held by another connection."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.connection: sqlite3.Connection | None = None
        self.released = asyncio.Event()

    def take(self, seconds: float) -> None:
        connection = sqlite3.connect(self.database, timeout=1.0, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        self.connection = connection
        asyncio.get_running_loop().call_later(seconds, self.release)

    def release(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self.connection.execute("ROLLBACK")
            self.connection.close()
            self.connection = None
        self.released.set()


async def locked(seen: Observation, seconds: float, *, after_post: bool) -> None:
    """The database locked for `seconds` (longer than the bot's busy timeout), either as
    Slack takes a notice (the write recording it fails) or before the poll that finds the
    failure: told once, whatever the lock did."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        lock = Lock(world.database)

        def on_post(call: ApiCall) -> None:
            if "metadata" in call.params and lock.connection is None and not lock.released.is_set():
                lock.take(seconds)

        if after_post:
            world.slack.on_accept["chat.postMessage"] = on_post
        run = failure()
        world.cde.add_run(run)
        seen.tried()
        seen.expected.append(run["id"])
        if not after_post:
            lock.take(seconds)
        await world.poll()
        await asyncio.wait_for(lock.released.wait(), seconds + 30)
        world.slack.on_accept.pop("chat.postMessage", None)
        await world.poll_until(lambda: bool(world.told([run["id"]])), polls=4, timeout=2)
        await world.poll(3)
        world.count_told([run["id"]])
        world.finish()


@case("store", "locked-after-slack-took-the-post")
async def locked_after_post(seen: Observation, quick: bool) -> None:
    """The database locked (longer than the busy timeout) as Slack takes a notice."""
    await locked(seen, 6.0 if quick else 8.0, after_post=True)


@case("store", "locked-before-the-poll")
async def locked_before_poll(seen: Observation, quick: bool) -> None:
    """The database locked (longer than the busy timeout) through the poll that finds a failure."""
    await locked(seen, 6.0 if quick else 8.0, after_post=False)


async def broken_under_the_bot(seen: Observation, damage: str) -> None:
    """The database `damage`d under the running bot: `/readyz` goes 503, and a command gets
    a clear answer."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        before = await world.request("GET", "/readyz")
        seen.check(before.status == 200,
                   f"/readyz answered 200 before (got {before.status}: {before.body[:120]})")
        _damage(world.database, damage)
        seen.tried()

        async def not_ready() -> bool:
            return (await world.request("GET", "/readyz")).status == 503

        seen.check(await world.wait(not_ready, timeout=5),
                   f"/readyz answered 503 once the database was {damage}")
        seen.tried()
        answer, url = await world.command("subscribe site:1002")
        seen.check(answer.status == 200 and (bool(answer.body.strip()) or await world.wait(
            lambda: bool(world.slack.responses(url)) or len(world.slack.messages(OPS)) > 1, timeout=5)),
            f"a command got a clear answer once the database was {damage} (got {answer.status})")
        seen.tried()
        await world.poll()
        world.finish()


def _damage(database: Path, how: str) -> None:
    files = [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    if how == "deleted":
        for path in files:
            path.unlink(missing_ok=True)
    elif how == "corrupted":
        size = database.stat().st_size
        database.write_bytes(b"\x00not a database\xff" * (size // 16 + 1))
        for path in files[1:]:
            path.unlink(missing_ok=True)
    elif how == "replaced":
        fresh = database.with_name("fresh.db")
        sqlite3.connect(fresh).close()
        for path in files[1:]:
            path.unlink(missing_ok=True)
        fresh.replace(database)


@case("store", "database-deleted")
async def database_deleted(seen: Observation, quick: bool) -> None:
    """The database file deleted under the running bot."""
    await broken_under_the_bot(seen, "deleted")


@case("store", "database-corrupted")
async def database_corrupted(seen: Observation, quick: bool) -> None:
    """The database file overwritten with garbage under the running bot."""
    await broken_under_the_bot(seen, "corrupted")


@case("store", "database-replaced")
async def database_replaced(seen: Observation, quick: bool) -> None:
    """The database file replaced by an empty SQLite database under the running bot."""
    await broken_under_the_bot(seen, "replaced")
