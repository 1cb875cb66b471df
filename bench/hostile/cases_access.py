"""Who may do what: `CDE_ADMINS`, `CDE_ALLOWED_CHANNELS`, `CDE_ALLOWED_SITES`. A version
without one of these settings reports its cases as not available. A refused request that
was carried out all the same counts as a forged request accepted."""

from __future__ import annotations

import json
from typing import Any

from bench.hostile.cases import case, failure
from bench.hostile.census import Observation
from bench.hostile.world import OPS, OTHER, World
from bot.config import Settings


def available(seen: Observation, *settings: str) -> bool:
    """Whether this version has every one of `settings`; if not, the case says so."""
    missing = [name for name in settings if name not in Settings.model_fields]
    if missing:
        seen.unavailable = ", ".join(name.upper() for name in missing) + " is not a setting of this version"
    return not missing


def said(world: World, url: str, ack: str) -> str:
    return ack + json.dumps(world.slack.responses(url), ensure_ascii=False)


@case("access", "admins-only-change-subscriptions")
async def admins_only(seen: Observation, quick: bool) -> None:
    """With CDE_ADMINS set, a non-admin's subscribe and unsubscribe are refused, naming who
    can; the admin's go through."""
    if not available(seen, "cde_admins"):
        return
    async with World(seen, cde_admins="U0ADMIN") as world:
        seen.tried()
        before = len(world.slack.messages(OPS))
        answer, url = await world.command("subscribe site:1001", user="U0001")
        await world.wait(lambda: bool(world.slack.responses(url)) or len(world.slack.messages(OPS)) > before)
        if len(world.slack.messages(OPS)) > before:
            seen.forged_accepted += 1
        seen.check("U0ADMIN" in said(world, url, answer.body), "the refusal named who can subscribe")
        seen.tried()
        answer, url = await world.command("subscribe site:1001", user="U0ADMIN")
        seen.check(await world.wait(lambda: len(world.slack.messages(OPS)) > before),
                   "the admin's subscription went through")
        seen.tried()
        answer, url = await world.command("unsubscribe 1", user="U0002")
        await world.wait(lambda: bool(world.slack.responses(url)))
        seen.tried()
        _, listed = await world.command("subscriptions", user="U0ADMIN")
        await world.wait(lambda: bool(world.slack.responses(listed)))
        if "site" not in said(world, listed, "").lower():
            seen.forged_accepted += 1
            seen.failures.append("a non-admin's unsubscribe went through")
        world.finish()


async def lookup(world: World, text: str, channel: str) -> str:
    answer, url = await world.command(text, channel=channel)
    await world.wait(lambda: bool(world.slack.responses(url)) or bool(answer.body.strip()))
    return said(world, url, answer.body)


@case("access", "allowed-channels")
async def allowed_channels(seen: Observation, quick: bool) -> None:
    """With CDE_ALLOWED_CHANNELS=C0001, a lookup or subscription in C0002 is refused."""
    if not available(seen, "cde_allowed_channels"):
        return
    async with World(seen, cde_allowed_channels=OPS) as world:
        run: dict[str, Any] = failure()
        world.cde.add_run(run)
        seen.tried()
        if run["id"] in await lookup(world, "runs state:failed", OTHER):
            seen.forged_accepted += 1
        seen.tried()
        before = len(world.slack.messages(OTHER))
        await lookup(world, "subscribe site:1001", OTHER)
        if len(world.slack.messages(OTHER)) > before:
            seen.forged_accepted += 1
        seen.tried()
        seen.check(run["id"] in await lookup(world, "runs state:failed", OPS),
                   "the allowed channel is answered")
        world.finish()


@case("access", "allowed-sites")
async def allowed_sites(seen: Observation, quick: bool) -> None:
    """With CDE_ALLOWED_SITES=1001, site 1002 is not found in lookups and refused for
    subscriptions, and its failures are never told."""
    if not available(seen, "cde_allowed_sites"):
        return
    async with World(seen, cde_allowed_sites="1001") as world:
        inside, outside = failure(1001), failure(1002)
        world.cde.add_run(inside)
        world.cde.add_run(outside)
        for text in ("runs site:1002", "runs state:failed", f"run {outside['id']}"):
            seen.tried()
            # Shown: its site's name is in the answer (a "not found" quotes only the id typed).
            if "Site 2" in await lookup(world, text, OPS):
                seen.forged_accepted += 1
                seen.failures.append(f"`/cde {text}` showed a run of site 1002")
        seen.tried()
        before = len(world.slack.messages(OTHER))
        await lookup(world, "subscribe site:1002", OTHER)
        if len(world.slack.messages(OTHER)) > before:
            seen.forged_accepted += 1
            seen.failures.append("a subscription to site 1002 went through")
        world.finish()
