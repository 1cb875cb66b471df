"""The audit trail in the store: each change and its entry in one transaction, read back
newest first, and a database from before the audit trail migrated with its data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.notices.models import AuditEntry, Mute, NoticeFilter
from bot.store import schema
from bot.store.schema import schema_version
from bot.store.sql import SqlStore
from tests.store.test_sql_store import make_incident, stored_version, url_of, version_1_database

NOW = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def entry(channel: str = "C1", action: str = "subscribe", target: str = "subscription 1",
          at: datetime = NOW, **details: object) -> AuditEntry:
    return AuditEntry(at, "U1", channel, action, target, dict(details))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = SqlStore(url_of(tmp_path / "bot.db"))
    await opened.open()
    yield opened
    await opened.close()


async def test_entries_are_read_back_newest_first_by_channel_and_bounded(store: SqlStore) -> None:
    for minute in range(5):
        await store.record_audit(entry("C1", target=f"subscription {minute}",
                                       at=NOW + timedelta(minutes=minute), filter={"site_id": 1001}))
    await store.record_audit(entry("C2", action="mute", target="connector x on site 1"))
    latest = await store.audit_log(3, "C1")
    assert [e.target for e in latest] == ["subscription 4", "subscription 3", "subscription 2"]
    assert latest[0].at == NOW + timedelta(minutes=4) and latest[0].at.tzinfo is not None
    assert latest[0].details == {"filter": {"site_id": 1001}} and latest[0].id > 0
    every = await store.audit_log(100)
    assert len(every) == 6 and every[0].channel_id == "C2"


async def test_a_subscription_and_its_entry_are_one_transaction(store: SqlStore) -> None:
    made = await store.add_subscription("C1", NoticeFilter(site_id=1001), "U1", NOW,
                                        audit=lambda s: entry(target=f"subscription {s.id}"))
    assert made is not None
    # The same filter again is no change, so no entry either.
    again = await store.add_subscription("C1", NoticeFilter(site_id=1001), "U1", NOW,
                                         audit=lambda s: entry(target="never"))
    assert again is None
    assert [e.target for e in await store.audit_log(10)] == [f"subscription {made.id}"]


async def test_an_entry_that_cannot_be_stored_undoes_its_change(store: SqlStore) -> None:
    bad = AuditEntry(datetime(2026, 1, 1), "U1", "C1", "subscribe", "x")  # naive: refused
    with pytest.raises(Exception, match="timezone-aware"):
        await store.add_subscription("C1", NoticeFilter(site_id=7), "U1", NOW, audit=lambda _: bad)
    assert await store.subscriptions() == []


async def test_removals_are_recorded_only_when_something_was_removed(store: SqlStore) -> None:
    await store.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    two = await store.add_subscription("C1", NoticeFilter(site_id=2), "U1", NOW)
    assert two is not None
    assert not await store.remove_subscription("C1", 999, audit=entry(action="unsubscribe", target="999"))
    assert await store.remove_subscription("C1", two.id, audit=entry(action="unsubscribe", target="two"))
    assert await store.remove_all_subscriptions(
        "C1", audit=lambda n: entry(action="unsubscribe", target="all", count=n)) == 1
    assert await store.remove_all_subscriptions(
        "C1", audit=lambda n: entry(action="unsubscribe", target="none", count=n)) == 0
    assert [(e.target, e.details) for e in await store.audit_log(10)] == [
        ("all", {"count": 1}), ("two", {})]


async def test_mutes_and_acknowledgements_are_recorded_with_them(store: SqlStore) -> None:
    await store.set_mute(Mute("C1", 7, "conn", NOW + timedelta(hours=4), "U1"), audit=entry(action="mute"))
    await store.delete_mute("C1", 7, "conn", audit=entry(action="unmute"))
    incident = await store.save_incident(make_incident())
    taken = await store.acknowledge_incident(incident.id, "U2", NOW, audit=entry(action="acknowledge"))
    assert taken is not None and taken.acknowledged_by == "U2"
    # Already taken: unchanged, and so no second entry.
    again = await store.acknowledge_incident(incident.id, "U3", NOW, audit=entry(action="acknowledge"))
    assert again is not None and again.acknowledged_by == "U2"
    assert await store.acknowledge_incident(9999, "U3", NOW, audit=entry(action="acknowledge")) is None
    assert [e.action for e in await store.audit_log(10)] == ["acknowledge", "unmute", "mute"]


def database_before_the_audit_trail(path: Path) -> int:
    """A database as the cde-bot before the audit trail wrote it (version 1 and every
    migration before the audit trail's), with a subscription; its version."""
    version_1_database(path)
    before = schema.MIGRATIONS.index(schema._add_audit_log)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as sync:
        for migration in schema.MIGRATIONS[:before]:
            migration(sync)
        sync.execute(text("UPDATE schema_version SET version = :v"), {"v": before + 1})
    engine.dispose()
    return before + 1


async def test_a_database_from_before_the_audit_trail_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    previous = database_before_the_audit_trail(path)
    assert stored_version(path) == previous < schema_version()
    store = SqlStore(url_of(path))
    await store.open()
    try:
        [subscription] = await store.subscriptions()
        assert subscription.notice_filter == NoticeFilter(site_id=1001)
        assert await store.audit_log(10) == []
        assert await store.remove_subscription("C1", subscription.id, audit=entry(action="unsubscribe"))
        [recorded] = await store.audit_log(10, "C1")
        assert recorded.action == "unsubscribe"
    finally:
        await store.close()
    assert stored_version(path) == schema_version()
