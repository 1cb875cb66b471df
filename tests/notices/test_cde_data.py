"""The poller against a CDE API that is not what the contract shows: odd runs, times
without an offset, pages capped below the asked `limit` or a 400 to a large one, a listing
oldest first, and scans that cannot cover the window. Real stand-ins over loopback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.helpers.world import World

OPS, ADMIN = "C0001", "C0ADMIN"
MakeWorld = Callable[..., Awaitable[World]]

# What the CDE API sends is read before anything reaches the store: one backend suffices
# (the store's own tests, and the poller's, run on both).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def connector() -> str:
    return str(uuid.uuid4())


def add_odd(world: World, alias: str, value: Any, minutes_ago: float = 5) -> dict[str, Any]:
    run = world.fail(minutes_ago, connector_id=connector())
    run[alias] = value
    world.cde.update_run(run["id"])  # the stand-in re-sorts
    return run


ODD = [
    ("site-name", 12345), ("connector-version", 2.0), ("exit-code", "ERR"),
    ("started-at", "not a date"), ("finished-at", ["2026"]), ("site-id", 1e20),
    ("site-id", 2**64), ("project-id", "x"), ("account-name", {"a": 1}),
    ("created-at", "2026-99-99"), ("id", 12.5), ("id", None), ("id", ["x"]),
]


@pytest.mark.parametrize(("alias", "value"), ODD)
async def test_an_odd_run_never_holds_up_the_other_notices(
        world: World, alias: str, value: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "bot.cde.client")
    await world.subscribe()  # every failure
    good = world.fail(10, connector_id=connector())
    add_odd(world, alias, value)
    report = await world.poll()
    assert report.outcome == "ok", report.error
    told = {incident.connector_id for incident in await world.store.open_incidents(OPS)}
    assert good["connector-id"] in told
    assert report.odd_runs == 1
    # Nothing is told again on the next polls, and the odd run is logged once.
    posts = world.posts()
    for _ in range(2):
        again = await world.poll()
        assert again.outcome == "ok" and again.posted == 0
    assert world.posts() == posts
    logged = [r for r in caplog.records if "cannot fully read" in r.getMessage()]
    assert len(logged) == 1 and alias in logged[0].getMessage()


async def test_the_good_failure_beside_an_odd_one_is_told(world: World) -> None:
    await world.subscribe(site_id=1001)
    good = world.fail(10, connector_id=connector())
    add_odd(world, "exit-code", "ERR", minutes_ago=8)
    add_odd(world, "site-id", 1e20, minutes_ago=6)
    add_odd(world, "id", 3.5, minutes_ago=4)
    report = await world.poll()
    assert report.outcome == "ok" and report.odd_runs == 3
    incidents = await world.store.open_incidents(OPS)
    told = {incident.connector_id for incident in incidents}
    assert good["connector-id"] in told
    assert len(incidents) == 2  # the good run and the one whose exit code is odd


async def test_a_site_id_beyond_64_bits_is_told_once_as_an_unknown_site(world: World) -> None:
    await world.subscribe()
    add_odd(world, "site-id", 2**70)
    first = await world.poll()
    assert first.outcome == "ok" and first.posted == 1
    for _ in range(3):
        assert (await world.poll()).posted == 0


@pytest.mark.parametrize("when", ["{:%Y-%m-%dT%H:%M:%S}", "{:%Y-%m-%d %H:%M:%S}"])
async def test_a_time_without_offset_is_read_as_utc(world: World, when: str) -> None:
    await world.subscribe(site_id=1001)
    run = world.fail(3)
    moment = world.clock() - timedelta(minutes=3)
    for alias in ("created-at", "started-at", "finished-at"):
        run[alias] = when.format(moment.replace(tzinfo=None))
    world.cde.update_run(run["id"])
    report = await world.poll()
    assert report.outcome == "ok", report.error
    assert report.posted == 1 and report.odd_runs == 0


# -------------------------------------------------------------------------- page sizes


def many_failures(world: World, count: int, minutes_ago: float = 30) -> list[dict[str, Any]]:
    return [world.fail(minutes_ago + i / 100, connector_id=connector()) for i in range(count)]


@pytest.mark.parametrize(("cap", "tells_total", "tells_limit", "max_limit"), [
    (30, True, True, 1000),    # the cap is told in metadata.limit
    (30, True, False, 1000),   # only metadata.total shows more to come
    (30, False, False, 1000),  # nothing tells: the next page does
    (None, True, True, 50),    # a 400 to limit=100
    (None, False, False, 20),  # a 400, and no metadata
])
async def test_every_failure_is_seen_whatever_the_page_size(
        world: World, cap: int | None, tells_total: bool, tells_limit: bool, max_limit: int) -> None:
    shape = world.cde.shape
    shape.page_cap, shape.tells_total, shape.tells_limit, shape.max_limit = \
        cap, tells_total, tells_limit, max_limit
    await world.subscribe(site_id=1001)
    runs = many_failures(world, 70)
    report = await world.poll()
    assert report.outcome == "ok", report.error
    assert report.failed_runs_seen == 70 and not report.cut_short
    announced = await world.store.announced(run["id"] for run in runs)
    assert len(announced) == 70
    # What was learnt is kept: the next poll asks for the real page size at once.
    world.cde.reset()
    again = await world.poll()
    limits = {r.query["limit"] for r in world.cde.requests_to("/runs")
              if r.query.get("state") == "failed"}
    assert again.outcome == "ok" and limits == {str(cap or max_limit)}


# ------------------------------------------------------------------------------ order


@pytest.mark.parametrize("tells_total", [True, False])
async def test_a_new_failure_behind_6000_old_ones_listed_oldest_first_is_told(
        world: World, tells_total: bool) -> None:
    world.cde.shape.oldest_first = True
    world.cde.shape.tells_total = world.cde.shape.tells_limit = tells_total
    await world.subscribe(site_id=1001)
    for i in range(6000):
        world.fail(60 * 30 + i / 10, connector_id=connector())  # 30 hours ago: out of the window
    new = world.fail(1)
    report = await world.poll()
    assert report.outcome == "ok" and not report.cut_short
    # The first page and the last; without a total, a few dozen runs asked one at a time
    # find where the listing ends.
    assert report.posted == 1 and report.api_requests <= (3 if tells_total else 30)
    assert [incident.run["id"] for incident in await world.store.open_incidents(OPS)] == [new["id"]]


async def test_a_scan_cut_short_is_told_to_the_admins_once_and_when_it_fits_again(
        make_world: MakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    world = await make_world(admin_channel=ADMIN, scan_max_pages=2)
    await world.subscribe(site_id=1001)
    runs = many_failures(world, 250, minutes_ago=60)
    first = await world.poll()
    assert first.cut_short and "failed runs" in first.cut_short[0]
    assert any("stopped after 2 pages" in r.getMessage() for r in caplog.records)
    for _ in range(2):
        assert (await world.poll()).cut_short
    alerts = world.top(ADMIN)
    assert [m["text"] for m in alerts] == [
        "Some failures may not be told: CDE scans stop short of the window"]
    assert "CDE_SCAN_MAX_PAGES" in str(alerts[0]["blocks"])
    for run in runs[:100]:
        world.cde.runs.remove(run)
    world.cde.update_run(runs[100]["id"])
    fits = await world.poll()
    assert not fits.cut_short
    assert [m["text"] for m in world.top(ADMIN)][1:] == [
        "Scans of the CDE API cover the look-back window again"]


async def test_an_admin_alert_that_cannot_be_posted_is_told_next_poll(make_world: MakeWorld) -> None:
    world = await make_world(admin_channel=ADMIN, scan_max_pages=1)
    await world.subscribe(site_id=1001)
    many_failures(world, 150, minutes_ago=60)
    world.slack.fail_next("chat.postMessage", status=200, error="channel_not_found", retry_after=None,
                          channel=ADMIN)
    await world.poll()
    await world.poll()
    assert [m["text"] for m in world.top(ADMIN)] == [
        "Some failures may not be told: CDE scans stop short of the window"]
