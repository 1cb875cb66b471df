"""The window of failed runs read over several polls, by the real poller: every failure
told once, within a sweep of polls, each poll within CDE_POLL_MAX_REQUESTS requests.

Each test counts the requests of the failure scan (state=failed) per poll, and what each
action the poller carried out told (channel, run), so that a run told twice shows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.notices import triage
from bot.notices.deliver import Outcome
from bot.notices.models import NoticeFilter, Subscription
from tests.helpers.world import World

OPS = "C0001"
MakeWorld = Callable[..., Awaitable[World]]


class Told:
    """Every (channel, run) the poller's carried-out actions told, counted."""

    def __init__(self, world: World) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        delivery = world.poller.delivery
        original = delivery.carry_out

        async def carry_out(action: triage.Action, facts: triage.PollFacts) -> Outcome:
            outcome = await original(action, facts)
            if not outcome.failed:
                self.counts.update(triage.announced_pairs(action))
            return outcome

        delivery.carry_out = carry_out  # type: ignore[method-assign]

    def runs(self, channel: str = OPS) -> set[str]:
        return {run_id for (where, run_id) in self.counts if where == channel}

    def twice(self) -> list[tuple[str, str]]:
        return [pair for pair, count in self.counts.items() if count > 1]


def failure_scans(world: World) -> int:
    return len([r for r in world.cde.requests_to("/runs") if r.query.get("state") == "failed"])


async def poll(world: World, minutes: float = 1, *, budget: int) -> int:
    """One poll; the requests its failure scan made, checked against the budget."""
    before = failure_scans(world)
    report = await world.poll(minutes)
    assert report.outcome == "ok", report.error
    spent = failure_scans(world) - before
    assert spent <= budget, f"{spent} requests in one poll"
    return spent


async def subscribe(world: World, at: datetime, **filters: Any) -> Subscription:
    filters.setdefault("site_id", 1001)
    made = await world.store.add_subscription(OPS, NoticeFilter(**filters), "U0001", at)
    assert made is not None
    return made


def old_failures(world: World, count: int, *, hours: float = 20) -> list[dict[str, Any]]:
    """`count` runs that failed over the last `hours` (5 minutes after their creation)."""
    return [world.fail(i * hours * 60 / count) for i in range(count)]


def sweep_polls(runs: int, budget: int = 10, head_pages: int = 1) -> int:
    """The polls one sweep takes, as the README states it: the first reads `budget` pages,
    each later one `budget - head_pages`, less the one run it reads again.
    """
    first = budget * 100
    return 1 + max(0, math.ceil((runs - first) / ((budget - head_pages) * 100 - 1)))


async def test_10000_failed_runs_are_each_told_once_within_a_sweep_at_10_requests_a_poll(
        make_world: MakeWorld) -> None:
    world = await make_world()
    await subscribe(world, world.clock() - timedelta(days=2))
    runs = old_failures(world, 10_000)
    told = Told(world)
    wanted = {run["id"] for run in runs}
    polls = 0
    while told.runs() != wanted and polls < 20:
        await poll(world, budget=10)
        polls += 1
    assert told.runs() == wanted
    assert polls <= sweep_polls(10_000, budget=10)  # 12
    for _ in range(3):
        await poll(world, budget=10)
    assert told.twice() == []
    assert len(told.counts) == 10_000


