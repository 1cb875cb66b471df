"""Two pollers on one database. Sharing the poller's lease (as replicas do), every failure
is told once per channel, whoever holds it and however often it changes hands. Even
polling side by side with no lease at all, the claims in the store keep every record
exact: each failure recorded once per channel, each repeat counted once, each recovery
recorded once. Real stand-ins over loopback, both backends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.demo.runs import make_run
from bot.notices.leadership import Leadership
from bot.notices.oncall import OnCall
from bot.notices.poller import Poller, PollerConfig
from bot.slack.poster import SlackPoster
from bot.store.sql import SqlStore
from tests.helpers.world import World

OPS, OTHER = "C0001", "C0002"


class Twin:
    """A second poller on the world's database, CDE API and Slack, as another replica."""

    def __init__(self, world: World, database_url: str) -> None:
        self.store = SqlStore(database_url)
        self.api = CdeClient(world.cde.url, SecretStr("cde-test-token"), retry=NO_WAIT_RETRY)
        poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=world.slack.base_url),
                             min_interval=0)
        self.poller = Poller(self.api, self.store, OnCall(self.store, poster), PollerConfig(),
                             clock=world.clock)

    async def start(self) -> Twin:
        await self.store.open()
        return self

    async def stop(self) -> None:
        await self.api.aclose()
        await self.store.close()


@pytest.fixture
async def twin(world: World, database_url: str) -> AsyncIterator[Twin]:
    second = await Twin(world, database_url).start()
    yield second
    await second.stop()


async def both_poll(world: World, twin: Twin, minutes: float = 1) -> None:
    world.clock.advance(minutes=minutes)
    await asyncio.gather(world.poller.poll_once(), twin.poller.poll_once())


async def test_each_failure_is_recorded_once_per_channel_when_pollers_overlap_without_a_lease(
        world: World, twin: Twin) -> None:
    await world.subscribe(OPS, site_id=1001)
    await world.subscribe(OTHER)
    runs = []
    for _ in range(6):
        runs += [world.fail(0.5, connector_id=str(uuid.uuid4())) for _ in range(2)]
        await both_poll(world, twin)
    await both_poll(world, twin)
    incidents = await world.store.open_incidents()
    for channel in (OPS, OTHER):
        told = sorted(i.run["id"] for i in incidents if i.channel_id == channel)
        assert told == sorted(r["id"] for r in runs), channel
    announced = await world.store.announced(r["id"] for r in runs)
    assert len(announced) == 2 * len(runs)


async def test_replicas_sharing_the_lease_tell_each_failure_once_as_it_changes_hands(
        world: World, twin: Twin) -> None:
    ttl = timedelta(seconds=30)
    replicas = [Leadership(world.store, ttl=ttl, holder="a", clock=world.clock),
                Leadership(twin.store, ttl=ttl, holder="b", clock=world.clock)]
    pollers = [world.poller, twin.poller]
    await world.subscribe(OPS, site_id=1001)
    await world.subscribe(OTHER)
    runs: list[dict[str, Any]] = []
    led: list[str] = []
    pairs = list(zip(replicas, pollers, strict=True))
    for round_ in range(8):
        runs += [world.fail(0.5, connector_id=str(uuid.uuid4())) for _ in range(2)]
        if round_ % 2:
            # The leader pauses past its lease: the other replica takes it over.
            world.clock.advance(seconds=40)
            asking = [pair for pair in pairs if pair[0].holder != led[-1]]
        else:
            world.clock.advance(seconds=10)
            asking = pairs
        reports = await asyncio.gather(*(r.poll(p.poll_once) for r, p in asking))
        assert sum(report is not None for report in reports) == 1  # one poller per round
        led.append(next(r.holder for (r, _), report in zip(asking, reports, strict=True) if report))
    # After each pause the other replica leads; back from its pause, the old leader's lease
    # is gone, and it does not poll.
    assert all((led[i] != led[i - 1]) == bool(i % 2) for i in range(1, len(led))), led
    for channel in (OPS, OTHER):
        posted = world.slack.messages(channel)
        assert len(posted) == len(runs), channel
        assert all(sum(run["id"] in str(m["blocks"]) for m in posted) == 1 for run in runs)


async def test_repeats_count_each_failure_once_and_recoveries_are_told_once(
        world: World, twin: Twin) -> None:
    await world.subscribe(OPS, site_id=1001)
    connector = str(uuid.uuid4())
    world.fail(0.5, connector_id=connector)
    await both_poll(world, twin)
    for _ in range(4):
        world.fail(0.5, connector_id=connector)
        await both_poll(world, twin)
    [incident] = await world.store.open_incidents(OPS)
    assert incident.failures == 5  # each failure counted once, whichever poller saw it
    world.cde.add_run(make_run(state="finished", site_id=1001, connector_id=connector,
                               started_at=world.clock()))
    await both_poll(world, twin)
    await both_poll(world, twin)
    assert await world.store.open_incidents(OPS) == []
    closed = await world.store.incident(incident.id)
    assert closed is not None and closed.resolved_by_run is not None and closed.failures == 5
