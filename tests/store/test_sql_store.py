"""SqlStore against real SQLite files: every method, the schema version, and failure messages."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from bot.notices import posts
from bot.notices.models import Mute, NoticeFilter
from bot.slack.message import Message
from bot.store import schema, sql
from bot.store.base import SchemaTooNewError, StoreError
from bot.store.schema import schema_version
from bot.store.sql import SqlStore, store_from_url
from tests.helpers.incidents import make_incident

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.db"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqlStore]:
    """A store on a SQLite file at `db_path`, for what only SQLite has (a file, WAL)."""
    opened = SqlStore(url_of(db_path))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """A store on each backend (see `database_url`)."""
    opened = SqlStore(database_url)
    await opened.open()
    yield opened
    await opened.close()


def is_file(path: Path) -> bool:
    return path.is_file()


def stored_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]


# -- opening and the schema ---------------------------------------------------------------------


async def test_open_creates_directory_file_and_version(sqlite_store: SqlStore, db_path: Path) -> None:
    store = sqlite_store
    assert is_file(db_path)
    assert stored_version(db_path) == schema_version()
    assert await store.ping() is True


async def test_sqlite_runs_in_wal_mode(sqlite_store: SqlStore, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_keeps_data_and_version(db_path: Path) -> None:
    first = SqlStore(url_of(db_path))
    await first.open()
    sub = await first.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    await first.mark_announced([("C1", "r1")], NOW)
    saved = await first.save_incident(make_incident())
    await first.set_mute(Mute("C1", None, None, NOW + timedelta(hours=1), "U1"))
    await first.set_state("last_poll", "x")
    await first.close()

    second = SqlStore(url_of(db_path))
    await second.open()
    try:
        assert await second.subscriptions() == [sub]
        assert await second.announced(["r1"]) == {("C1", "r1")}
        assert await second.incident(saved.id) == saved
        assert len(await second.active_mutes(NOW)) == 1
        assert await second.get_state("last_poll") == "x"
    finally:
        await second.close()
    assert stored_version(db_path) == schema_version()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    first = SqlStore(url_of(db_path))
    await first.open()
    await first.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (schema_version() + 1,))

    newer = SqlStore(url_of(db_path))
    with pytest.raises(SchemaTooNewError, match="newer cde-bot") as caught:
        await newer.open()
    await newer.close()
    assert isinstance(caught.value, StoreError)
    assert str(db_path) in str(caught.value)


async def test_older_schema_is_migrated(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = SqlStore(url_of(db_path))
    await first.open()
    await first.close()

    def add_notes(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))

    before = schema_version()
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_notes])
    migrated = SqlStore(url_of(db_path))
    await migrated.open()
    await migrated.close()
    assert stored_version(db_path) == before + 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0


SCHEMA_V1 = Path(__file__).with_name("schema_v1.sql")


def version_1_database(path: Path) -> None:
    """A database as cde-bot wrote it at schema version 1, with a subscription in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1.read_text())
        conn.execute(
            "INSERT INTO subscriptions (channel_id, filter, filter_key, created_by, created_at)"
            " VALUES ('C1', '{\"site_id\": 1001}', '{\"site_id\":1001}', 'U1',"
            " '2026-01-02 03:04:05.000000')")
    conn.close()


SCHEMA_V1_POSTGRESQL = Path(__file__).with_name("schema_v1.postgresql.sql")
V1_SUBSCRIPTION = ("INSERT INTO subscriptions (channel_id, filter, filter_key, created_by, created_at)"
                   " VALUES ('C1', '{\"site_id\": 1001}', '{\"site_id\":1001}', 'U1',"
                   " '2026-01-02 03:04:05+00')")


async def version_1_postgresql(url: str) -> None:
    """A PostgreSQL database as cde-bot wrote it at schema version 1, with a subscription."""
    import asyncpg

    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        await conn.execute(SCHEMA_V1_POSTGRESQL.read_text())
        await conn.execute(V1_SUBSCRIPTION)
    finally:
        await conn.close()


