"""bot/cde/scan.py: reading runs created since a moment, no further than needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.cde.models import PageInfo, Run, RunFilter, RunPage
from bot.cde.paging import PageSizing
from bot.cde.scan import SCAN_PAGE_SIZE, OrderCheck, runs_since
from bot.demo.runs import make_run

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def run(created: datetime | None, **kwargs: Any) -> Run:
    moment = created or NOW
    r = Run.model_validate(make_run(state="failed", started_at=moment, created_at=moment, **kwargs))
    return r if created is not None else r.model_copy(update={"created_at": None})


def hours_ago(*hours: float) -> list[Run]:
    return [run(NOW - timedelta(hours=h)) for h in hours]


class FakeClient:
    """Stands in for CdeClient: `iter_pages` yields the given pages, `list_runs` reads the
    listing they make at any offset; each page asked for is counted.
    """

    def __init__(self, pages: list[list[Run]]) -> None:
        self.pages = pages
        self.requested = 0
        self.calls: list[tuple[RunFilter | None, int]] = []
        self.offsets: list[int] = []
        self.page_sizing = PageSizing()

    async def list_runs(self, run_filter: RunFilter | None = None, *, offset: int = 0,
                        limit: int = 10) -> RunPage:
        self.requested += 1
        self.offsets.append(offset)
        listing = [r for p in self.pages for r in p]
        return RunPage(runs=tuple(listing[offset: offset + limit]),
                       info=PageInfo(offset=offset, limit=limit, total=len(listing)))

    async def iter_pages(self, run_filter: RunFilter | None = None, *,
                         page_size: int = 100) -> AsyncIterator[RunPage]:
        self.calls.append((run_filter, page_size))
        total = sum(len(p) for p in self.pages)
        offset = 0
        for runs in self.pages or [[]]:
            self.requested += 1
            yield RunPage(runs=tuple(runs), info=PageInfo(offset=offset, limit=page_size, total=total))
            offset += len(runs)


def paged(runs: list[Run], size: int) -> list[list[Run]]:
    return [runs[i: i + size] for i in range(0, len(runs), size)]


# -------------------------------------------------------------------------- OrderCheck


def test_order_check_follows_newest_first() -> None:
    order = OrderCheck()
    assert order.ordered and not order.past(NOW)  # nothing seen yet
    order.feed(tuple(hours_ago(0, 1, 1, 2)))  # ties keep the order
    assert order.ordered
    assert order.past(NOW - HOUR)
    assert not order.past(NOW - 2 * HOUR)  # the last seen is exactly `since`: not past it
    assert not order.past(NOW - 3 * HOUR)


def test_order_check_notices_a_broken_order_across_pages() -> None:
    order = OrderCheck()
    order.feed(tuple(hours_ago(1, 5)))
    order.feed(tuple(hours_ago(4)))  # newer than the last one of the page before
    assert not order.ordered
    assert not order.past(NOW)  # once broken, never known to be past


def test_order_check_skips_runs_without_created_at() -> None:
    order = OrderCheck()
    order.feed((run(None),))
    assert order.ordered and not order.past(NOW + HOUR)
    order.feed((run(NOW - 3 * HOUR), run(None), run(NOW - 4 * HOUR), run(None)))
    assert order.ordered and order.past(NOW - 2 * HOUR)


# --------------------------------------------------------------------------- runs_since


async def test_ordered_listing_stops_at_the_first_page_reaching_past_since() -> None:
    runs = hours_ago(*range(50))  # newest first, one an hour
    client = FakeClient(paged(runs, 10))
    result = await runs_since(client, RunFilter(state="failed"), NOW - timedelta(hours=15, minutes=30))
    assert client.requested == 2
    assert result.requests == 2
    assert result.complete
    assert result.runs == runs[:16]  # 0 h .. 15 h ago


async def test_ordered_listing_stops_after_one_page_when_it_already_reaches_past() -> None:
    client = FakeClient(paged(hours_ago(*range(30)), 10))
    result = await runs_since(client, RunFilter(), NOW - 2.5 * HOUR)
    assert (client.requested, result.requests, result.complete) == (1, 1, True)
    assert result.runs == client.pages[0][:3]


async def test_a_run_created_exactly_at_since_is_kept_and_paging_goes_on() -> None:
    runs = hours_ago(*range(30))
    client = FakeClient(paged(runs, 10))
    result = await runs_since(client, RunFilter(), NOW - 9 * HOUR)  # the last of page 1
    assert client.requested == 2  # page 1 does not reach *past* `since`
    assert result.runs == runs[:10]


async def test_everything_newer_than_since_reads_to_the_end() -> None:
    runs = hours_ago(*range(25))
    client = FakeClient(paged(runs, 10))
    result = await runs_since(client, RunFilter(), NOW - 48 * HOUR)
    assert (client.requested, result.requests, result.complete) == (3, 3, True)
    assert result.runs == runs


async def test_an_oldest_first_listing_is_read_from_its_tail() -> None:
    oldest_first = hours_ago(*range(29, -1, -1))
    client = FakeClient(paged(oldest_first, 10))
    result = await runs_since(client, RunFilter(), NOW - 4.5 * HOUR, page_size=10)
    # The first page, then the last: it reaches back past `since`.
    assert (client.requested, result.requests, client.offsets) == (2, 2, [20])
    assert result.complete
    assert result.runs == oldest_first[-5:]


async def test_an_oldest_first_listing_of_thousands_of_old_runs_costs_few_pages() -> None:
    old = [run(NOW - timedelta(days=30, minutes=i)) for i in range(6000, 0, -1)]
    new = run(NOW - timedelta(minutes=1))
    client = FakeClient(paged([*old, new], 100))
    result = await runs_since(client, RunFilter(), NOW - 24 * HOUR)
    assert result.runs == [new] and result.complete
    assert result.requests == 2


async def test_an_oldest_first_tail_that_breaks_order_is_read_in_full() -> None:
    # Oldest first on the first page; the last page is not: the middle is read too.
    listing = [*hours_ago(*range(30, 20, -1)), *hours_ago(0, 1, 2, 3, 4, 15, 16, 17, 18, 19),
               *hours_ago(10, 11, 12, 13, 14, 9, 8, 7, 6, 5)]
    client = FakeClient(paged(listing, 10))
    result = await runs_since(client, RunFilter(), NOW - 4.5 * HOUR, page_size=10)
    assert result.complete and client.offsets == [20, 10]
    assert sorted(NOW - r.created_at for r in result.runs) == [timedelta(hours=h) for h in range(5)]


async def test_order_broken_on_a_later_page_reads_to_the_end() -> None:
    pages = [hours_ago(0, 1, 2), hours_ago(1.5, 6, 7), hours_ago(8, 9), hours_ago(0.5, 30)]
    client = FakeClient(pages)
    result = await runs_since(client, RunFilter(), NOW - 5 * HOUR)
    # Page 2 breaks the order (1.5 h after 2 h) before reaching past `since`: read on.
    assert client.requested == 4
    created = sorted(NOW - r.created_at for r in result.runs)
    assert created == [timedelta(hours=h) for h in (0, 0.5, 1, 1.5, 2)]


async def test_max_pages_cut_reports_incomplete() -> None:
    client = FakeClient(paged(hours_ago(*range(49, -1, -1)), 10))  # oldest first
    result = await runs_since(client, RunFilter(), NOW - 100 * HOUR, max_pages=3, page_size=10)
    assert client.requested == 3 and result.requests == 3
    assert not result.complete
    assert len(result.runs) == 30


async def test_max_pages_does_not_limit_an_ordered_scan_that_stops_in_time() -> None:
    client = FakeClient(paged(hours_ago(*range(50)), 10))
    result = await runs_since(client, RunFilter(), NOW - 25.5 * HOUR, max_pages=3)
    assert client.requested == 3
    assert result.complete  # the third page reached past `since`: nothing unseen


async def test_listing_of_exactly_max_pages_is_complete() -> None:
    client = FakeClient(paged(hours_ago(*range(29, -1, -1)), 10))  # 3 pages, oldest first
    result = await runs_since(client, RunFilter(), NOW - 100 * HOUR, max_pages=3)
    assert len(result.runs) == 30
    assert result.complete


async def test_runs_without_created_at_are_kept() -> None:
    undated = [run(None), run(None)]
    pages = [[hours_ago(0)[0], undated[0]], [undated[1], *hours_ago(5, 6)]]
    client = FakeClient(pages)
    result = await runs_since(client, RunFilter(), NOW - HOUR)
    assert client.requested == 2
    assert [r.id for r in result.runs] == [pages[0][0].id, undated[0].id, undated[1].id]


async def test_listing_with_no_created_at_at_all_reads_to_the_end() -> None:
    pages = [[run(None) for _ in range(3)] for _ in range(4)]
    client = FakeClient(pages)
    result = await runs_since(client, RunFilter(), NOW)
    assert client.requested == 4
    assert len(result.runs) == 12 and result.complete


async def test_empty_listing() -> None:
    client = FakeClient([])
    result = await runs_since(client, RunFilter(state="failed"), NOW - HOUR)
    assert (result.runs, result.requests, result.complete) == ([], 1, True)


async def test_filter_and_page_size_reach_the_client() -> None:
    client = FakeClient([hours_ago(0)])
    run_filter = RunFilter(state="finished", site_id=1001)
    await runs_since(client, run_filter, NOW - HOUR)
    await runs_since(client, run_filter, NOW - HOUR, page_size=20)
    assert client.calls == [(run_filter, SCAN_PAGE_SIZE), (run_filter, 20)]


async def test_a_listing_that_shrinks_under_a_tail_read_is_said_to_be_incomplete() -> None:
    class Shrinking(FakeClient):
        async def list_runs(self, run_filter: RunFilter | None = None, *, offset: int = 0,
                            limit: int = 10) -> RunPage:
            self.requested += 1
            return RunPage(runs=(), info=PageInfo(offset=offset, limit=limit, total=0))

    client = Shrinking(paged(hours_ago(*range(29, -1, -1)), 10))  # oldest first, 30 runs
    result = await runs_since(client, RunFilter(), NOW - 4.5 * HOUR, page_size=10)
    assert not result.complete  # pruned meanwhile: what moved where is not known
