"""Scans that cannot cover the look-back window: told to the admins once, and when they
cover it again.

A sweep of the window stops at its page budget (`CDE_SCAN_MAX_PAGES`, see
`bot.cde.window`) and starts over, so runs beyond are not seen until a sweep fits again;
so does a listing read in full each poll. That must never be silent: the poll logs it
and counts it (`/metrics`, `/readyz`), and `transition` decides when the admin channel
hears of it. It is pure: the shortfall as recorded and this poll's scans give the state
to record and the news to tell. The state is recorded only once the news is told, so
news that could not be posted is told next poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.store.base import Store

STATE_SHORT_SINCE = "poll.coverage_short_since"


@dataclass(frozen=True)
class CutShort:
    """Scans have begun to stop short of the window: tell the admins, once."""

    scans: tuple[str, ...]  # what each scan cut short was for
    pages: int  # the budget that cut them


@dataclass(frozen=True)
class CoveredAgain:
    """Every scan reaches the end of the window again, after a shortfall since `since`."""

    since: datetime


News = CutShort | CoveredAgain


@dataclass(frozen=True)
class Transition:
    short_since: datetime | None  # to record once `news` is told
    news: News | None = None


def transition(short_since: datetime | None, now: datetime, cut_short: tuple[str, ...], *,
               pages: int) -> Transition:
    """The shortfall after a poll at `now` whose scans `cut_short` stopped at `pages`."""
    if cut_short:
        if short_since is not None:
            return Transition(short_since)
        return Transition(now, CutShort(cut_short, pages))
    if short_since is None:
        return Transition(None)
    return Transition(None, CoveredAgain(short_since))


class CoverageStore:
    """Since when scans have been cut short (as told to the admins), in the store's state."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> datetime | None:
        since = await self.store.get_state(STATE_SHORT_SINCE)
        return datetime.fromisoformat(since) if since else None

    async def save(self, old: datetime | None, new: datetime | None) -> None:
        if new != old:
            await self.store.set_state(STATE_SHORT_SINCE, new.isoformat() if new else None)
