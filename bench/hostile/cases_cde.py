"""The CDE API is not what the bot assumed: odd fields in runs, pages capped or refused,
another order, another clock, ids too large for a database column."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bench.hostile.cases import case, failure, now
from bench.hostile.census import Observation
from bench.hostile.world import ADMIN, OPS, World
from bot.demo.runs import make_run

# -- one odd run among good ones ---------------------------------------------------------


def _naive(moment: Any) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds")


ODD_FIELDS: dict[str, dict[str, Any]] = {
    "number-for-site-name": {"site-name": 12345},
    "float-connector-version": {"connector-version": 2.0},
    "string-exit-code": {"exit-code": "ERR"},
    "bad-date": {"finished-at": "yesterday at noon"},
    "list-for-site-name": {"site-name": ["Site 1", "Site 2"]},
    "float-run-id": {"id": 1.5},
    "null-run-id": {"id": None},
    "site-id-1e20": {"site-id": 1e20},
    "string-site-id": {"site-id": "one thousand and one"},
    "object-for-state": {"state": {"name": "failed"}},
    "missing-connector-id": {"connector-id": None},
}


async def odd_run(seen: Observation, fields: dict[str, Any], *, odd_is_news: bool = False) -> None:
    """A subscribed channel; one odd run and one good one fail; the good one must be told
    (and the odd one too when `odd_is_news`), once each, whatever the odd one holds."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        odd, good = failure(), failure()
        odd.update(fields)
        world.cde.add_run(odd)
        world.cde.add_run(good)
        seen.tried()
        seen.expected.append(good["id"])
        ids = [good["id"]]
        if isinstance(odd["id"], str):
            ids.append(odd["id"])
            (seen.expected if odd_is_news else seen.at_most_once).append(odd["id"])
        await world.poll_until(lambda: set(ids) <= set(world.told(ids)), polls=4)
        await world.poll(2)  # anything told again shows now
        world.count_told(ids)
        world.finish()


def _odd_case(name: str, fields: dict[str, Any]) -> None:
    async def run(seen: Observation, quick: bool) -> None:
        await odd_run(seen, fields)
    run.__doc__ = f"One failed run with {fields} beside a good one: the good one is told."
    case("cde-data", name)(run)


for _name, _fields in ODD_FIELDS.items():
    _odd_case(_name, _fields)


@case("cde-data", "plain-failure")
async def plain_failure(seen: Observation, quick: bool) -> None:
    """Two ordinary failed runs (the control: the census itself counts right)."""
    await odd_run(seen, {}, odd_is_news=True)


@case("cde-data", "time-without-offset")
async def time_without_offset(seen: Observation, quick: bool) -> None:
    """A failed run whose times carry no UTC offset: read as UTC, and told."""
    started = now() - timedelta(minutes=1)
    await odd_run(seen, {"started-at": _naive(started), "created-at": _naive(started),
                         "finished-at": _naive(now())}, odd_is_news=True)


# -- pages ---------------------------------------------------------------------------------


async def many_new_failures(seen: Observation, count: int, **listing: Any) -> None:
    """`count` new failures while the API lists them in its own way (`listing`): each is
    told once."""
    async with World(seen) as world:
        for name, value in listing.items():
            setattr(world.cde, name, value)
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        runs = [failure(ended_ago=timedelta(seconds=i)) for i in range(count)]
        for run in runs:
            world.cde.add_run(run)
        ids = [run["id"] for run in runs]
        seen.tried(count)
        seen.expected.extend(ids)
        await world.poll_until(lambda: set(ids) <= set(world.told(ids)), polls=4)
        await world.poll()
        world.count_told(ids)
        world.finish()


@case("cde-paging", "page-cap-with-total")
async def page_cap_with_total(seen: Observation, quick: bool) -> None:
    """Pages capped at 25 whatever `limit` asks, `metadata.total` given: every failure told."""
    await many_new_failures(seen, 60 if quick else 120, page_cap=25)


