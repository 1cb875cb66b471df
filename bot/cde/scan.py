"""Reading every run created since a moment, paging no further than needed.

The API's sort order is not documented. The reference page lists newest first, so the scan
*checks* the order as it reads. While every run so far has come newest first, it stops at
the first page that reaches past `since`. When the first page shows the listing oldest
first, the window lies at the tail: the scan reads from the end backwards until it reaches
past `since` (when the API does not tell its total, the end is found first, by asking
single runs at doubling offsets). Any other order is read to the end (bounded by
`max_pages`), so an order this scan does not expect costs requests, never missed runs; and
a scan cut short by its budget says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.cde.client import CdeClient
from bot.cde.models import Run, RunFilter, RunPage
from bot.cde.window import POLL_MAX_REQUESTS, SWEEP_MAX_PAGES, CycleEnd, PollPlan, SweepState

SCAN_PAGE_SIZE = 100
SCAN_MAX_PAGES = 50


@dataclass
class OrderCheck:
    """Follows `created_at` across pages: is the listing newest first, oldest first?
    Runs without `created_at` say nothing of the order.
    """

    newest_first: bool = True
    oldest_first: bool = True
    _last: datetime | None = field(default=None, repr=False)

    @property
    def ordered(self) -> bool:
        """Newest first so far (the order the reference page shows)."""
        return self.newest_first

    @property
    def ascending(self) -> bool:
        """Oldest first so far, and at least one run newer than the one before."""
        return self.oldest_first and not self.newest_first

    def feed(self, runs: tuple[Run, ...]) -> None:
        for run in runs:
            created = run.created_at
            if created is None:
                continue
            if self._last is not None:
                if created > self._last:
                    self.newest_first = False
                elif created < self._last:
                    self.oldest_first = False
            self._last = created

    def past(self, since: datetime) -> bool:
        """True once the listing is known to hold nothing newer than `since` beyond here."""
        return self.newest_first and self._last is not None and self._last < since


@dataclass(frozen=True)
class ScanResult:
    """The runs a scan read. When `complete` is False, `max_pages` cut it short: runs
    further on were not read, so `runs` is not the whole window and must not be taken
    for it.
    """

    runs: list[Run]
    requests: int
    complete: bool
    # Runs read that did not fully fit the model (see `bot.cde.models.read_run`): odd
    # fields, or no usable id at all. Each is logged once by the client.
    odd: int = 0


@dataclass
class _Scan:
    """One scan under way: what it reads with, what it found (each run once: a listing
    that moves while it is paged may show a run on two pages) and the pages it may still ask.
    """

    client: CdeClient
    run_filter: RunFilter
    since: datetime
    page_size: int
    budget: int
    requests: int = 0
    odd: int = 0
    runs: dict[str, Run] = field(default_factory=dict)

    def take(self, page: RunPage) -> None:
        self.requests += 1
        self.odd += len(page.unreadable) + sum(bool(run.problems) for run in page.runs)
        for run in page.runs:
            if run.created_at is None or run.created_at >= self.since:
                self.runs.setdefault(run.id, run)

    def result(self, *, complete: bool) -> ScanResult:
        return ScanResult(list(self.runs.values()), self.requests, complete, self.odd)

    @property
    def spent(self) -> bool:
        return self.requests >= self.budget

    async def page(self, offset: int, limit: int) -> RunPage:
        return await self.client.list_runs(self.run_filter, offset=offset, limit=limit)

    async def from_the_tail(self, *, read: int, total: int) -> ScanResult:
        """An oldest-first listing of `total` runs whose first `read` are read: page back
        from the end, newest first, until a page reaches past `since`.
        """
        end = total
        while end > read:
            if self.spent:
                return self.result(complete=False)
            size = self.client.page_sizing.limit(self.page_size)
            start = max(read, end - size)
            page = await self.page(start, end - start)
            if 0 < page.size < end - start:
                # The listing holds `end` runs, so a short page is one the API cut (said or
                # not): learn it, and ask again for the part nearest the end.
                self.client.page_sizing.capped_at(page.size)
                self.requests += 1
                continue
            if page.size == 0:
                # The listing shrank since its end was learnt: what moved is not known.
                self.requests += 1
                return self.result(complete=False)
            self.take(page)
            backwards = OrderCheck()
            backwards.feed(tuple(reversed(page.runs)))
            if not backwards.newest_first:
                # No longer oldest first: the order is not what this read relies on.
                return await self.in_full(read, start)
            if backwards.past(self.since):
                break
            end = start
        return self.result(complete=True)

    async def find_end(self, known: int) -> int | None:
        """How many runs the listing holds, when the API does not say, `known` being held:
        runs asked one at a time at doubling offsets until none comes, then halving the gap
        (a few dozen requests for millions of runs). None when the budget runs out first.
        """
        low, step, high = known, max(known, 1), None
        while high is None:
            if self.spent:
                return None
            self.requests += 1
            if (await self.page(low + step - 1, 1)).size:
                low, step = low + step, step * 2
            else:
                high = low + step - 1
        while low < high:  # runs up to `low` exist; none from `high` on
            if self.spent:
                return None
            middle = (low + high) // 2
            self.requests += 1
            if (await self.page(middle, 1)).size:
                low = middle + 1
            else:
                high = middle
        return low

    async def in_full(self, offset: int, end: int) -> ScanResult:
        """Read the runs from `offset` to `end` in full."""
        while offset < end:
            if self.spent:
                return self.result(complete=False)
            page = await self.page(offset, min(self.page_size, end - offset))
            self.take(page)
            if page.size == 0:
                break
            offset += page.size
        return self.result(complete=True)


def _more(client: CdeClient, page: RunPage, seen: int) -> bool:
    """Whether the listing goes on past this first page."""
    if page.info.total is not None:
        return page.info.total > seen
    return page.asked is not None and client.page_sizing.is_last(page, page.asked, seen) is not True


async def runs_since(
    client: CdeClient,
    run_filter: RunFilter,
    since: datetime,
    *,
    page_size: int = SCAN_PAGE_SIZE,
    max_pages: int = SCAN_MAX_PAGES,
) -> ScanResult:
    """Runs matching `run_filter` created at or after `since` (or with no `created_at`),
    reading at most `max_pages` pages; the result says whether it read them all.
    """
    scan = _Scan(client, run_filter, since, page_size, budget=max_pages)
    order = OrderCheck()
    seen = 0
    async for page in client.iter_pages(run_filter, page_size=page_size):
        scan.take(page)
        seen += page.size
        order.feed(page.runs)
        if order.past(since):
            break
        total = page.info.total
        if scan.requests == 1 and order.ascending and _more(client, page, seen):
            if total is None:
                total = await scan.find_end(seen)
                if total is None:
                    return scan.result(complete=False)
            if total > seen:
                return await scan.from_the_tail(read=seen, total=total)
        if page.asked is not None and client.page_sizing.is_last(page, page.asked, seen):
            break
        if scan.spent:
            # The caller says so in the log: it knows what the scan was for.
            return scan.result(complete=False)
    return scan.result(complete=True)


# ------------------------------------------------------------------ the window over polls


@dataclass(frozen=True)
class WindowRead:
    """What one poll read of the window (see `bot.cde.window`). `looked` says, for each run
    read, since when the bot is known to have looked where it is listed (before this poll);
    `cycle` is set when a sweep of the window ended this poll; `state` is for the next poll.
    `in_full` names why the listing was read in full instead (an order the sweep cannot
    follow), within `max_pages` pages whatever the budget.
    """

    runs: list[Run]
    requests: int
    looked: dict[str, datetime | None]
    state: SweepState
    cycle: CycleEnd | None = None
    odd: int = 0
    in_full: str | None = None

    @property
    def cut_short(self) -> bool:
        """Runs of the window may go unseen: a sweep (this one or the last) or a read in
        full stopped at its pages before the window's old end.
        """
        return self.state.short


class _Positions:
    """Pages asked by distance from the newest end (I/O): offsets as they are in a listing
    newest first, counted from its end (by `total`) in one oldest first, each page turned
    newest first.
    """

    def __init__(self, client: CdeClient, run_filter: RunFilter, *, total: int | None = None) -> None:
        self.client = client
        self.run_filter = run_filter
        self.total = total  # None: newest first
        self.requests = 0
        self.odd = 0
        self.last_total: int | None = None
        # A short page that may or may not have ended the listing: (where it ended, its size).
        self._unsure: tuple[int, int] | None = None

    async def read(self, start: int, size: int) -> tuple[tuple[Run, ...], int, bool]:
        """The runs from `start` on (at most `size`), newest first; how many entries that
        moved over; whether the listing ends there.
        """
        if self.total is None:
            page = await self.ask(start, size)
            sizing = self.client.page_sizing
            if self._unsure is not None and self._unsure[0] == start and page.size:
                sizing.capped_at(self._unsure[1])  # that short page was cut, not the last
            last = sizing.is_last(page, page.asked, start + page.size) if page.asked else None
            self._unsure = (start + page.size, page.size) if last is None else None
            return page.runs, page.size, last is True or page.size == 0
        while True:
            end = self.total - start
            if end <= 0:
                return (), 0, True
            offset = max(0, end - self.client.page_sizing.limit(size))
            page = await self.ask(offset, end - offset)
            if 0 < page.size < end - offset:
                # A page the API cut: learn it, and ask again for the part nearest the end.
                self.client.page_sizing.capped_at(page.size)
                continue
            return tuple(reversed(page.runs)), page.size, offset == 0 or page.size == 0

    async def ask(self, offset: int, limit: int) -> RunPage:
        """One request, as the API numbers its runs."""
        self.requests += 1
        page = await self.client.list_runs(self.run_filter, offset=offset, limit=limit)
        self.last_total = page.info.total
        self.odd += len(page.unreadable) + sum(bool(run.problems) for run in page.runs)
        return page


@dataclass(frozen=True)
class WindowScan:
    """How the window of `run_filter` is read poll after poll: at most `budget` requests
    a poll (at least 2), at most `max_pages` pages a sweep. It keeps no state itself:
    `read` takes the state the last poll left and gives the next one with what it read.
    """

    client: CdeClient
    run_filter: RunFilter
    budget: int = POLL_MAX_REQUESTS
    max_pages: int = SWEEP_MAX_PAGES
    page_size: int = SCAN_PAGE_SIZE

    async def read(self, since: datetime, state: SweepState, now: datetime) -> WindowRead:
        """This poll's reading of the runs created since `since`: the head, any backlog
        and the next part of the sweep. The order is checked as pages come: a listing
        oldest first is read the same way from its end (one request more a poll, to learn
        where its end is now); one in no order the sweep can follow is read in full (see
        `runs_since`), within `max_pages` pages, every poll.
        """
        if state.order == "unordered":
            return await self._in_full(since, state, now, "the listing is in no order the sweep follows")
        positions = _Positions(self.client, self.run_filter)
        early: list[Run] = []  # runs read while learning where an oldest-first listing ends
        if state.order == "oldest":
            probe = await positions.ask(max(0, (state.total or 0) - self.page_size), self.page_size)
            if probe.info.total is None:
                return await self._in_full(since, state, now, _NO_TOTAL, positions)
            positions.total = probe.info.total
            early.extend(probe.runs)
        plan = self._plan(state, now, since, positions)
        while (step := plan.next()) is not None:
            runs, size, at_end = await positions.read(step.start, step.size)
            if state.order is None and positions.requests == 1 and not at_end and _ascending(runs):
                # Oldest first: the window is at the end. Read it from there, by `total`.
                if positions.last_total is None:
                    return await self._in_full(since, state, now, _NO_TOTAL, positions)
                positions.total = positions.last_total
                early.extend(runs)
                plan = self._plan(state, now, since, positions)
                continue
            plan.take(step, runs, size, at_end=at_end)
        if plan.unordered:
            return await self._in_full(since, replace(state, order="unordered"), now,
                                       "the listing broke its order", positions)
        after, cycle = plan.finish()
        after = replace(after, order="newest" if positions.total is None else "oldest",
                        total=positions.total)
        read = dict(plan.seen)
        for run in early:
            if run.created_at is None or run.created_at >= since:
                read.setdefault(run.id, run)
        return WindowRead(list(read.values()), positions.requests,
                          {run_id: state.looked(run) for run_id, run in read.items()},
                          after, cycle, positions.odd)

    def _plan(self, state: SweepState, now: datetime, since: datetime,
              positions: _Positions) -> PollPlan:
        budget = max(self.budget, 2) - positions.requests
        return PollPlan(state, now, since, max(budget, 2), self.max_pages, self.page_size)

    async def _in_full(self, since: datetime, state: SweepState, now: datetime, why: str,
                       spent: _Positions | None = None) -> WindowRead:
        """The whole window this poll (`runs_since`): for an order the sweep cannot follow."""
        scan = await runs_since(self.client, self.run_filter, since, page_size=self.page_size,
                                max_pages=self.max_pages)
        listed = frozenset(run.id for run in scan.runs)
        cycle = CycleEnd(scan.complete, 1, 0.0, scan.requests, listed)
        after = SweepState(order=state.order,
                           looked_since=now if scan.complete else state.looked_since,
                           short=not scan.complete,
                           last_cycle=cycle if scan.complete else state.last_cycle)
        return WindowRead(scan.runs, scan.requests + (spent.requests if spent else 0),
                          {run.id: state.looked_since for run in scan.runs}, after, cycle,
                          scan.odd + (spent.odd if spent else 0), in_full=why)


_NO_TOTAL = "the listing is oldest first without metadata.total"


def _ascending(runs: tuple[Run, ...]) -> bool:
    order = OrderCheck()
    order.feed(runs)
    return order.ascending
