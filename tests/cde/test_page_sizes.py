"""Page sizes the API does not document: a cap below the asked `limit` (told or not), and a
400 to a `limit` it finds too large. Every run of the listing is read, and what was learnt
is kept for the next listing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.cde.errors import CdeBadRequest
from bot.cde.models import RunFilter
from bot.cde.scan import runs_since
from bot.demo.runs import make_run
from tests.helpers.mockable import mockable

BASE = "https://cde.test"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Listing:
    """A `GET /runs` over `count` failed runs, newest first, capping pages at `cap`.

    `tells`: which metadata it gives ("total", "limit", both or neither); `max_limit`: a
    larger `limit` is refused with a 400 naming the field, or (`field_error` False) with a
    bare "Bad request.".
    """

    def __init__(self, count: int, *, cap: int | None = None, tells: tuple[str, ...] = ("total",),
                 max_limit: int | None = None, field_error: bool = True,
                 message: str = "This value should be less than or equal to 50.",
                 oldest_first: bool = False) -> None:
        self.runs = [make_run(state="failed", run_id=f"run-{i:05d}",
                              started_at=NOW - timedelta(minutes=i), created_at=NOW - timedelta(minutes=i))
                     for i in range(count)]
        if oldest_first:
            self.runs.reverse()
        self.cap, self.tells, self.max_limit = cap, tells, max_limit
        self.field_error, self.message = field_error, message
        self.limits: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["from"])
        limit = int(request.url.params["limit"])
        self.limits.append(limit)
        if self.max_limit is not None and limit > self.max_limit:
            errors = {"limit": self.message} if self.field_error else {}
            return httpx.Response(400, json={"message": "Bad request.", "errors": errors})
        size = min(limit, self.cap or limit)
        data = self.runs[offset: offset + size]
        metadata: dict[str, Any] = {"from": offset, "count": len(data), "next": None}
        if "total" in self.tells:
            metadata["total"] = len(self.runs)
        if "limit" in self.tells:
            metadata["limit"] = size
        return httpx.Response(200, json={"data": data, "metadata": metadata})


@pytest.fixture
async def cde():
    async with CdeClient(BASE, SecretStr("t0ken-value-123"),
                         transport=mockable(), retry=NO_WAIT_RETRY) as client:
        yield client


async def read_all(cde: CdeClient) -> list[str]:
    return [run.id async for page in cde.iter_pages(RunFilter(state="failed")) for run in page.runs]


@pytest.mark.parametrize("tells", [("total",), ("limit",), ("total", "limit"), ()])
async def test_a_page_cap_below_the_limit_loses_nothing(cde: CdeClient, httpx_mock: HTTPXMock,
                                                        tells: tuple[str, ...]) -> None:
    listing = Listing(120, cap=50, tells=tells)
    httpx_mock.add_callback(listing, is_reusable=True)
    assert await read_all(cde) == [f"run-{i:05d}" for i in range(120)]
    assert cde.page_sizing.cap == 50
    # Learnt: the next listing asks for what the API gives, and needs no extra request.
    listing.limits.clear()
    assert len(await read_all(cde)) == 120
    assert listing.limits == [50, 50, 50]


async def test_without_metadata_a_short_page_is_checked_once_then_trusted(
        cde: CdeClient, httpx_mock: HTTPXMock) -> None:
    listing = Listing(30, tells=())
    httpx_mock.add_callback(listing, is_reusable=True)
    assert len(await read_all(cde)) == 30
    assert listing.limits == [100, 100]  # the second (empty) page tells the first was the last
    listing.runs = listing.runs[:100]
    listing.limits.clear()
    big = Listing(150, tells=())
    listing.runs = big.runs
    assert len(await read_all(cde)) == 150
    assert listing.limits == [100, 100]  # a full page of 100: shorter pages are ends from now on
    listing.limits.clear()
    listing.runs = listing.runs[:30]
    assert len(await read_all(cde)) == 30 and listing.limits == [100]


@pytest.mark.parametrize(("message", "learnt"), [
    ("This value should be less than or equal to 50.", 50),
    ("limit too large", 50),
])
async def test_a_400_to_a_large_limit_is_retried_smaller(cde: CdeClient, httpx_mock: HTTPXMock,
                                                         message: str, learnt: int) -> None:
    listing = Listing(120, max_limit=50, message=message)
    httpx_mock.add_callback(listing, is_reusable=True)
    assert len(await read_all(cde)) == 120
    assert cde.page_sizing.cap == learnt
    assert listing.limits[0] == 100 and set(listing.limits[1:]) == {learnt}


async def test_a_400_without_field_errors_is_retried_smaller_too(cde: CdeClient,
                                                                 httpx_mock: HTTPXMock) -> None:
    listing = Listing(70, max_limit=30, field_error=False)
    httpx_mock.add_callback(listing, is_reusable=True)
    assert len(await read_all(cde)) == 70
    assert listing.limits[:3] == [100, 50, 25]


async def test_a_400_about_another_field_is_not_retried(cde: CdeClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json={"message": "Bad request.",
                                                   "errors": {"site-id": "not a site"}})
    with pytest.raises(CdeBadRequest):
        await cde.list_runs(RunFilter(site_id=1), limit=100)
    assert len(httpx_mock.get_requests()) == 1


async def test_a_400_even_for_small_pages_ends_with_the_error(cde: CdeClient, httpx_mock: HTTPXMock) -> None:
    listing = Listing(5, max_limit=0)
    httpx_mock.add_callback(listing, is_reusable=True)
    with pytest.raises(CdeBadRequest):
        await cde.list_runs(limit=100)
    assert listing.limits == [100, 50, 25, 12, 10]


async def test_a_failure_scan_under_a_cap_sees_every_failure_in_the_window(
        cde: CdeClient, httpx_mock: HTTPXMock) -> None:
    listing = Listing(120, cap=50, tells=())
    httpx_mock.add_callback(listing, is_reusable=True)
    scan = await runs_since(cde, RunFilter(state="failed"), NOW - timedelta(hours=24))
    assert scan.complete and len(scan.runs) == 120


@pytest.mark.parametrize("tells", [("total",), ("limit",), ()])
async def test_an_oldest_first_listing_under_a_cap_is_read_to_its_newest_run(
        cde: CdeClient, httpx_mock: HTTPXMock, tells: tuple[str, ...]) -> None:
    listing = Listing(1000, cap=50, tells=tells, oldest_first=True)
    httpx_mock.add_callback(listing, is_reusable=True)
    scan = await runs_since(cde, RunFilter(state="failed"), NOW - timedelta(minutes=119.5))
    assert scan.complete
    assert sorted(run.id for run in scan.runs) == [f"run-{i:05d}" for i in range(120)]
