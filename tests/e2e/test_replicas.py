"""Two real `cde-bot serve` replicas on one database while failures keep arriving: the
leader is SIGKILLed mid-poll and right after Slack took one of its posts, and restarted
as a new replica. Every failure is told exactly once, recoveries once, and the other
replica takes over within one poll interval.

`CDE_REPLICA_TEST_SECONDS` sets how long failures keep arriving (default 3 s in the suite;
the README's figures come from a run of several minutes). PostgreSQL only: two replicas
on one SQLite file are the same code, shown in process by
tests/notices/test_overlapping_pollers.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.demo.api import SampleCdeApi
from bot.demo.runs import make_run
from bot.notices.leadership import LEASE
from bot.store.sql import SqlStore
from tests.helpers.bot_process import BotProcess, bot_env, stop_cleanly
from tests.helpers.postgres import fresh_database
from tests.helpers.told import tagged
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn
from tests.standins.slack.records import ApiCall

OPS = "C0001"
SITE = 1001
POLL_INTERVAL = 2.0
SECONDS = float(os.environ.get("CDE_REPLICA_TEST_SECONDS", "3"))


class Replicas:
    """Two bot processes on one database; `kill_leader` SIGKILLs whichever holds the lease."""

    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, database_url: str) -> None:
        self.slack, self.cde, self.tmp_path = slack, cde, tmp_path
        self.env = bot_env(slack, cde, socket_mode=True) | {
            "DATABASE_URL": database_url, "CDE_POLL_INTERVAL": str(POLL_INTERVAL),
            "NOTICE_DIGEST_THRESHOLD": "3"}
        self.store = SqlStore(database_url)
        self.bots: list[BotProcess] = []
        self.started = 0
        self.takeovers: list[float] = []

    async def start_one(self) -> BotProcess:
        connected = self.slack.socket_connections
        self.started += 1
        bot = BotProcess(self.env, self.tmp_path / f"bot{self.started}.log")
        await bot.start()
        await self.slack.wait_connected(connections=connected + 1)
        self.bots.append(bot)
        return bot

    async def leader(self) -> BotProcess | None:
        lease = await self.store.current_lease(LEASE)
        if lease is None or lease.expires_at < datetime.now(UTC):
            return None
        pid = int(lease.holder.split("/")[1])
        return next((b for b in self.bots if b.process is not None and b.process.pid == pid), None)

    async def kill(self, bot: BotProcess) -> None:
        assert bot.process is not None
        before = await self.store.current_lease(LEASE)
        killed_at = time.monotonic()
        bot.process.kill()
        await bot.process.wait()
        self.bots.remove(bot)

        async def taken_over() -> bool:
            lease = await self.store.current_lease(LEASE)
            return lease is not None and before is not None and lease.token > before.token

        await until(taken_over, "another replica to take the lease", timeout=30)
        self.takeovers.append(time.monotonic() - killed_at)

    def kill_leader_on_next_post(self, pids: dict[str, int]) -> None:
        """SIGKILL the leader when Slack has taken its next notice, before the answer."""
        def kill(call: ApiCall) -> None:
            if "metadata" not in call.params:
                return
            del self.slack.on_accept["chat.postMessage"]
            pid = pids.get("leader")
            if pid:
                os.kill(pid, 9)

        self.slack.on_accept["chat.postMessage"] = kill


def exited(bot: BotProcess) -> bool:
    return bot.process is not None and bot.process.returncode is not None


def failure(connector: str) -> dict[str, Any]:
    took = timedelta(minutes=2)
    return make_run(state="failed", site_id=SITE, connector_id=connector,
                    started_at=datetime.now(UTC) - took, took=took)


async def test_two_replicas_tell_each_failure_once_through_leader_kills(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    async with fresh_database() as database_url:
        await two_replicas(slack, cde, tmp_path, database_url)


async def two_replicas(slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, database_url: str) -> None:
    replicas = Replicas(slack, cde, tmp_path, database_url)
    await replicas.store.open()
    try:
        await replicas.start_one()
        await replicas.start_one()
        before = len(slack.messages(OPS))
        await slack.send_slash_command(f"subscribe site:{SITE}", channel_id=OPS)
        await until(lambda: len(slack.messages(OPS)) > before, "the subscription's confirmation")

        runs: list[str] = []
        recovered: list[str] = []
        connectors = [str(uuid.uuid4()) for _ in range(4)]
        deadline = time.monotonic() + SECONDS
        round_ = 0
        while time.monotonic() < deadline or round_ < 8:
            round_ += 1
            connector = connectors[round_ % len(connectors)]
            run = failure(connector)
            cde.add_run(run)
            runs.append(run["id"])
            if round_ % 5 == 0:  # a recovery now and then
                cde.add_run(make_run(state="finished", site_id=SITE, connector_id=connector,
                                     started_at=datetime.now(UTC)))
                recovered.append(connector)
            if round_ in (2, 6):
                leader = await until(replicas.leader, "a leader")
                if round_ == 2:
                    await replicas.kill(leader)  # mid-poll, whatever it was doing
                else:
                    assert leader.process is not None
                    replicas.kill_leader_on_next_post({"leader": leader.process.pid})
                    await until(lambda bot=leader: exited(bot), "the leader killed as Slack took its post")
                    replicas.bots.remove(leader)
                    await until(replicas.leader, "a new leader", timeout=30)
                await replicas.start_one()
            await asyncio.sleep(POLL_INTERVAL / 2)

        def all_told() -> bool:
            text = json.dumps(tagged(slack, OPS))
            return all(r in text for r in runs)

        await until(all_told, "every failure told", timeout=60)
        polls = len(cde.requests_to("/runs"))
        await until(lambda: len(cde.requests_to("/runs")) >= polls + 6, "a few more polls")
        for bot in list(replicas.bots):
            await stop_cleanly(bot)
    finally:
        for bot in replicas.bots:
            if bot.process is not None and bot.process.returncode is None:
                bot.process.kill()
        await replicas.store.close()

    told = Counter(m["metadata"]["event_payload"]["key"] for m in tagged(slack, OPS))
    twice = {key: count for key, count in told.items() if count > 1}
    text = json.dumps(tagged(slack, OPS))
    lost = [r for r in runs if r not in text]
    assert (twice, lost) == ({}, [])
    assert any(key.startswith("recovery") for key in told), sorted(told)
    assert all(t <= POLL_INTERVAL + 1.0 for t in replicas.takeovers), replicas.takeovers
    print(f"replicas: {len(runs)} failures, {len(told)} notices, 0 twice, 0 lost, "
          f"takeovers {[f'{t:.2f}s' for t in replicas.takeovers]}")