@case("cde-paging", "page-cap-without-total")
async def page_cap_without_total(seen: Observation, quick: bool) -> None:
    """Pages capped at 25, no `metadata.total`: every failure told."""
    await many_new_failures(seen, 60 if quick else 120, page_cap=25, with_total=False)


@case("cde-paging", "limit-too-large-400")
async def limit_too_large(seen: Observation, quick: bool) -> None:
    """A 400 naming `limit` for any limit above 50: every failure told."""
    await many_new_failures(seen, 60 if quick else 120, max_limit=50)


@case("cde-paging", "limit-too-large-400-no-total")
async def limit_too_large_no_total(seen: Observation, quick: bool) -> None:
    """A 400 for a limit above 50, and no `metadata.total`: every failure told."""
    await many_new_failures(seen, 60 if quick else 120, max_limit=50, with_total=False)


async def old_failures_then_a_new_one(seen: Observation, old: int, **listing: Any) -> None:
    """`old` failures from before the subscription, arriving a thousand between two polls
    as they would over the hours before, then a new one: the new one is told."""
    async with World(seen) as world:
        for name, value in listing.items():
            setattr(world.cde, name, value)
        for first in range(0, old, 1000):
            for i in range(first, min(old, first + 1000)):
                world.cde.add_run(failure(ended_ago=timedelta(hours=20) - timedelta(seconds=10 * i)))
            await world.poll()
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        new = failure()
        world.cde.add_run(new)
        seen.tried(old + 1)
        seen.expected.append(new["id"])
        await world.poll_until(lambda: bool(world.told([new["id"]])), polls=3)
        world.count_told([new["id"]])
        assert world.log is not None
        if "stopped after" in world.log.text():
            # A scan cut short by its page budget must never be silent.
            metrics = await world.request("GET", "/metrics")
            readiness = await world.request("GET", "/readyz")
            seen.check("incomplete" in metrics.body or "partial" in metrics.body,
                       "/metrics counted the scans cut short")
            seen.check(bool(world.slack.messages(ADMIN)), "the admin channel was told a scan was cut short")
            seen.check(readiness.status == 503 or "scan" in readiness.body,
                       "/readyz said the scans were cut short")
        world.finish()


@case("cde-order", "oldest-first-6000-old")
async def oldest_first(seen: Observation, quick: bool) -> None:
    """Listed oldest first, 6 000 old failures, then a new one: the new one is told."""
    await old_failures_then_a_new_one(seen, 6000, oldest_first=True)


@case("cde-order", "oldest-first-6000-old-no-total")
async def oldest_first_no_total(seen: Observation, quick: bool) -> None:
    """Oldest first without `metadata.total`, 6 000 old failures, then a new one."""
    await old_failures_then_a_new_one(seen, 6000, oldest_first=True, with_total=False)


@case("cde-order", "newest-first-6000-old")
async def newest_first(seen: Observation, quick: bool) -> None:
    """Newest first (the documented order), 6 000 old failures, then a new one."""
    await old_failures_then_a_new_one(seen, 6000)


# -- clocks -------------------------------------------------------------------------------


async def skewed_clock(seen: Observation, skew: timedelta) -> None:
    """A failure that happens after the subscription, stamped by a CDE clock `skew` off
    the bot's: told once."""
    async with World(seen) as world:
        seen.check(await world.subscribe("site:1001"), "the subscription was confirmed")
        await world.poll()
        run = make_run(state="failed", site_id=1001, started_at=now() + skew,
                       took=timedelta(seconds=1), connector_id="019e16f3-bf9c-7485-b60b-0000000000aa")
        world.cde.add_run(run)
        seen.tried()
        seen.expected.append(run["id"])
        await world.poll_until(lambda: bool(world.told([run["id"]])), polls=3)
        await world.poll(2)
        world.count_told([run["id"]])
        world.finish()


@case("cde-clock", "cde-clock-90s-behind")
async def clock_behind(seen: Observation, quick: bool) -> None:
    """The CDE clock 90 s behind the bot's: a failure after the subscription is told."""
    await skewed_clock(seen, -timedelta(seconds=90))


