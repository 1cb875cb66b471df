"""bot/cde/window.py and `WindowScan`: the window read over several polls, within a budget."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.cde.models import PageInfo, Run, RunFilter, RunPage
from bot.cde.paging import PageSizing
from bot.cde.scan import WindowRead, WindowScan
from bot.cde.window import HEAD_MARGIN, SweepState
from bot.demo.runs import make_run

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
FAILED = RunFilter(state="failed")


def failed_run(created: datetime, **fields: Any) -> Run:
    return Run.model_validate(make_run(state="failed", started_at=created, created_at=created,
                                       **fields))


class Listing:
    """Stands in for CdeClient: the failed runs, listed newest first by creation (or
    oldest first), at any offset, with `metadata.total`; each request is counted.
    """

    def __init__(self, runs: Iterable[Run] = (), *, oldest_first: bool = False) -> None:
        self.runs = list(runs)
        self.oldest_first = oldest_first
        self.page_sizing = PageSizing()
        self.requests = 0

    def add(self, *runs: Run) -> None:
        self.runs.extend(runs)

    def listed(self) -> list[Run]:
        ordered = sorted(self.runs, key=lambda r: (r.created_at, r.id), reverse=True)
        return ordered[::-1] if self.oldest_first else ordered

    async def list_runs(self, run_filter: RunFilter | None = None, *, offset: int = 0,
                        limit: int = 10) -> RunPage:
        self.requests += 1
        listing = self.listed()
        page = RunPage(runs=tuple(listing[offset: offset + limit]),
                       info=PageInfo(offset=offset, limit=limit, total=len(listing)))
        return page.model_copy(update={"asked": limit})


    async def iter_pages(self, run_filter: RunFilter | None = None, *,
                         page_size: int = 100) -> AsyncIterator[RunPage]:
        """As `CdeClient.iter_pages`: pages on until one comes short."""
        offset = 0
        while True:
            page = await self.list_runs(run_filter, offset=offset, limit=page_size)
            yield page
            offset += page.size
            if page.size < page_size:
                return


class Polls:
    """Polls a listing with `WindowScan`, keeping the state between polls as the poller does."""

    def __init__(self, listing: Listing, *, budget: int = 10, max_pages: int = 1000) -> None:
        self.listing = listing
        self.scan = WindowScan(listing, FAILED, budget=budget, max_pages=max_pages)  # type: ignore[arg-type]
        self.state = SweepState()
        self.now = START
        self.reads: list[WindowRead] = []

    async def poll(self, minutes: float = 1) -> WindowRead:
        self.now += timedelta(minutes=minutes)
        before = self.listing.requests
        read = await self.scan.read(self.now - WINDOW, self.state, self.now)
        assert read.requests == self.listing.requests - before
        self.state = read.state
        self.reads.append(read)
        return read

    def ids(self, read: WindowRead) -> set[str]:
        return {run.id for run in read.runs}


SPAN = WINDOW - timedelta(hours=1)


def window_of(count: int, now: datetime = START, *, span: timedelta = SPAN) -> list[Run]:
    """`count` failed runs created evenly over `span` (the newest a minute ago): none leaves
    the window during a test."""
    step = (span - timedelta(minutes=2)) / count
    return [failed_run(now - timedelta(minutes=1) - i * step) for i in range(count)]


def cycle_polls(runs: int, budget: int = 10, head_pages: int = 1) -> int:
    """The polls one sweep takes, as the README states it: the first reads `budget` pages,
    each later one `budget - head_pages`, less the one run it reads again.
    """
    first = budget * 100
    return 1 + max(0, math.ceil((runs - first) / ((budget - head_pages) * 100 - 1)))


# ----------------------------------------------------------------------------- tests


async def test_10000_failed_runs_are_read_within_the_budget_every_poll() -> None:
    listing = Listing(window_of(10_000))
    polls = Polls(listing)
    wanted = {run.id for run in listing.runs}
    seen: set[str] = set()
    expected = cycle_polls(10_000)
    for _ in range(expected):
        read = await polls.poll()
        assert read.requests <= 10
        seen |= polls.ids(read)
    assert seen == wanted
    assert read.cycle is not None and read.cycle.complete
    assert read.cycle.polls == expected and read.cycle.listed == wanted


async def test_a_late_failure_in_the_middle_is_read_within_one_cycle() -> None:
    listing = Listing(window_of(5_000))
    polls = Polls(listing)
    for _ in range(3):
        await polls.poll()  # the sweep is under way, past the middle's top
    late = failed_run(polls.now - timedelta(hours=12))
    listing.add(late)
    found_after = None
    for n in range(1, 2 * cycle_polls(5_000) + 1):
        read = await polls.poll()
        assert read.requests <= 10
        if late.id in polls.ids(read):
            found_after = n
            break
    assert found_after is not None and found_after <= cycle_polls(5_000) + 1


async def test_runs_created_since_the_last_poll_are_read_at_the_next_poll() -> None:
    listing = Listing(window_of(3_000))
    polls = Polls(listing)
    for minute in range(12):
        new = [failed_run(polls.now + timedelta(seconds=10 * i + 1)) for i in range(30)]
        listing.add(*new)
        read = await polls.poll()
        assert read.requests <= 10
        assert {run.id for run in new} <= polls.ids(read), f"poll {minute}"


async def test_a_run_failing_within_the_margin_of_its_creation_is_read_at_the_next_poll() -> None:
    listing = Listing(window_of(3_000))
    polls = Polls(listing)
    await polls.poll()
    newest = max(run.created_at for run in listing.runs if run.created_at)
    # Created just before the newest run the last poll saw; listed only now it failed.
    quick = failed_run(newest - HEAD_MARGIN / 2)
    listing.add(quick)
    assert quick.id in polls.ids(await polls.poll())


async def test_a_burst_larger_than_the_budget_is_read_later_not_lost() -> None:
    listing = Listing(window_of(2_000))
    polls = Polls(listing, budget=5)
    for _ in range(3):
        await polls.poll()
    burst = [failed_run(polls.now + timedelta(seconds=i / 100)) for i in range(1_500)]
    listing.add(*burst)
    wanted = {run.id for run in burst}
    seen: set[str] = set()
    for _ in range(20):
        read = await polls.poll()
        assert read.requests <= 5
        seen |= polls.ids(read)
    assert wanted <= seen
    assert polls.state.backlog is None  # caught up


async def test_the_sweep_moves_on_during_a_burst() -> None:
    listing = Listing(window_of(2_000))
    polls = Polls(listing, budget=3)
    await polls.poll()
    cursors = []
    for _ in range(4):
        # More new runs every poll than the head may read: the sweep still moves.
        listing.add(*[failed_run(polls.now + timedelta(seconds=i / 100)) for i in range(400)])
        await polls.poll()
        cursors.append(polls.state.cursor)
    assert all(cursor is not None for cursor in cursors)
    assert sorted(cursors) == cursors and len(set(cursors)) == 4  # type: ignore[type-var]


async def test_an_oldest_first_listing_is_swept_from_its_end() -> None:
    listing = Listing(window_of(4_000), oldest_first=True)
    polls = Polls(listing)
    wanted = {run.id for run in listing.runs}
    seen: set[str] = set()
    late = failed_run(START - timedelta(hours=20))
    for n in range(cycle_polls(4_000, budget=9) + 1):
        if n == 1:
            listing.add(late)  # failed late, listed among old runs
            wanted.add(late.id)
        new = failed_run(polls.now + timedelta(seconds=30))
        listing.add(new)
        wanted.add(new.id)
        read = await polls.poll()
        assert read.requests <= 10
        assert new.id in polls.ids(read)
        seen |= polls.ids(read)
    assert seen == wanted
    assert polls.state.order == "oldest"


async def test_the_cursor_survives_a_listing_that_grows_between_polls() -> None:
    listing = Listing(window_of(6_000))
    polls = Polls(listing)
    wanted = {run.id for run in listing.runs}
    seen: set[str] = set()
    for _ in range(2 * cycle_polls(6_000)):
        # Runs arrive at the head between polls: what was read moves further on.
        arrivals = [failed_run(polls.now + timedelta(seconds=10 * i + 1)) for i in range(5)]
        listing.add(*arrivals)
        wanted |= {run.id for run in arrivals}
        read = await polls.poll()
        seen |= polls.ids(read)
        if read.cycle is not None:
            break
    assert read.cycle is not None and read.cycle.complete
    assert seen == wanted


async def test_a_sweep_longer_than_its_pages_is_cut_short_and_starts_over() -> None:
    listing = Listing(window_of(3_000))
    polls = Polls(listing, budget=10, max_pages=12)
    first = await polls.poll()
    assert first.cycle is None and not first.cut_short
    second = await polls.poll()
    assert second.cycle is not None and not second.cycle.complete
    assert second.cut_short and polls.state.cursor is None
    third = await polls.poll()
    assert third.cut_short  # until a sweep reaches the window's end
    assert polls.state.looked_since is None


async def test_a_small_window_is_read_whole_every_poll() -> None:
    listing = Listing(window_of(150))
    polls = Polls(listing)
    for _ in range(3):
        read = await polls.poll()
        assert read.requests == 2 and len(read.runs) == 150
        assert read.cycle is not None and read.cycle.complete and read.cycle.polls == 1


async def test_what_was_looked_at_is_said_for_each_run() -> None:
    listing = Listing(window_of(3_000))
    polls = Polls(listing)
    first = await polls.poll()
    assert set(first.looked.values()) == {None}  # nothing looked at before
    head_time = polls.now
    new = failed_run(polls.now + timedelta(seconds=5))
    listing.add(new)
    second = await polls.poll()
    assert second.looked[new.id] == head_time
    # The rest of the window: not since a whole sweep yet.
    assert {second.looked[r.id] for r in second.runs if r.created_at < START - timedelta(hours=2)} \
        == {None}
    while (await polls.poll()).cycle is None:
        pass
    cycle_start = START + timedelta(minutes=1)
    read = await polls.poll()
    assert {read.looked[r.id] for r in read.runs
            if r.created_at < START - timedelta(hours=2)} == {cycle_start}


async def test_a_listing_in_no_order_the_sweep_follows_is_read_in_full_and_says_so() -> None:
    runs = window_of(1_200)
    # Newest first page by page, the pages themselves shuffled: no order to sweep by.
    shuffled = [run for start in (600, 0, 900, 300) for run in runs[start: start + 300]]

    class Shuffled(Listing):
        def listed(self) -> list[Run]:
            return shuffled[: len(self.runs)]

    polls = Polls(Shuffled(runs))
    read = await polls.poll()
    assert read.in_full is not None and "order" in read.in_full
    assert {run.id for run in read.runs} == {run.id for run in runs}
    assert read.cycle is not None and read.cycle.complete
    again = await polls.poll()
    assert again.in_full is not None and polls.state.order == "unordered"


async def test_an_oldest_first_listing_without_a_total_is_read_in_full() -> None:
    class WithoutTotal(Listing):
        async def list_runs(self, run_filter: RunFilter | None = None, *, offset: int = 0,
                            limit: int = 10) -> RunPage:
            page = await super().list_runs(run_filter, offset=offset, limit=limit)
            return page.model_copy(update={"info": PageInfo(offset=offset, limit=limit)})

    listing = WithoutTotal(window_of(500), oldest_first=True)
    read = await Polls(listing).poll()
    assert read.in_full is not None and "metadata.total" in read.in_full
    assert {run.id for run in read.runs} == {run.id for run in listing.runs}


async def test_runs_taken_out_ahead_of_the_sweep_make_it_step_back_not_skip() -> None:
    listing = Listing(window_of(3_000))
    polls = Polls(listing)
    wanted = {run.id for run in listing.runs}
    seen: set[str] = set()
    read = await polls.poll()
    seen |= polls.ids(read)
    assert polls.state.cursor == 1_000
    # 250 runs the sweep had read are taken out of the listing: what it had not read
    # moves 250 places nearer the newest end, behind its cursor.
    gone = {run.id for run in listing.listed()[400:650]}
    listing.runs = [run for run in listing.runs if run.id not in gone]
    wanted -= gone
    while read.cycle is None:
        read = await polls.poll()
        assert read.requests <= 10
        seen |= polls.ids(read)
    assert wanted <= seen
