"""Memory over time: the real bot under steady commands, failures arriving and polls every
second, its RSS and its database file sampled all along.

The bot runs as `cde-bot serve` in HTTP mode against the demo CDE API (a new run every
half second, about a fifth of them failures, some recovering) and the Slack stand-in,
subscribed to every site. The look-back window is 3 minutes, so that records
age past twice the window and pruning must keep the database bounded within the soak.

Plateau: RSS over the last 20% of the soak stays within 5% of its value where that part
began; the slope is the least-squares fit over the soak after its first 10%.

Run: python -m bench.soak [--minutes 30] [--rate 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import Target
from bench.standins import ResponseCatcher, serve
from bot.demo.api import SampleCdeApi, keep_producing
from bot.demo.history import DemoHistory
from bot.slack.client import EVENTS_PATH
from tests.helpers.bot_process import BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET, child_environment, free_port
from tests.standins.slack import SlackStandIn, encode_slash_command, sign_request, slash_command_payload

SAMPLE_EVERY = 5.0
CHANNEL = "C0SOAK"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Soak:
    minutes: float
    rate: float
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # seconds, RSS, DB bytes
    commands: int = 0
    answered: int = 0
    notices: int = 0

    def figures(self) -> dict[str, Any]:
        start = self.samples[0][0]
        points = [(t - start, rss, db) for t, rss, db in self.samples]
        end = points[-1][0]
        tail = [p for p in points if p[0] >= 0.8 * end]
        settled = [p for p in points if p[0] >= 0.1 * end]
        tail_start = tail[0][1]
        tail_spread = max(abs(rss - tail_start) for _, rss, _ in tail) / tail_start
        slope = _slope([(t / 60, rss / 2**20) for t, rss, _ in settled])
        return {
            "minutes": round(end / 60, 1), "commands": self.commands, "answered": self.answered,
            "notices_posted": self.notices,
            "rss_start_mb": round(points[0][1] / 2**20, 1),
            "rss_at_last_fifth_mb": round(tail_start / 2**20, 1),
            "rss_end_mb": round(points[-1][1] / 2**20, 1),
            "rss_max_mb": round(max(p[1] for p in points) / 2**20, 1),
            "last_fifth_within": round(tail_spread * 100, 2),
            "slope_mb_per_minute": round(slope, 3),
            "db_at_last_fifth_kb": round(tail[0][2] / 1024, 1),
            "db_end_kb": round(points[-1][2] / 1024, 1),
            "plateau": tail_spread <= 0.05,
        }


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator if denominator else 0.0


async def _command(session: aiohttp.ClientSession, target: Target, catcher: ResponseCatcher,
                   catcher_url: str, text: str, soak: Soak, *, in_ack: bool = False) -> None:
    """`/cde text`, waiting for its answer at the response_url (or in the ack)."""
    key = f"{time.monotonic_ns()}-{random.randrange(10**9)}"
    answered = catcher.expect(key)
    body = encode_slash_command(slash_command_payload(
        text, response_url=f"{catcher_url}/respond/{key}", channel_id=CHANNEL))
    soak.commands += 1
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.post(f"{target.url}{EVENTS_PATH}", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", **sign_request(SIGNING_SECRET, body),
        }) as response:
            await response.read()
        if not in_ack:
            await asyncio.wait_for(answered, 30)
        soak.answered += 1
    catcher.answers.pop(key, None)


async def run(minutes: float, rate: float) -> dict[str, Any]:
    soak = Soak(minutes, rate)
    history = DemoHistory()
    cde = SampleCdeApi(history.past(hours=1), token=CDE_TOKEN)
    catcher = ResponseCatcher()
    with tempfile.TemporaryDirectory(prefix="cde-soak-") as tmp:
        workdir = Path(tmp)
        database = workdir / "bot.db"
        async with SlackStandIn(BOT_TOKEN, "xapp-unused", SIGNING_SECRET) as slack, cde:
            runner, catcher_url = await serve(catcher.app())
            port = free_port()
            env = child_environment({
                "PATH": "/usr/bin:/bin", "PORT": str(port), "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.base_url,
                "CDE_API_URL": cde.url, "CDE_API_TOKEN": CDE_TOKEN, "CDE_POLL_INTERVAL": "1",
                "CDE_LOOKBACK_HOURS": "0.05", "LOG_LEVEL": "WARNING",
                "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            })
            target = Target("bot", [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"], env, port)
            producer = asyncio.create_task(keep_producing(cde, history, 0.5))
            await target.start(workdir)
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                    for site in sorted({run["site-id"] for run in cde.runs}):
                        await _command(session, target, catcher, catcher_url, f"subscribe site:{site}", soak,
                                       in_ack=True)
                    await _drive(session, target, catcher, catcher_url, cde, soak, database)
                soak.notices = sum(1 for call in slack.calls if call.method == "chat.postMessage")
            finally:
                producer.cancel()
                await target.stop()
                await runner.cleanup()
    return soak.figures()


async def _drive(session: aiohttp.ClientSession, target: Target, catcher: ResponseCatcher,
                 catcher_url: str, cde: SampleCdeApi, soak: Soak, database: Path) -> None:
    started = time.monotonic()
    deadline = started + soak.minutes * 60
    next_sample = started
    tasks: set[asyncio.Task[None]] = set()
    i = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_sample:
            size = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
            soak.samples.append((now, rss_bytes(target.pid), size))
            next_sample += SAMPLE_EVERY
        run = random.choice(cde.runs)
        text = f"run {run['id']}" if i % 2 else random.choice(
            ("runs state:failed", f"runs site:{run['site-id']}", "runs limit:20"))
        task = asyncio.create_task(_command(session, target, catcher, catcher_url, text, soak))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
        await asyncio.sleep(max(0.0, started + i / soak.rate - time.monotonic()))
    await asyncio.gather(*tasks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="commands per second")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.minutes, args.rate))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
