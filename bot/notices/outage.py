"""CDE API outages: when one begins, when the admins are told, when it ends.

`transition` is pure: the outage as recorded, and whether this poll's scan of failed runs
was answered, give the outage as it should be recorded next and the news to tell (if
any). The new state is recorded only once the news is told, so news that could not be
posted is tried again next poll. `OutageStore` keeps the state in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.store.base import Store

STATE_OUTAGE_SINCE = "poll.outage_since"
STATE_OUTAGE_REPORTED = "poll.outage_reported"


@dataclass(frozen=True)
class Outage:
    """Since when the API has not answered (None: it answers), and when the admins were
    told (None: not yet).
    """

    since: datetime | None = None
    reported_at: datetime | None = None


NO_OUTAGE = Outage()


@dataclass(frozen=True)
class Unreachable:
    """The API has not answered for `alert_after`: tell the admins, once."""

    since: datetime
    error: str


@dataclass(frozen=True)
class Reachable:
    """The API answers again after an outage; `told` when the admins were told it began
    (then they are told it ended).
    """

    since: datetime
    told: bool


News = Unreachable | Reachable


@dataclass(frozen=True)
class Transition:
    state: Outage  # to record once `news` is told
    news: News | None = None


def transition(state: Outage, now: datetime, error: str | None, *,
               alert_after: timedelta) -> Transition:
    """The outage after a poll at `now` whose scan failed with `error` (None: answered)."""
    if error is None:
        if state.since is None:
            return Transition(state)
        return Transition(NO_OUTAGE, Reachable(state.since, told=state.reported_at is not None))
    if state.since is None:
        return Transition(Outage(since=now))
    if state.reported_at is not None or now - state.since < alert_after:
        return Transition(state)
    return Transition(Outage(state.since, reported_at=now), Unreachable(state.since, error))


class OutageStore:
    """The outage, kept in the store's key-value state."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> Outage:
        """The outage as recorded."""
        since = await self.store.get_state(STATE_OUTAGE_SINCE)
        if since is None:
            return NO_OUTAGE
        reported = await self.store.get_state(STATE_OUTAGE_REPORTED)
        return Outage(datetime.fromisoformat(since),
                      datetime.fromisoformat(reported) if reported else None)

    async def save(self, old: Outage, new: Outage) -> None:
        """Record `new` in place of `old`, writing only what changed."""
        if new.since != old.since:
            await self.store.set_state(STATE_OUTAGE_SINCE, _text(new.since))
        if new.reported_at != old.reported_at:
            await self.store.set_state(STATE_OUTAGE_REPORTED, _text(new.reported_at))


def _text(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
