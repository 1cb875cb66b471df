"""What a poll costs: API requests per poll against the number of subscriptions and
against the failed runs in the window, and the time to decide what is news for many
failed runs and many subscriptions.

Run: python -m bench.poll
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.cde.models import Run
from bot.config import Settings
from bot.console.local_slack import LocalSlack
from bot.demo.api import SampleCdeApi
from bot.demo.history import DemoHistory
from bot.demo.runs import make_run
from bot.notices import triage
from bot.notices.deliver import Outcome
from bot.notices.models import NoticeFilter, Subscription
from bot.notices.oncall import OnCall
from bot.notices.poller import Poller
from bot.slack.client import web_client
from bot.slack.poster import SlackPoster
from bot.store.sql import SqlStore

NOW = datetime.now(UTC)


def decide_benchmark() -> None:
    failed = [Run.model_validate(make_run(state="failed", site_id=1000 + i % 50,
                                          started_at=NOW - timedelta(minutes=i % 600)))
              for i in range(500)]
    print("Deciding what is news (pure), 500 failed runs in the window:")
    base = None
    for count in (1, 10, 100, 1000):
        subs = [Subscription(i, f"C{i:05d}", NoticeFilter(site_id=1000 + i % 50), "U1",
                             NOW - timedelta(days=1)) for i in range(count)]
        facts = triage.PollFacts(now=NOW, window=timedelta(hours=24), failed_runs=failed,
                                 subscriptions=subs, announced=set(), open_incidents=[], mutes=[])
        started = time.perf_counter()
        repeat = 5
        for _ in range(repeat):
            actions = triage.plan_failures(facts)
        seconds = (time.perf_counter() - started) / repeat
        base = base or seconds
        print(f"  {count:5d} subscriptions: {seconds * 1000:8.1f} ms, {len(actions):5d} actions "
              f"({seconds / base:5.1f}x the 1-subscription time)")


def match_benchmark(counts: tuple[int, ...] = (1, 100, 1_000, 10_000)) -> dict[int, float]:
    """Matching a poll's failed runs to subscriptions that each follow a site of their own:
    CPU per poll against the same runs with one subscription (the floor).
    """
    failed = [Run.model_validate(make_run(state="failed", site_id=1 + (i * 97) % 10_000,
                                          started_at=NOW - timedelta(minutes=5)))
              for i in range(100)]
    print("Matching 100 failed runs to subscriptions, one site each (CPU, best of 5):")
    floor = None
    seconds: dict[int, float] = {}
    for count in counts:
        subs = [Subscription(i, f"C{i:05d}", NoticeFilter(site_id=i), "U1", NOW - timedelta(days=1),
                             seen_until=NOW - timedelta(days=1)) for i in range(1, count + 1)]
        facts = triage.PollFacts(now=NOW, window=timedelta(hours=24), failed_runs=failed,
                                 subscriptions=subs, announced=set(), open_incidents=[], mutes=[],
                                 first_seen={run.id: NOW for run in failed})
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            told = triage.new_failures(facts)
            best = min(best, time.process_time() - started)
        floor = floor or best
        seconds[count] = best
        print(f"  {count:6d} subscriptions: {best * 1000:7.1f} ms CPU, "
              f"{sum(len(runs) for runs in told.values()):4d} told ({best / floor:5.1f}x the floor)")
    return seconds


@contextlib.asynccontextmanager
async def real_poller(api: SampleCdeApi, slack: LocalSlack,
                      clock: Callable[[], datetime] | None = None) -> AsyncIterator[tuple[Poller, SqlStore]]:
    """The real `Poller` on `api` and `slack`, with a new SQLite store; closed after."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await store.open()
        settings = Settings(_env_file=None, slack_bot_token="xoxb-bench", slack_signing_secret="s",
                            slack_api_url=slack.api_url, cde_api_token="t")
        cde = CdeClient(api.url, SecretStr("t"), retry=NO_WAIT_RETRY)
        client = web_client(settings)
        oncall = OnCall(store, SlackPoster(client, min_interval=0))
        poller = Poller(cde, store, oncall, clock=clock) if clock else Poller(cde, store, oncall)
        try:
            yield poller, store
        finally:
            await cde.aclose()
            await client.aclose()
            await store.close()