async def test_a_late_failure_in_the_middle_of_the_window_is_told_within_one_sweep(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    old_failures(world, 1_000)
    told = Told(world)
    for _ in range(3):
        await poll(world, budget=3)
    # Created 15 hours ago, failed a minute ago: listed among runs told long ago.
    late = world.fail(1, took=timedelta(hours=15))
    polls = 0
    while late["id"] not in told.runs() and polls < 10:
        await poll(world, budget=3)
        polls += 1
    assert late["id"] in told.runs()
    assert polls <= sweep_polls(1_000, budget=3) + 1  # within one sweep (5), and a poll
    assert told.twice() == []


async def test_a_failure_of_a_run_created_since_the_last_poll_is_told_at_the_next(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    old_failures(world, 1_000)
    told = Told(world)
    await poll(world, budget=3)
    for _ in range(8):
        world.clock.advance(seconds=30)
        new = world.fail(0, took=timedelta(seconds=20))
        await poll(world, 0.5, budget=3)
        assert new["id"] in told.runs()
    assert told.twice() == []


async def test_a_burst_larger_than_the_budget_is_told_later_not_lost(make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    old_failures(world, 500)
    told = Told(world)
    for _ in range(2):
        await poll(world, budget=3)
    burst = [world.fail(i / 1000, took=timedelta(seconds=30)) for i in range(800)]
    wanted = {run["id"] for run in burst}
    first = await poll(world, budget=3)
    assert first == 3 and not wanted <= told.runs()  # more than one poll can read
    for _ in range(8):
        await poll(world, budget=3)
    assert wanted <= told.runs()
    assert told.twice() == []


async def test_an_oldest_first_listing_is_swept_from_its_end_within_the_budget(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=4)
    world.cde.shape.oldest_first = True
    await subscribe(world, world.clock() - timedelta(days=2))
    runs = old_failures(world, 1_000)
    told = Told(world)
    wanted = {run["id"] for run in runs}
    for _ in range(sweep_polls(1_000, budget=3) + 1):  # one request a poll finds the end
        new = world.fail(0, took=timedelta(seconds=20))
        wanted.add(new["id"])
        await poll(world, budget=4)
        assert new["id"] in told.runs()
    assert told.runs() == wanted
    assert told.twice() == []


async def test_a_subscription_made_mid_sweep_is_told_new_failures_and_no_old_one(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    old = old_failures(world, 1_000)
    for _ in range(sweep_polls(1_000, budget=3) + 2):  # idle: a whole sweep, and part of one
        before = failure_scans(world)
        report = await world.poll()
        assert report.outcome == "idle" and failure_scans(world) - before <= 3
    # Failed before the subscription, far down the window where the sweep has not been yet.
    failed_before = world.fail(3, took=timedelta(hours=18))
    world.clock.advance(minutes=1)
    subscription = await subscribe(world, world.clock())
    assert subscription.seen_until is not None
    told = Told(world)
    world.clock.advance(seconds=30)
    at_head = world.fail(0, took=timedelta(seconds=20))
    late = world.fail(0, took=timedelta(hours=17))
    for _ in range(sweep_polls(1_000, budget=3) + 1):
        await poll(world, budget=3)
    assert told.runs() == {at_head["id"], late["id"]}
    assert failed_before["id"] not in told.runs()
    assert not {run["id"] for run in old} & told.runs()


async def test_records_are_pruned_after_a_whole_sweep_keeping_what_it_read(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    runs = old_failures(world, 1_000)
    kept: list[set[str]] = []
    original = world.store.prune

    async def prune(before: datetime, keep: Any = ()) -> int:
        kept.append(set(keep))
        return await original(before, keep)

    world.store.prune = prune  # type: ignore[method-assign]
    polls = sweep_polls(1_000, budget=3)
    for n in range(1, polls + 1):
        await poll(world, budget=3)
        assert len(kept) == (1 if n == polls else 0), f"pruned at poll {n}"
    assert kept == [{run["id"] for run in runs}]
    report = await world.poll()
    assert report.sweep_polls == polls


async def test_the_sweep_is_said_in_the_poll_report(make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    old_failures(world, 1_000)
    first = await world.poll()
    assert first.sweep_polls is None  # no whole sweep yet
    for _ in range(sweep_polls(1_000, budget=3) - 1):
        report = await world.poll()
    assert (report.sweep_polls, report.sweep_seconds) == (5, 4 * 60)


async def test_a_new_failure_at_the_head_is_news_by_the_bots_clock_mid_sweep(
        make_world: MakeWorld) -> None:
    """The CDE's clock is 2 hours behind the bot's: a failure after the subscription looks
    older than it. At the head of the window the bot's own clock decides, sweep or not."""
    world = await make_world(poll_max_requests=3)
    behind = 120
    for i in range(1_000):
        world.fail(behind + i * 1.2)
    for _ in range(sweep_polls(1_000, budget=3) + 2):
        assert (await world.poll()).outcome == "idle"
    world.clock.advance(minutes=1)
    await subscribe(world, world.clock())
    told = Told(world)
    world.clock.advance(seconds=30)
    new = world.fail(behind, took=timedelta(seconds=20))
    await poll(world, budget=3)
    assert told.runs() == {new["id"]}


async def test_a_failure_the_store_could_not_record_is_told_at_the_next_poll_not_a_sweep_later(
        make_world: MakeWorld) -> None:
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    old_failures(world, 1_000)
    told = Told(world)
    for _ in range(sweep_polls(1_000, budget=3)):
        await poll(world, budget=3)
    # Deep in the window: the sweep reads it, and moves on.
    late = world.fail(1, took=timedelta(hours=15), connector_id="019e16f3-c001-7000-8000-00000000000a")
    original = world.store.save_incident
    broken: list[str] = []

    async def save_incident(*args: Any, **kwargs: Any) -> Any:
        incident = args[0] if args else kwargs.get("incident")
        if getattr(incident, "connector_id", None) == late["connector-id"] and not broken:
            broken.append("once")
            raise RuntimeError("disk I/O error")
        return await original(*args, **kwargs)

    world.store.save_incident = save_incident  # type: ignore[method-assign]
    for _ in range(sweep_polls(1_000, budget=3) + 1):
        await poll(world, budget=3)
        if broken:
            break
    assert broken
    assert late["id"] not in told.runs()
    await poll(world, budget=3)
    assert late["id"] in told.runs()


async def test_a_sweep_started_over_mid_way_loses_nothing_and_tells_nothing_twice(
        make_world: MakeWorld) -> None:
    """What a replica does when it leads again (or a new process): a new sweep."""
    world = await make_world(poll_max_requests=3)
    await subscribe(world, world.clock() - timedelta(days=2))
    runs = old_failures(world, 1_000)
    told = Told(world)
    for _ in range(3):
        await poll(world, budget=3)
    world.poller.start_over()
    for _ in range(sweep_polls(1_000, budget=3)):
        await poll(world, budget=3)
    assert told.runs() == {run["id"] for run in runs}
    assert told.twice() == []
