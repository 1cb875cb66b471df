"""Reading every run created since a moment, paging no further than needed.

The API's sort order is not documented. The reference page lists newest first, so the scan
*checks* that order as it reads: while every run so far has come newest first, it stops at
the first page that reaches past `since`. If the order is ever broken, it reads to the end
(bounded by `max_pages`), so a different order costs requests, never missed runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.cde.client import CdeClient
from bot.cde.models import Run, RunFilter

SCAN_PAGE_SIZE = 100
SCAN_MAX_PAGES = 50


@dataclass
class OrderCheck:
    """Follows `created_at` across pages: is the listing still newest first?"""

    ordered: bool = True
    _last: datetime | None = field(default=None, repr=False)

    def feed(self, runs: tuple[Run, ...]) -> None:
        for run in runs:
            created = run.created_at
            if created is None:
                continue
            if self._last is not None and created > self._last:
                self.ordered = False
            self._last = created

    def past(self, since: datetime) -> bool:
        """True once the listing is known to hold nothing newer than `since` beyond here."""
        return self.ordered and self._last is not None and self._last < since


@dataclass(frozen=True)
class ScanResult:
    """The runs a scan read. When `complete` is False, `max_pages` cut it short: runs
    further on were not read, so `runs` is not the whole window and must not be taken
    for it.
    """

    runs: list[Run]
    requests: int
    complete: bool


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
    order = OrderCheck()
    found: list[Run] = []
    requests = 0
    seen = 0
    async for page in client.iter_pages(run_filter, page_size=page_size):
        requests += 1
        seen += len(page.runs)
        order.feed(page.runs)
        found.extend(run for run in page.runs if run.created_at is None or run.created_at >= since)
        if order.past(since) or page.is_last(seen, page_size):
            return ScanResult(found, requests, complete=True)
        if requests >= max_pages:
            # The caller says so in the log: it knows what the scan was for.
            return ScanResult(found, requests, complete=False)
    return ScanResult(found, requests, complete=True)