@case("cde-clock", "cde-clock-10min-behind")
async def clock_far_behind(seen: Observation, quick: bool) -> None:
    """The CDE clock 10 minutes behind: a failure after the subscription is told."""
    await skewed_clock(seen, -timedelta(minutes=10))


@case("cde-clock", "cde-clock-90s-ahead")
async def clock_ahead(seen: Observation, quick: bool) -> None:
    """The CDE clock 90 s ahead: told once, not again."""
    await skewed_clock(seen, timedelta(seconds=90))


# -- huge ids -----------------------------------------------------------------------------


async def subscribe_all(world: World, seen: Observation, channel: str = OPS) -> None:
    """`/cde subscribe` without filters, and the click that confirms it."""
    _, url = await world.command("subscribe all", channel=channel)
    if not seen.check(await world.wait(lambda: bool(world.slack.responses(url))),
                      "subscribe all asked for its confirmation"):
        return
    confirm = world.slack.responses(url)[0]
    before = len(world.slack.messages(channel))
    message = {"ts": "1.0", "blocks": confirm.get("blocks", []), "text": confirm.get("text", "")}
    await world.click("subscribe_all", message, channel=channel, user="U0001")
    seen.check(await world.wait(lambda: len(world.slack.messages(channel)) > before),
               "subscribe all was confirmed")


async def huge_site(seen: Observation, site_id: int, *, must_tell: bool) -> None:
    """A failure at site `site_id` while the channel follows everything: told once (or,
    beyond what is stored, refused), never again; a failure after it is told."""
    async with World(seen) as world:
        await subscribe_all(world, seen)
        await world.poll()
        huge = failure(site_id)
        world.cde.add_run(huge)
        seen.tried()
        (seen.expected if must_tell else seen.at_most_once).append(huge["id"])
        await world.poll(3)
        after = failure()
        world.cde.add_run(after)
        seen.expected.append(after["id"])
        await world.poll_until(lambda: bool(world.told([after["id"]])), polls=3)
        await world.poll(2)
        world.count_told([huge["id"], after["id"]])
        world.finish()


@case("cde-ids", "site-id-beyond-32-bits")
async def site_beyond_32(seen: Observation, quick: bool) -> None:
    """A site id of 2**40 (fits 64 bits): told once."""
    await huge_site(seen, 2**40, must_tell=True)


@case("cde-ids", "site-id-beyond-64-bits")
async def site_beyond_64(seen: Observation, quick: bool) -> None:
    """A site id of 2**70: refused or told once, never every poll."""
    await huge_site(seen, 2**70, must_tell=False)


@case("cde-ids", "project-id-beyond-64-bits")
async def project_beyond_64(seen: Observation, quick: bool) -> None:
    """A project id of 2**70 in a failed run: refused or told once, never every poll."""
    async with World(seen) as world:
        await subscribe_all(world, seen)
        await world.poll()
        huge = failure()
        huge["project-id"] = 2**70
        world.cde.add_run(huge)
        seen.tried()
        seen.at_most_once.append(huge["id"])
        await world.poll(4)
        world.count_told([huge["id"]])
        world.finish()


@case("cde-ids", "lookups-of-huge-ids")
async def lookups_of_huge_ids(seen: Observation, quick: bool) -> None:
    """`/cde runs site:<2**70>` and siblings: a clear answer each, no crash."""
    async with World(seen) as world:
        huge = failure(2**70)
        world.cde.add_run(huge)
        for text in (f"runs site:{2**70}", f"runs site:{2**64}", f"subscribe site:{2**70}",
                     f"run {huge['id']}", "runs state:failed"):
            seen.tried()
            answer, url = await world.command(text)
            if answer.status >= 500:
                seen.crashes.append(f"`/cde {text}` answered {answer.status}")
                continue
            answered = answer.status == 200 and (
                bool(answer.body.strip()) or await world.wait(lambda u=url: bool(world.slack.responses(u))))
            seen.check(answered, f"`/cde {text}` got an answer")
            said = answer.body + str(world.slack.responses(url))
            seen.check("went wrong" not in said.lower(), f"`/cde {text}` answered with an internal error")
        world.finish()