async def requests_benchmark() -> None:
    print("API requests per poll (real Poller, sample API with a 48 h history, SQLite):")
    history = DemoHistory()
    slack = LocalSlack(on_message=lambda posted: None)
    await slack.start()
    try:
        for count in (1, 10, 100):
            async with (SampleCdeApi(history.past(), token="t") as api,
                        real_poller(api, slack) as (poller, store)):
                for i in range(count):
                    await store.add_subscription(f"C{i:04d}", NoticeFilter(site_id=1001 + i % 5),
                                                 "U1", NOW - timedelta(days=3))
                started = time.perf_counter()
                first = await poller.poll_once()
                first_seconds = time.perf_counter() - started
                before = len(api.requests)
                started = time.perf_counter()
                await poller.poll_once()
                quiet_seconds = time.perf_counter() - started
                quiet = len(api.requests) - before
                print(f"  {count:4d} subscriptions: first poll {first.api_requests} requests, "
                      f"{first.posted} posts in {first_seconds:.2f}s; next poll {quiet} requests "
                      f"in {quiet_seconds * 1000:.0f} ms")
    finally:
        await slack.stop()


class Clock:
    """The poller's clock: a poll a minute, as CDE_POLL_INTERVAL's default."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def window_benchmark(failed: int = 10_000) -> dict[str, Any]:
    """A window of `failed` failed runs, one subscription that follows them all: the
    requests of each poll's failure scan, the polls until every failure is told, and
    whether each was told once.
    """
    count = f"{failed:_}".replace("_", " ")
    print(f"{count} failed runs in the window (real Poller, CDE_POLL_MAX_REQUESTS=10, a poll a "
          "minute, SQLite):")
    slack = LocalSlack(on_message=lambda posted: None)
    await slack.start()
    clock = Clock()
    runs = [make_run(state="failed", site_id=1001,
                     started_at=NOW - timedelta(minutes=5 + i * 20 * 60 / failed))
            for i in range(failed)]
    try:
        async with (SampleCdeApi(runs, token="t") as api,
                    real_poller(api, slack, clock) as (poller, store)):
            await store.add_subscription("C0001", NoticeFilter(site_id=1001), "U1",
                                         NOW - timedelta(days=2))
            ids = [run["id"] for run in runs]
            pairs: Counter[tuple[str, str]] = Counter()
            carry_out = poller.delivery.carry_out

            async def counted(action: triage.Action, facts: triage.PollFacts) -> Outcome:
                outcome = await carry_out(action, facts)
                if not outcome.failed:
                    pairs.update(triage.announced_pairs(action))
                return outcome

            poller.delivery.carry_out = counted  # type: ignore[method-assign]
            spent: list[int] = []
            told = 0
            started = time.perf_counter()
            while told < failed and len(spent) < 100:
                clock.now += timedelta(minutes=1)
                before = len([r for r in api.requests_to("/runs") if r.query.get("state") == "failed"])
                report = await poller.poll_once()
                after = len([r for r in api.requests_to("/runs") if r.query.get("state") == "failed"])
                spent.append(after - before)
                told = len(await store.announced(ids))
            seconds = time.perf_counter() - started
            for _ in range(len(spent) + 1):  # another whole sweep: nothing told again
                clock.now += timedelta(minutes=1)
                report = await poller.poll_once()
            twice = sum(1 for count in pairs.values() if count > 1)
            print(f"  requests per poll: at most {max(spent)} ({' '.join(map(str, spent))}); "
                  f"polls until every failure was told: {len(spent)} ({seconds:.1f}s in all)")
            print(f"  told {len(pairs)} of {failed} created, {twice} twice (after another "
                  f"whole sweep); a whole sweep: {report.sweep_polls} polls, "
                  f"{report.sweep_seconds:.0f} s")
            return {"failed": failed, "max_requests": max(spent), "polls": len(spent),
                    "told": len(pairs), "twice": twice, "sweep_polls": report.sweep_polls,
                    "sweep_seconds": report.sweep_seconds}
    finally:
        await slack.stop()


def main() -> None:
    decide_benchmark()
    match_benchmark()
    asyncio.run(requests_benchmark())
    asyncio.run(window_benchmark())


if __name__ == "__main__":
    main()