async def test_a_version_1_database_is_migrated_with_its_data(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        version_1_database(tmp_path / "bot.db")
    else:
        await version_1_postgresql(database_url)
    store = SqlStore(database_url)
    await store.open()
    try:
        [subscription] = await store.subscriptions()
        assert subscription.notice_filter == NoticeFilter(site_id=1001)
        assert subscription.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert subscription.seen_until is None  # made before the bot recorded what it saw
        now = datetime(2026, 1, 3, tzinfo=UTC)
        await store.first_seen(["run-1"], now)
        later = await store.add_subscription("C2", NoticeFilter(), "U2", now + timedelta(seconds=1))
        assert later is not None and later.seen_until == now
        # Ids are 64-bit now, on both backends.
        big = await store.add_subscription("C3", NoticeFilter(site_id=2**40), "U3", now)
        assert big is not None and big.notice_filter.site_id == 2**40
        saved = await store.save_incident(make_incident(site_id=2**62, channel_id="C3"))
        assert (await store.incident(saved.id)) is not None
    finally:
        await store.close()
    if database_url.startswith("sqlite"):
        assert stored_version(tmp_path / "bot.db") == schema_version()


async def test_a_version_no_cde_bot_wrote_is_an_error(db_path: Path) -> None:
    first = SqlStore(url_of(db_path))
    await first.open()
    await first.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE schema_version SET version = 0")
    later = SqlStore(url_of(db_path))
    with pytest.raises(StoreError, match="version 0, which no cde-bot ever wrote"):
        await later.open()
    await later.close()
    assert stored_version(db_path) == 0


async def test_path_under_a_regular_file_gives_a_helpful_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    broken = SqlStore(url_of(blocker / "sub" / "bot.db"))
    with pytest.raises(StoreError) as caught:
        await broken.open()
    await broken.close()
    message = str(caught.value)
    assert str(blocker) in message
    assert "writable" in message and "DATABASE_URL" in message


async def test_path_that_is_a_directory_gives_a_helpful_error(tmp_path: Path) -> None:
    (tmp_path / "bot.db").mkdir()
    broken = SqlStore(url_of(tmp_path / "bot.db"))
    with pytest.raises(StoreError, match="DATABASE_URL") as caught:
        await broken.open()
    assert str(tmp_path / "bot.db") in str(caught.value)
    assert await broken.ping() is False
    await broken.close()


async def test_store_from_url_adds_the_async_driver(tmp_path: Path) -> None:
    plain = store_from_url(f"sqlite:///{tmp_path / 'plain.db'}")
    await plain.open()
    assert await plain.ping() is True
    await plain.close()
    assert is_file(tmp_path / "plain.db")


@pytest.mark.parametrize("url", ["not a url", "sqlite+pysqlite:///x.db", "nosuchdb://host/x"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreError, match="DATABASE_URL"):
        store_from_url(url)


# -- subscriptions ------------------------------------------------------------------------------


async def test_add_and_list_subscriptions(store: SqlStore) -> None:
    site = NoticeFilter(site_id=1, connector_id="c")
    first = await store.add_subscription("C1", site, "U1", NOW)
    everything = await store.add_subscription("C1", NoticeFilter(), "U2", NOW + timedelta(seconds=1))
    other = await store.add_subscription("C2", site, "U1", NOW + timedelta(seconds=2))

    assert first is not None and everything is not None and other is not None
    assert first.id != everything.id != other.id
    assert first.notice_filter == site and first.created_by == "U1" and first.created_at == NOW
    assert await store.subscriptions("C1") == [first, everything]
    assert await store.subscriptions("C2") == [other]
    assert await store.subscriptions() == [first, everything, other]
    assert await store.subscriptions("C3") == []


async def test_duplicate_filter_is_refused_per_channel(store: SqlStore) -> None:
    assert await store.add_subscription("C1", NoticeFilter(site_id=1, process_id="p"), "U1", NOW)
    again = NoticeFilter(process_id="p", site_id=1)
    assert await store.add_subscription("C1", again, "U2", NOW) is None
    assert await store.add_subscription("C2", again, "U2", NOW) is not None
    assert await store.add_subscription("C1", NoticeFilter(), "U1", NOW) is not None
    assert await store.add_subscription("C1", NoticeFilter(), "U1", NOW) is None
    assert len(await store.subscriptions("C1")) == 2


async def test_remove_subscription_is_scoped_to_the_channel(store: SqlStore) -> None:
    mine = await store.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    theirs = await store.add_subscription("C2", NoticeFilter(site_id=1), "U1", NOW)
    assert mine is not None and theirs is not None

    assert await store.remove_subscription("C1", theirs.id) is False
    assert await store.subscriptions("C2") == [theirs]
    assert await store.remove_subscription("C1", mine.id) is True
    assert await store.remove_subscription("C1", mine.id) is False
    assert await store.subscriptions("C1") == []


async def test_remove_all_subscriptions_is_scoped_to_the_channel(store: SqlStore) -> None:
    for site_id in (1, 2, 3):
        await store.add_subscription("C1", NoticeFilter(site_id=site_id), "U1", NOW)
    kept = await store.add_subscription("C2", NoticeFilter(site_id=1), "U1", NOW)

    assert await store.remove_all_subscriptions("C1") == 3
    assert await store.remove_all_subscriptions("C1") == 0
    assert await store.subscriptions() == [kept]


async def test_removed_ids_are_not_reused(store: SqlStore) -> None:
    first = await store.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    assert first is not None
    await store.remove_subscription("C1", first.id)
    second = await store.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    assert second is not None and second.id > first.id


# -- announced runs -----------------------------------------------------------------------------


async def test_announced_round_trip_and_prune(store: SqlStore) -> None:
    assert await store.announced([]) == set()
    await store.mark_announced([("C1", "r1"), ("C2", "r1"), ("C1", "r2")], NOW - timedelta(days=10))
    await store.mark_announced([("C1", "r1"), ("C1", "r3"), ("C1", "r3")], NOW)  # repeats are harmless
    await store.mark_announced([], NOW)

    assert await store.announced(["r1", "r3", "r9"]) == {("C1", "r1"), ("C2", "r1"), ("C1", "r3")}
    assert await store.announced(iter(["r2"])) == {("C1", "r2")}

    assert await store.prune_announced(NOW - timedelta(days=1)) == 3
    assert await store.announced(["r1", "r2", "r3"]) == {("C1", "r3")}
    assert await store.prune_announced(NOW - timedelta(days=1)) == 0


async def test_announced_handles_more_ids_than_one_query_takes(store: SqlStore) -> None:
    run_ids = [f"run-{n}" for n in range(sql.IN_CHUNK * 2 + 37)]
    await store.mark_announced([("C1", run_id) for run_id in run_ids[::2]], NOW)
    found = await store.announced(run_ids)
    assert found == {("C1", run_id) for run_id in run_ids[::2]}


# -- incidents ----------------------------------------------------------------------------------


async def test_incident_insert_and_update(store: SqlStore) -> None:
    first = await store.save_incident(make_incident())
    second = await store.save_incident(make_incident(site_id=None, connector_id=None))
    assert first.id > 0 and second.id > first.id
    assert await store.incident(first.id) == first
    assert await store.incident(second.id) == second
    assert await store.incident(9999) is None

    later = NOW + timedelta(minutes=5)
    updated = dataclasses.replace(
        first, failures=3, muted_failures=1, last_failed_at=later, acknowledged_by="U1",
        acknowledged_at=later, run={"id": "run-2"}, in_digest=True, message_ts="2.2",
    )
    assert await store.save_incident(updated) == updated
    assert await store.incident(first.id) == updated


async def test_updating_a_missing_incident_is_an_error(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="no incident"):
        await store.save_incident(make_incident(id=42))


async def test_open_incidents_and_incidents_of_message(store: SqlStore) -> None:
    a = await store.save_incident(make_incident("C1", "1.1"))
    b = await store.save_incident(make_incident("C1", "1.1", connector_id="other"))
    c = await store.save_incident(make_incident("C2", "1.1"))
    resolved = await store.save_incident(
        make_incident("C1", "2.2", resolved_at=NOW, resolved_by_run="run-ok")
    )

    assert await store.open_incidents("C1") == [a, b]
    assert await store.open_incidents() == [a, b, c]
    assert await store.open_incidents("C3") == []
    assert await store.incidents_of_message("C1", "1.1") == [a, b]
    assert await store.incidents_of_message("C2", "1.1") == [c]
    assert await store.incidents_of_message("C1", "2.2") == [resolved]
    assert (await store.incident(resolved.id)).is_open is False  # type: ignore[union-attr]

    await store.save_incident(dataclasses.replace(a, resolved_at=NOW))
    assert await store.open_incidents("C1") == [b]


# -- mutes --------------------------------------------------------------------------------------


async def test_mutes_with_and_without_site_and_connector(store: SqlStore) -> None:
    until = NOW + timedelta(hours=1)
    keys = [(None, None), (1, None), (None, "c"), (1, "c")]
    for site_id, connector_id in keys:
        await store.set_mute(Mute("C1", site_id, connector_id, until, "U1"))
    await store.set_mute(Mute("C2", None, None, until, "U1"))

    active = await store.active_mutes(NOW)
    assert {(m.channel_id, m.site_id, m.connector_id) for m in active} == {
        *(("C1", s, c) for s, c in keys), ("C2", None, None)
    }
    assert all(m.suppressed == 0 and m.until == until and m.muted_by == "U1" for m in active)


async def test_set_mute_replaces_and_active_mutes_drops_expired(store: SqlStore) -> None:
    await store.set_mute(Mute("C1", None, "c", NOW + timedelta(hours=1), "U1", suppressed=4))
    await store.set_mute(Mute("C1", None, "c", NOW + timedelta(hours=2), "U2"))
    await store.set_mute(Mute("C1", 5, None, NOW, "U1"))  # ends exactly now: no longer in force

    assert await store.active_mutes(NOW) == [Mute("C1", None, "c", NOW + timedelta(hours=2), "U2")]
    assert await store.active_mutes(NOW + timedelta(hours=2)) == []
    assert len(await store.active_mutes(NOW - timedelta(seconds=1))) == 2


async def test_count_suppressed_counts_only_the_matching_mute(store: SqlStore) -> None:
    until = NOW + timedelta(hours=1)
    await store.set_mute(Mute("C1", None, None, until, "U1"))
    await store.set_mute(Mute("C1", 1, "c", until, "U1"))

    await store.count_suppressed("C1", None, None)
    await store.count_suppressed("C1", None, None)
    await store.count_suppressed("C1", 1, "c")
    await store.count_suppressed("C1", 1, None)  # no such mute: nothing happens
    await store.count_suppressed("C9", None, None)

    counts = {(m.site_id, m.connector_id): m.suppressed for m in await store.active_mutes(NOW)}
    assert counts == {(None, None): 2, (1, "c"): 1}


# -- poller state -------------------------------------------------------------------------------


async def test_state_set_get_delete(store: SqlStore) -> None:
    assert await store.get_state("last_poll") is None
    await store.set_state("last_poll", "2025-03-01T12:00:00+00:00")
    await store.set_state("other", "1")
    await store.set_state("last_poll", "later")
    assert await store.get_state("last_poll") == "later"
    await store.set_state("last_poll", None)
    await store.set_state("never_set", None)
    assert await store.get_state("last_poll") is None
    assert await store.get_state("other") == "1"


# -- datetimes ----------------------------------------------------------------------------------


async def test_datetimes_come_back_aware_in_utc(store: SqlStore) -> None:
    berlin = timezone(timedelta(hours=2))
    local = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=berlin)
    sub = await store.add_subscription("C1", NoticeFilter(), "U1", local)
    incident = await store.save_incident(make_incident(first_failed_at=local, acknowledged_at=local))
    await store.set_mute(Mute("C1", None, None, local + timedelta(hours=1), "U1"))
    await store.mark_announced([("C1", "r1")], local)

    [listed] = await store.subscriptions()
    loaded = await store.incident(incident.id)
    [mute] = await store.active_mutes(NOW)
    assert sub is not None and sub.created_at.tzinfo is UTC
    assert listed.created_at == local and listed.created_at.tzinfo is UTC
    assert loaded is not None
    for value in (loaded.first_failed_at, loaded.last_failed_at, loaded.acknowledged_at):
        assert value is not None and value.tzinfo is UTC
    assert loaded.first_failed_at == local and loaded.first_failed_at.hour == 12
    assert mute.until == local + timedelta(hours=1) and mute.until.tzinfo is UTC
    # Compared in UTC, not by local wall time: 14:00+02:00 is before 13:00 UTC.
    assert await store.prune_announced(datetime(2025, 3, 1, 13, 0, tzinfo=UTC)) == 1


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        await store.prune_announced(datetime(2025, 3, 1))


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrent_tasks_share_one_store(store: SqlStore) -> None:
    async def worker(n: int) -> None:
        await store.add_subscription(f"C{n % 3}", NoticeFilter(site_id=n % 4), "U1", NOW)
        await store.mark_announced([(f"C{n % 3}", f"r{n % 5}")], NOW)
        await store.set_state("counter", str(n))
        await store.set_mute(Mute("C1", None, None, NOW + timedelta(hours=1), "U1"))
        await store.count_suppressed("C1", None, None)
        await store.save_incident(make_incident(message_ts=f"{n}.0", connector_id=f"conn{n}"))
        await store.subscriptions()
        await store.announced([f"r{m}" for m in range(5)])

    await asyncio.gather(*(worker(n) for n in range(24)))
    assert len(await store.subscriptions()) == 12  # 3 channels x 4 filters, duplicates refused
    assert len(await store.open_incidents()) == 24
    assert await store.get_state("counter") is not None


async def test_two_stores_on_one_file_do_not_lock_each_other_out(db_path: Path) -> None:
    stores = [SqlStore(url_of(db_path)) for _ in range(2)]
    for each in stores:
        await each.open()

    async def worker(each: SqlStore, n: int) -> None:
        await each.mark_announced([("C1", f"r{n}")], NOW)
        await each.set_state(f"k{n % 3}", str(n))
        await each.announced([f"r{n}"])

    try:
        await asyncio.gather(*(worker(stores[n % 2], n) for n in range(20)))
        assert len(await stores[0].announced([f"r{n}" for n in range(20)])) == 20
    finally:
        for each in stores:
            await each.close()


async def test_memory_database_serialises_concurrent_tasks() -> None:
    memory = store_from_url("sqlite+aiosqlite://")
    await memory.open()
    try:
        await asyncio.gather(*(memory.set_state(f"k{n}", str(n)) for n in range(10)),
                             *(memory.get_state("k1") for _ in range(10)))
        assert await memory.get_state("k9") == "9"
    finally:
        await memory.close()


# -- the outbox ----------------------------------------------------------------------------------


async def test_a_database_from_before_the_outbox_is_migrated(db_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    index = schema.MIGRATIONS.index(schema._add_outbox)
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:index + 1])
    first = SqlStore(url_of(db_path))
    await first.open()
    await first.close()
    with sqlite3.connect(db_path) as conn:  # as the cde-bot before the outbox left it
        conn.execute("DROP TABLE outbox")
        conn.execute("UPDATE schema_version SET version = ?", (index + 1,))
    migrated = SqlStore(url_of(db_path))
    await migrated.open()
    entry = posts.entry(posts.NOTICE, "C1", Message(text="hello"), "run-1")
    await migrated.enqueue([entry], NOW)
    [pending] = await migrated.pending_posts()
    await migrated.close()
    assert (pending.key, pending.message.text, pending.state) == (entry.key, "hello", posts.PENDING)
    assert stored_version(db_path) == index + 2


