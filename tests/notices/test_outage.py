"""bot/notices/outage.py: when an outage of the CDE API begins, is told, and ends (pure),
and how it is kept in the store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.notices.outage import (
    NO_OUTAGE,
    Outage,
    OutageStore,
    Reachable,
    Transition,
    Unreachable,
    transition,
)
from bot.store.sql import SqlStore

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
AFTER = timedelta(minutes=10)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def down(state: Outage, minutes: float) -> Transition:
    return transition(state, at(minutes), "HTTP 503", alert_after=AFTER)


def up(state: Outage, minutes: float) -> Transition:
    return transition(state, at(minutes), None, alert_after=AFTER)


def test_an_answer_without_an_outage_changes_nothing() -> None:
    assert up(NO_OUTAGE, 0) == Transition(NO_OUTAGE)


def test_the_first_failure_starts_an_outage_and_tells_nobody() -> None:
    assert down(NO_OUTAGE, 0) == Transition(Outage(since=at(0)))


def test_failures_are_told_once_the_outage_has_lasted_long_enough() -> None:
    started = Outage(since=at(0))
    assert down(started, 9.9) == Transition(started)
    assert down(started, 10) == Transition(Outage(at(0), reported_at=at(10)),
                                           Unreachable(since=at(0), error="HTTP 503"))


def test_a_told_outage_is_not_told_again() -> None:
    told = Outage(at(0), reported_at=at(10))
    assert down(told, 11) == Transition(told)
    assert down(told, 600) == Transition(told)


def test_the_end_of_a_told_outage_is_told() -> None:
    told = Outage(at(0), reported_at=at(10))
    assert up(told, 14) == Transition(NO_OUTAGE, Reachable(since=at(0), told=True))


def test_a_short_outage_ends_without_telling_the_admins() -> None:
    # Logged ("reachable again"), not posted: nobody was told it began.
    assert up(Outage(since=at(0)), 5) == Transition(NO_OUTAGE, Reachable(since=at(0), told=False))


def test_untold_news_is_told_again_from_the_state_as_it_was() -> None:
    # The caller records the new state only once the news is told; told next poll, then.
    started = Outage(since=at(0))
    first = down(started, 10)
    assert first.news is not None
    again = down(started, 11)
    assert again.news == Unreachable(since=at(0), error="HTTP 503")
    assert again.state == Outage(at(0), reported_at=at(11))


async def test_the_store_keeps_the_outage(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'outage.db'}")
    await store.open()
    try:
        outages = OutageStore(store)
        assert await outages.load() == NO_OUTAGE
        told = Outage(at(0), reported_at=at(10))
        await outages.save(NO_OUTAGE, Outage(since=at(0)))
        assert await outages.load() == Outage(since=at(0))
        await outages.save(Outage(since=at(0)), told)
        assert await outages.load() == told
        await outages.save(told, NO_OUTAGE)
        assert await outages.load() == NO_OUTAGE
        assert await store.get_state("poll.outage_reported") is None
    finally:
        await store.close()
