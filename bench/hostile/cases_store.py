"""Crashes and a broken store: a database locked just after Slack took a post, a database
deleted, corrupted or replaced under the running bot.

And SIGKILL/restart cycles of the real process (`python -m bot serve`), each kill just as
Slack takes a post, the way tests/e2e/test_crashes.py does it, with and without the history
scopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.hostile.cases import case, failure
from bench.hostile.census import Observation
from bench.hostile.world import OPS, World
from tests.helpers.bot_process import BotProcess, bot_env
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


# -- the real process killed as Slack takes a post -------------------------------------

# Per cycle, the failures that arrive: (connectors, failures of each). With a digest
# threshold of 3: a notice; a notice and its thread list; a digest and its list; repeats.
SHAPES = [(1, 1), (1, 2), (3, 1), (1, 1), (1, 2)]


def tagged(world: World) -> list[dict[str, Any]]:
    """Every message in OPS (threads too) that tells news, with its tag."""
    found = []
    for message in world.slack.messages(OPS):
        found.extend(m for m in [message, *world.slack.replies(OPS, message["ts"])]
                     if (m.get("metadata") or {}).get("event_type") == "cde_bot_notice")
    return found


async def killed_as_slack_takes_posts(seen: Observation, cycles: int, *, history: bool) -> None:
    """`python -m bot serve` (Socket Mode) SIGKILLed `cycles` times, each time just as Slack
    has taken a post and before its answer leaves, while failures arrive. With the history
    scopes nothing is lost or told twice; without them each kill may repeat that post once."""
    async with World(seen, in_process=False) as world:
        if not history:
            world.slack.scopes = [s for s in world.slack.scopes if not s.endswith(":history")]
        env = bot_env(world.slack, world.cde, socket_mode=True, database=world.database) | {
            "CDE_POLL_INTERVAL": "1", "NOTICE_DIGEST_THRESHOLD": "3", "LOG_LEVEL": "INFO"}
        log = world.directory / "bot.log"
        bot = BotProcess(env, log)
        kills = 0

        async def start() -> None:
            nonlocal bot
            connected = world.slack.socket_connections
            bot = BotProcess(env, log)
            await bot.start()
            await world.slack.wait_connected(timeout=30, connections=connected + 1)

        def kill_on_next_post() -> None:
            def kill(call: ApiCall) -> None:
                nonlocal kills
                if "metadata" not in call.params or bot.process is None:
                    return
                del world.slack.on_accept["chat.postMessage"]
                bot.process.kill()
                kills += 1
            world.slack.on_accept["chat.postMessage"] = kill

        await start()
        try:
            before = len(world.slack.messages(OPS))
            await world.slack.send_slash_command("subscribe site:1001", channel_id=OPS)
            seen.check(await world.wait(lambda: len(world.slack.messages(OPS)) > before, timeout=20),
                       "the subscription was confirmed")
            runs: list[str] = []
            connectors = [str(uuid.uuid4()) for _ in range(3)]
            for connector_count, each in SHAPES[:cycles]:
                kill_on_next_post()
                for connector in connectors[:connector_count]:
                    for _ in range(each):
                        run = failure(connector_id=connector)
                        world.cde.add_run(run)
                        runs.append(run["id"])
                assert bot.process is not None
                await asyncio.wait_for(bot.process.wait(), 30)  # killed as Slack took a post
                seen.tried()
                await start()
            seen.expected.extend(runs)
            await world.wait(lambda: all(r in json.dumps(tagged(world)) for r in runs), timeout=30)
            polls = len(world.cde.requests_to("/runs"))
            await world.wait(lambda: len(world.cde.requests_to("/runs")) >= polls + 3, timeout=20)
        finally:
            world.slack.on_accept.pop("chat.postMessage", None)
            code = await bot.stop()
            seen.check(code == 0, f"the bot stopped cleanly (exit status {code})")
        text = json.dumps(tagged(world))
        seen.posted.extend(r for r in runs if r in text)
        told = Counter(m["metadata"]["event_payload"]["key"] for m in tagged(world))
        for key, count in told.items():
            seen.at_most_once.append(key)
            seen.posted.extend([key] * count)
        seen.check(kills == cycles, f"the bot was killed {cycles} times (got {kills})")
        if not history:
            seen.repeats_allowed = kills  # the post under way at each kill, once
        printed = bot.log()
        world.printed["the bot's log"] = printed
        if printed.count("Traceback") > printed.count("Unhandled error"):
            seen.crashes.append("a traceback in the bot's log")
        world.finish()


@case("store", "sigkill-as-slack-takes-a-post")
async def sigkill_with_history(seen: Observation, quick: bool) -> None:
    """The real process SIGKILLed as Slack takes a post, 3 (5) times, history scopes granted."""
    await killed_as_slack_takes_posts(seen, 3 if quick else 5, history=True)


@case("store", "sigkill-without-history-scopes")
async def sigkill_without_history(seen: Observation, quick: bool) -> None:
    """The same without channels:history/groups:history: at most the post under way repeats."""
    await killed_as_slack_takes_posts(seen, 3 if quick else 5, history=False)
