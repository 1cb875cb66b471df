"""The poller's lease and fencing, on both backends: one holder at a time, a new token for
each new holder, and a deposed holder's writes refused whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.notices.leadership import Leadership
from bot.notices.models import NoticeFilter
from bot.store.base import ClaimedElsewhere, LeaseLost, StoreError
from bot.store.sql import SqlStore
from tests.helpers.incidents import make_incident

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


@contextlib.asynccontextmanager
async def open_stores(database_url: str, count: int) -> AsyncIterator[list[SqlStore]]:
    """`count` stores on one database, as replicas have: opened, and closed afterwards."""
    stores = [SqlStore(database_url) for _ in range(count)]
    for each in stores:
        await each.open()
    try:
        yield stores
    finally:
        for each in stores:
            await each.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = SqlStore(database_url)
    await opened.open()
    yield opened
    await opened.close()


async def test_one_holder_at_a_time_and_a_new_token_for_each(store: SqlStore) -> None:
    first = await store.take_lease("poller", "a", NOW, TTL)
    assert first is not None and first.token == 1
    assert await store.take_lease("poller", "b", NOW + timedelta(seconds=5), TTL) is None
    renewed = await store.take_lease("poller", "a", NOW + timedelta(seconds=5), TTL)
    assert renewed is not None and renewed.token == 1 and renewed.expires_at == NOW + timedelta(seconds=15)
    taken = await store.take_lease("poller", "b", NOW + timedelta(seconds=16), TTL)
    assert taken is not None and taken.token == 2 and taken.holder == "b"
    # The old holder cannot renew what it lost: it must wait for expiry like anyone.
    assert await store.take_lease("poller", "a", NOW + timedelta(seconds=17), TTL) is None


async def test_a_released_lease_is_taken_at_once(store: SqlStore) -> None:
    lease = await store.take_lease("poller", "a", NOW, TTL)
    assert lease is not None
    await store.release_lease(lease)
    taken = await store.take_lease("poller", "b", datetime.now(UTC), TTL)
    assert taken is not None and taken.token == 2


async def test_replicas_racing_for_the_lease_get_one_holder(database_url: str) -> None:
    async with open_stores(database_url, 5) as stores:
        for round_ in range(3):
            at = NOW + round_ * 2 * TTL
            got = await asyncio.gather(*(s.take_lease("poller", f"r{i}", at, TTL)
                                         for i, s in enumerate(stores)))
            held = [lease for lease in got if lease is not None]
            assert len(held) == 1, got
            assert held[0].token == round_ + 1


async def test_writes_fenced_by_a_lost_lease_are_refused_whole(store: SqlStore) -> None:
    old = await store.take_lease("poller", "a", NOW, TTL)
    assert old is not None
    with store.fenced(old):
        await store.set_state("k", "kept")  # while it holds
    assert await store.take_lease("poller", "b", NOW + 2 * TTL, TTL) is not None
    with store.fenced(old), pytest.raises(LeaseLost, match="held by b"):
        await store.set_state("k", "lost")
    with store.fenced(old), pytest.raises(LeaseLost):
        await store.add_subscription("C1", NoticeFilter(site_id=1), "U1", NOW)
    assert await store.get_state("k") == "kept"
    assert await store.subscriptions() == []
    # Outside the fenced context (the listeners' writes), nothing is checked.
    await store.set_state("k", "listener")
    assert await store.get_state("k") == "listener"


async def test_the_fence_follows_tasks_started_inside_it(store: SqlStore) -> None:
    old = await store.take_lease("poller", "a", NOW, TTL)
    assert old is not None
    assert await store.take_lease("poller", "b", NOW + 2 * TTL, TTL) is not None
    with store.fenced(old):
        task = asyncio.create_task(store.set_state("k", "from a task"))
    with pytest.raises(LeaseLost):
        await task
    assert await store.get_state("k") is None


async def test_a_leader_deposed_mid_poll_stops_at_its_next_write(store: SqlStore) -> None:
    clock = [NOW]
    leader = Leadership(store, ttl=TTL, holder="a", clock=lambda: clock[0])
    other = Leadership(store, ttl=TTL, holder="b", clock=lambda: clock[0])
    written: list[str] = []

    async def poll() -> str:
        await store.set_state("step", "1")
        written.append("1")
        clock[0] += 2 * TTL  # paused past its lease...
        assert await other.renew()  # ...and taken over
        await store.set_state("step", "2")
        written.append("2")
        return "done"

    assert await leader.poll(poll) is None
    assert leader.lost_mid_poll and not leader.leads and written == ["1"]
    assert await store.get_state("step") == "1"
    assert await other.poll(lambda: store.set_state("step", "b")) is None  # returns nothing...
    assert await store.get_state("step") == "b"  # ...but wrote, holding the lease
    assert await leader.poll(poll) is None and not leader.lost_mid_poll  # standby now


async def test_racing_saves_of_one_notice_leave_one_and_no_raw_error(database_url: str) -> None:
    """Ten replicas record the same new incident at once: one wins, the others are told
    it was claimed elsewhere (never a raw IntegrityError), and claiming the same runs in
    opposite orders does not deadlock.
    """
    async with open_stores(database_url, 10) as stores:
        for race in range(3):
            runs = [f"run-{race}-{i}" for i in range(20)]

            async def save(index: int, store: SqlStore, runs: list[str] = runs,
                           race: int = race) -> str:
                order = runs if index % 2 else list(reversed(runs))
                incident = make_incident(channel_id="C1", connector_id=f"conn-{race}")
                try:
                    await store.save_incident(incident, announce=[("C1", r) for r in order], at=NOW)
                except ClaimedElsewhere:
                    return "claimed elsewhere"
                return "saved"

            results = await asyncio.gather(*(save(i, s) for i, s in enumerate(stores)))
            assert sorted(results) == ["claimed elsewhere"] * 9 + ["saved"], results
            assert len(await stores[0].announced(runs)) == 20
        assert len(await stores[0].open_incidents("C1")) == 3


async def test_a_deposed_leader_is_stopped_before_a_post_straight_to_slack(store: SqlStore) -> None:
    old = await store.take_lease("poller", "a", NOW, TTL)
    assert old is not None
    with store.fenced(old):
        await store.confirm_lease()  # still held: nothing to say
    assert await store.take_lease("poller", "b", NOW + 2 * TTL, TTL) is not None
    with store.fenced(old), pytest.raises(LeaseLost):
        await store.confirm_lease()
    await store.confirm_lease()  # unfenced: nothing checked


async def test_a_refused_write_that_is_no_claim_is_a_store_error(store: SqlStore) -> None:
    broken = make_incident(channel_id=None)  # NOT NULL: a bug, not another poller
    with pytest.raises(StoreError) as raised:
        await store.save_incident(broken)
    assert not isinstance(raised.value, ClaimedElsewhere)


async def test_the_lease_keeper_outlives_a_renewal_that_fails(
        store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    leadership = Leadership(store, ttl=timedelta(seconds=1.5), holder="a")
    calls = {"n": 0}
    real = store.take_lease

    async def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in one renewal")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    store.take_lease = flaky  # type: ignore[method-assign]
    stop = asyncio.Event()
    led = asyncio.Event()
    keeper = asyncio.create_task(leadership.keep(stop, on_lead=led.set, on_change=lambda _: None))
    await asyncio.wait_for(led.wait(), 10)
    stop.set()
    await keeper
    assert calls["n"] >= 2 and leadership.leads
    assert any("renewing the poller lease failed" in r.getMessage() for r in caplog.records)
