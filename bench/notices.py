"""Failure notices: how long from a run failing to its notice in Slack, and what a poll
costs when nothing is new and when many incidents are open.

- Latency: the real bot (`cde-bot serve`, HTTP mode) polls the demo CDE API every
  `interval` seconds; a failed run of a new connector is added at a random moment, and
  the time until `chat.postMessage` reaches the Slack stand-in is measured. The goal is
  the poll interval plus 1 s at most.
- Requests per poll: the real `Poller` against the demo API with one subscription and
  nothing new, and with 1 000 open incidents over 50 sites (their recoveries looked for
  within `CDE_RECOVERY_MAX_REQUESTS`).

Run: python -m bench.notices [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import Target
from bench.poll import real_poller
from bot.console.local_slack import LocalSlack
from bot.demo.api import SampleCdeApi
from bot.demo.runs import make_run
from bot.notices.models import Incident, NoticeFilter
from bot.slack.client import EVENTS_PATH
from tests.helpers.bot_process import BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET, child_environment, free_port
from tests.standins.slack import SlackStandIn, encode_slash_command, sign_request, slash_command_payload

CHANNEL = "C0NOTICE"
SITE = 1001


async def latency(interval: float = 2.0, failures: int = 5) -> dict[str, Any]:
    """Seconds from a failed run appearing in the API to its notice reaching Slack."""
    cde = SampleCdeApi([], token=CDE_TOKEN)
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cde-notices-") as tmp:
        workdir = Path(tmp)
        async with SlackStandIn(BOT_TOKEN, "xapp-unused", SIGNING_SECRET) as slack, cde:
            port = free_port()
            env = child_environment({
                "PATH": "/usr/bin:/bin", "PORT": str(port), "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.base_url, "CDE_API_URL": cde.url,
                "CDE_API_TOKEN": CDE_TOKEN, "CDE_POLL_INTERVAL": str(interval), "LOG_LEVEL": "WARNING",
                "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bot.db'}",
            })
            target = Target("bot", [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"], env, port)
            await target.start(workdir)
            try:
                await _subscribe(target, slack)
                await asyncio.sleep(interval * 1.5)  # the subscription's first poll is behind
                for _ in range(failures):
                    await asyncio.sleep(random.uniform(0, interval))
                    before = len(slack.calls_to("chat.postMessage"))
                    cde.add_run(make_run(state="failed", site_id=SITE, connector_id=str(uuid.uuid4())))
                    added = time.monotonic()
                    while len(slack.calls_to("chat.postMessage")) == before:
                        if time.monotonic() - added > interval + 30:
                            raise RuntimeError("no notice within 30 s of the poll interval")
                        await asyncio.sleep(0.01)
                    seconds.append(slack.calls_to("chat.postMessage")[before].time - added)
            finally:
                await target.stop()
    return {"interval": interval, "seconds": [round(s, 3) for s in seconds],
            "max_seconds": round(max(seconds), 3), "goal_seconds": interval + 1}


async def _subscribe(target: Target, slack: SlackStandIn) -> None:
    url = slack.new_response_url(channel_id=CHANNEL)
    body = encode_slash_command(slash_command_payload(f"subscribe site:{SITE}", response_url=url,
                                                      channel_id=CHANNEL))
    async with aiohttp.ClientSession() as session, session.post(
        f"{target.url}{EVENTS_PATH}", data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **sign_request(SIGNING_SECRET, body)},
    ) as response:
        await response.read()
    # The confirmation is posted in the channel, for everyone to see.
    deadline = time.monotonic() + 15
    while not slack.messages(CHANNEL):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the subscription was not confirmed: {slack.responses(url)}")
        await asyncio.sleep(0.05)


async def poll_requests(open_incidents: int = 1000, sites: int = 50) -> dict[str, Any]:
    """API requests of one poll: nothing new with one subscription; then `open_incidents`
    open incidents over `sites` sites."""
    now = datetime.now(UTC)
    slack = LocalSlack(on_message=lambda posted: None)
    await slack.start()
    figures: dict[str, Any] = {}
    try:
        runs = [make_run(state="finished", site_id=1 + i % sites, connector_id=str(uuid.uuid4()),
                         started_at=now - timedelta(hours=2)) for i in range(200)]
        async with SampleCdeApi(runs, token="t") as api, real_poller(api, slack) as (poller, store):
            await store.add_subscription("C0001", NoticeFilter(site_id=1), "U1", now - timedelta(days=1))
            await poller.poll_once()  # the first poll records what is there
            figures["nothing_new"] = (await poller.poll_once()).api_requests
            for i in range(open_incidents):
                failed = make_run(state="failed", site_id=1 + i % sites, connector_id=str(uuid.uuid4()),
                                  started_at=now - timedelta(hours=1))
                await store.save_incident(Incident(
                    id=0, channel_id="C0001", site_id=failed["site-id"],
                    connector_id=failed["connector-id"], message_ts=f"1.{i}", run=failed, failures=1,
                    muted_failures=0, first_failed_at=now - timedelta(hours=1),
                    last_failed_at=now - timedelta(hours=1)))
            started = time.perf_counter()
            report = await poller.poll_once()
            figures["open_incidents"] = open_incidents
            figures["with_open_incidents"] = report.api_requests
            figures["with_open_incidents_seconds"] = round(time.perf_counter() - started, 3)
    finally:
        await slack.stop()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notices", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(latency(failures=3 if args.quick else 5)), indent=2))
    print(json.dumps(asyncio.run(poll_requests()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
