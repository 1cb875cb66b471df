"""Paging that does not repeat itself: a list anchored at the newest run of its first page.

Paging stays stateless: a page button carries the list's anchor (its newest run's id and
how many runs the list held, see `query.Anchor`). New runs arrive at the top of a list that
comes newest first, so by the next click the list has `newer = total now - total then` more
runs ahead of the anchor; the page at anchored offset `N` is the API's page at `N + newer`.

Nothing here assumes an order the API does not document. An anchor is set only on a first
page seen to come newest first (`scan.OrderCheck`, as the notices' scan checks it), and every
anchored page checks that the anchor run is exactly where the arithmetic puts it. When it
is not (runs removed, a run that changed state, another order), the answer falls back to
the plain page at `N`, as unanchored paging would give, and says the list moved.

Requests per click: one for an unanchored page; for an anchored one, one when nothing
arrived on the first page, two when runs arrived or on a later page, three at most (a later
page after arrivals: the page as it is, the anchor's place, the shifted page).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.cde.client import CdeClient
from bot.cde.models import RunPage
from bot.cde.scan import OrderCheck
from bot.query import Anchor, ListRuns, parse


@dataclass(frozen=True)
class Drift:
    """How the list moved since its first page: `newer` runs arrived ahead of the anchor
    (skipped, and offered), or `moved`: the anchor was lost, so pages may overlap.
    """

    newer: int = 0
    moved: bool = False


STILL = Drift()


@dataclass(frozen=True)
class ListedPage:
    """A page to show: its runs (totals as of the anchor), the query its buttons continue,
    and how the list moved since its first page.
    """

    page: RunPage
    query: ListRuns
    drift: Drift = STILL


async def list_page(cde: CdeClient, query: ListRuns) -> ListedPage:
    """The page `query` asks for, anchored when that can be done reliably."""
    first = await cde.list_runs(query.run_filter, offset=query.offset, limit=query.limit)
    if query.anchor is None:
        return ListedPage(first, query.anchored(anchor_of(first, query)))
    return await _anchored(cde, query, query.anchor, first)


def anchor_of(page: RunPage, query: ListRuns) -> Anchor | None:
    """The anchor of a first page: its first run, when the page is seen to come newest
    first and the API says how many runs the list holds; otherwise none (plain paging).
    """
    if query.offset != 0 or not page.runs or page.info.total is None:
        return None
    newest = page.runs[0]
    if newest.created_at is None or not _in_order(page):
        return None
    anchor = Anchor(newest.id, page.info.total)
    # Ids come from the API: one that is not a UUID could not ride in a button.
    return anchor if parse(query.anchored(anchor).to_text()) == query.anchored(anchor) else None


async def _anchored(cde: CdeClient, query: ListRuns, anchor: Anchor, first: RunPage) -> ListedPage:
    if first.info.total is None or first.info.total < anchor.total:
        return _moved(first, query)
    newer = first.info.total - anchor.total
    page = first
    if newer:
        page = await cde.list_runs(query.run_filter, offset=query.offset + newer, limit=query.limit)
    # The anchor must open the list exactly `newer` runs down; on the first page it opens
    # the page itself, later pages look it up with one small request.
    head = await cde.list_runs(query.run_filter, offset=newer, limit=1) if query.offset else page
    in_order = _in_order(head, page) if query.offset else _in_order(page)
    if not head.runs or head.runs[0].id != anchor.run_id or not in_order:
        return _moved(first, query)
    shown = page.model_copy(update={"info": page.info.model_copy(
        update={"offset": query.offset, "total": anchor.total})})
    return ListedPage(shown, query, Drift(newer=newer))


def _moved(first: RunPage, query: ListRuns) -> ListedPage:
    """The anchor is lost: the plain page, as unanchored paging gives it. A first page is
    simply a fresh list (anchored anew); a later one says it may overlap its neighbours.
    """
    plain = query.anchored(None)
    if query.offset == 0:
        return ListedPage(first, plain.anchored(anchor_of(first, plain)))
    return ListedPage(first, plain, Drift(moved=True))


def _in_order(*pages: RunPage) -> bool:
    order = OrderCheck()
    for page in pages:
        order.feed(page.runs)
    return order.ordered