async def test_a_delivered_entry_names_its_ts_in_the_incidents_of_its_message(store: SqlStore) -> None:
    entry = posts.entry(posts.NOTICE, "C1", Message(text="hello"), "run-1", draw=True)
    [incident] = await store.save_incidents([make_incident(message_ts=entry.ref)], outbox=[entry], at=NOW)
    [pending] = await store.pending_posts()
    await store.start_post(pending.id, NOW)
    assert (await store.pending_posts())[0].fate_unknown
    await store.finish_post(pending.id, "1700.1", NOW)
    assert (await store.incident(incident.id)).message_ts == "1700.1"  # type: ignore[union-attr]
    assert await store.pending_posts() == []
    delivered = await store.post_of_ref(entry.ref)
    assert delivered is not None and (delivered.state, delivered.ts) == (posts.DELIVERED, "1700.1")
    await store.prune(NOW + timedelta(days=1))
    assert await store.post_of_ref(entry.ref) is None


async def test_a_failed_entry_resolves_the_incidents_of_its_message(store: SqlStore) -> None:
    entry = posts.entry(posts.NOTICE, "C1", Message(text="hello"), "run-1")
    await store.save_incidents([make_incident(message_ts=entry.ref)], outbox=[entry], at=NOW)
    [pending] = await store.pending_posts()
    await store.fail_post(pending.id, "channel_not_found", NOW)
    assert await store.open_incidents() == []
    assert await store.pending_posts() == []
