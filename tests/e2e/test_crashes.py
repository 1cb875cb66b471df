"""The real bot SIGKILLed again and again while failures arrive: every failure is told, and
nothing is told twice. Each kill lands at the worst instant: Slack has just taken a post and
its answer has not left yet (the stand-in kills the bot before answering), so the bot
never learns the post's ts; after the restart it finds the post by its metadata tag in the
channel's history.

The other crash instants (before a post, during a write, a timeout) are shown in process by
tests/notices/test_outbox.py.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.demo.api import SampleCdeApi
from bot.demo.runs import make_run
from tests.helpers.bot_process import BotProcess, bot_env, stop_cleanly
from tests.helpers.told import tagged
from tests.helpers.waiting import until
from tests.standins.slack import SlackStandIn
from tests.standins.slack.records import ApiCall

OPS = "C0001"
SITE = 1001
# Per cycle, the failures that arrive: (connectors, failures of each). With a digest
# threshold of 3: a notice; a notice and its thread list; a digest and its list; repeats.
SHAPES = [(1, 1), (1, 2), (3, 1), (1, 1), (1, 2)]


def failure(connector_id: str) -> dict[str, Any]:
    took = timedelta(minutes=5)
    return make_run(state="failed", site_id=SITE, connector_id=connector_id,
                    started_at=datetime.now(UTC) - took, took=took)


class Crashes:
    def __init__(self, slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path, database_url: str) -> None:
        self.slack, self.cde, self.tmp_path = slack, cde, tmp_path
        self.env = bot_env(slack, cde, socket_mode=True) | {
            "DATABASE_URL": database_url, "CDE_POLL_INTERVAL": "1", "NOTICE_DIGEST_THRESHOLD": "3"}
        self.bot = BotProcess(self.env, tmp_path / "bot.log")
        self.kills = 0

    async def start(self) -> None:
        connected = self.slack.socket_connections
        self.bot = BotProcess(self.env, self.tmp_path / "bot.log")
        await self.bot.start()
        await self.slack.wait_connected(connections=connected + 1)

    def kill_on_next_post(self) -> None:
        """SIGKILL the bot when Slack has taken its next post, before the answer leaves."""
        def kill(call: ApiCall) -> None:
            if "metadata" not in call.params or self.bot.process is None:
                return
            del self.slack.on_accept["chat.postMessage"]
            self.bot.process.kill()
            self.kills += 1

        self.slack.on_accept["chat.postMessage"] = kill


async def test_sigkill_cycles_while_failures_arrive_lose_nothing_and_repeat_nothing(
        slack: SlackStandIn, cde: SampleCdeApi, tmp_path: Path) -> None:
    # On SQLite; the same kills on PostgreSQL, with two replicas, are tests/e2e/test_replicas.py.
    world = Crashes(slack, cde, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await world.start()
    before = len(slack.messages(OPS))
    await slack.send_slash_command(f"subscribe site:{SITE}", channel_id=OPS)
    await until(lambda: len(slack.messages(OPS)) > before, "the subscription's confirmation")

    runs: list[str] = []
    connectors = [str(uuid.uuid4()) for _ in range(3)]
    for connector_count, each in SHAPES:
        world.kill_on_next_post()
        for connector in connectors[:connector_count]:
            for _ in range(each):
                run = failure(connector)
                cde.add_run(run)
                runs.append(run["id"])
        assert world.bot.process is not None
        await world.bot.process.wait()  # killed as Slack took a post
        await world.start()

    def all_told() -> bool:
        text = json.dumps(tagged(slack, OPS))
        return all(run in text for run in runs)

    await until(all_told, "every failure told")
    polls = len(cde.requests_to("/runs"))
    await until(lambda: len(cde.requests_to("/runs")) >= polls + 3, "three more polls")
    await stop_cleanly(world.bot)

    told = Counter(m["metadata"]["event_payload"]["key"] for m in tagged(slack, OPS))
    twice = {key: count for key, count in told.items() if count > 1}
    text = json.dumps(tagged(slack, OPS))
    lost = [run for run in runs if run not in text]
    assert (world.kills, len(runs), twice, lost) == (len(SHAPES), sum(c * e for c, e in SHAPES), {}, [])
