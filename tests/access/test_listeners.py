"""CDE_ADMINS, CDE_ALLOWED_CHANNELS and CDE_ALLOWED_SITES in the real app, in process: signed
requests dispatched to Bolt, the Slack stand-in (user groups included) and the sample CDE API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.access import AccessPolicy
from tests.helpers.bolt import OPS, BoltScenario, all_text, bolt_scenario
from tests.helpers.sample import FAILED_RUN

ADMIN, ONCALL, MEMBER, OUTSIDER = "U0ADMIN", "S0ONCALL", "U0MEMBER", "U0OUTSIDER"
ADMINS = AccessPolicy(admins=(ADMIN, ONCALL))
OTHER = "C0OTHER"


@pytest.fixture
async def admins(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path, policy=ADMINS) as scenario:
        scenario.slack.usergroups[ONCALL] = [MEMBER]
        yield scenario


def refused_by_admins(answer: dict[str, object]) -> bool:
    text = all_text(answer)
    return f"Only <@{ADMIN}>, <!subteam^{ONCALL}> may" in text


def confirmation(answer: dict[str, object]) -> dict[str, object]:
    return {"ts": "1.0", "blocks": answer["blocks"], "text": answer["text"]}


# -- CDE_ADMINS --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["subscribe site:1001", "subscribe all", "unsubscribe all", "unsubscribe 1"])
async def test_only_admins_may_change_subscriptions(admins: BoltScenario, text: str) -> None:
    await admins.command("subscribe site:1002", user=ADMIN)
    before = await admins.store.subscriptions(OPS)
    posted = len(admins.slack.messages(OPS))
    sent = await admins.command(text, user=OUTSIDER)
    [answer] = admins.answers(sent)
    assert sent.status == 200 and refused_by_admins(answer)
    assert answer["response_type"] == "ephemeral"
    assert await admins.store.subscriptions(OPS) == before
    assert len(admins.slack.messages(OPS)) == posted


async def test_admins_by_id_and_by_group_may_change(admins: BoltScenario) -> None:
    assert admins.answers(await admins.command("subscribe site:1001", user=ADMIN)) == []
    assert admins.answers(await admins.command("subscribe site:1002", user=MEMBER)) == []
    assert len(await admins.store.subscriptions(OPS)) == 2
    assert admins.answers(await admins.command("unsubscribe all", user=MEMBER)) == []
    assert await admins.store.subscriptions(OPS) == []


async def test_anyone_may_list_subscriptions(admins: BoltScenario) -> None:
    [listing] = admins.answers(await admins.command("subscriptions", user=OUTSIDER))
    assert "follows no failures" in all_text(listing)


async def test_the_confirmation_button_is_for_admins_too(admins: BoltScenario) -> None:
    [confirm] = admins.answers(await admins.command("subscribe all", user=ADMIN))
    [answer] = admins.answers(await admins.click("subscribe_all", confirmation(confirm), user=OUTSIDER))
    assert refused_by_admins(answer)
    assert await admins.store.subscriptions(OPS) == []


@pytest.mark.parametrize("selected", ["4", "0"])
async def test_only_admins_may_mute_or_unmute(admins: BoltScenario, selected: str) -> None:
    _, notice = await admins.post_notice()
    if selected == "0":
        await admins.click("incident_mute", notice, selected="24", user=ADMIN)
    mutes = await admins.store.active_mutes(admins.services.clock())
    [answer] = admins.answers(await admins.click("incident_mute", notice, selected=selected, user=OUTSIDER))
    assert refused_by_admins(answer) and answer["replace_original"] is False
    assert await admins.store.active_mutes(admins.services.clock()) == mutes
    assert admins.answers(await admins.click("incident_mute", notice, selected="4", user=MEMBER)) == []
    [mute] = await admins.store.active_mutes(admins.services.clock())
    assert mute.muted_by == MEMBER


async def test_anyone_may_acknowledge(admins: BoltScenario) -> None:
    incident, notice = await admins.post_notice()
    assert admins.answers(await admins.click("incident_ack", notice, user=OUTSIDER)) == []
    stored = await admins.store.incident(incident.id)
    assert stored is not None and stored.acknowledged_by == OUTSIDER


async def test_when_slack_cannot_read_the_group_changes_fail_closed(admins: BoltScenario) -> None:
    admins.slack.scopes.remove("usergroups:read")
    sent = await admins.command("subscribe site:1001", user=MEMBER)
    [answer] = admins.answers(sent)
    assert sent.status == 200
    assert "could not tell me who is in that user group" in all_text(answer)
    assert await admins.store.subscriptions(OPS) == []
    # Admins named by id are not held up by it.
    assert admins.answers(await admins.command("subscribe site:1001", user=ADMIN)) == []


async def test_a_slack_outage_on_usergroups_fails_closed(admins: BoltScenario) -> None:
    admins.slack.fail_next("usergroups.users.list", status=500, retry_after=None, error="internal_error")
    [answer] = admins.answers(await admins.command("unsubscribe all", user=MEMBER))
    assert "could not tell me who is in that user group" in all_text(answer)


# -- CDE_ALLOWED_CHANNELS ----------------------------------------------------------------------


@pytest.fixture
async def one_channel(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path, policy=AccessPolicy(channels=frozenset({OPS}))) as scenario:
        yield scenario


@pytest.mark.parametrize("text", ["runs site:1001", f"run {FAILED_RUN}", "help", "subscribe site:1001",
                                  "subscriptions", "unsubscribe all", "nonsense"])
async def test_outside_the_allowed_channels_every_command_gets_one_short_answer(
    one_channel: BoltScenario, text: str,
) -> None:
    sent = await one_channel.command(text, channel=OTHER)
    assert sent.status == 200
    ack = sent.json()
    assert ack["response_type"] == "ephemeral" and "not enabled in this channel" in ack["text"]
    assert one_channel.answers(sent) == []
    assert one_channel.cde.requests == []
    assert await one_channel.store.subscriptions() == []
    assert one_channel.slack.messages(OTHER) == []


@pytest.mark.parametrize(("action", "selected"), [("incident_ack", None), ("incident_mute", "4"),
                                                 ("runs_page_next", None), ("share_in_channel", None)])
async def test_outside_the_allowed_channels_a_click_does_nothing_but_say_so(
    one_channel: BoltScenario, action: str, selected: str | None,
) -> None:
    incident, notice = await one_channel.post_notice(channel=OTHER)
    sent = await one_channel.click(action, notice, channel=OTHER, selected=selected, value="runs site:1001")
    [answer] = one_channel.answers(sent)
    assert "not enabled in this channel" in all_text(answer) and answer["replace_original"] is False
    assert await one_channel.store.incident(incident.id) == incident
    assert await one_channel.store.active_mutes(one_channel.services.clock()) == []
    assert one_channel.cde.requests == []


async def test_inside_the_allowed_channels_the_bot_answers(one_channel: BoltScenario) -> None:
    [answer] = one_channel.answers(await one_channel.command("runs site:1001", channel=OPS))
    assert "Showing 1–10" in all_text(answer)


# -- CDE_ALLOWED_SITES -------------------------------------------------------------------------


@pytest.fixture
async def site_1001(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path, policy=AccessPolicy(sites=frozenset({1001}))) as scenario:
        yield scenario


async def test_a_run_of_a_site_outside_the_list_is_not_found(site_1001: BoltScenario) -> None:
    [answer] = site_1001.answers(await site_1001.command(f"run {FAILED_RUN}"))  # a run of site 1002
    assert f"Run `{FAILED_RUN}` was not found" in all_text(answer)
    assert "1002" not in all_text(answer)


async def test_a_list_of_a_site_outside_the_list_matches_nothing(site_1001: BoltScenario) -> None:
    [answer] = site_1001.answers(await site_1001.command("runs site:1002 state:failed"))
    assert "No runs match" in all_text(answer)
    assert site_1001.cde.requests == []  # not even asked


async def test_a_list_naming_no_site_shows_the_allowed_one_only(site_1001: BoltScenario) -> None:
    [answer] = site_1001.answers(await site_1001.command("runs state:failed"))
    [request] = site_1001.cde.requests_to("/runs")
    assert request.query.get("site-id") == "1001"
    assert "Showing 1–10 of 23" in all_text(answer)


async def test_with_several_sites_a_list_must_name_one(tmp_path: Path) -> None:
    async with bolt_scenario(tmp_path, policy=AccessPolicy(sites=frozenset({1001, 1003}))) as bolt:
        [answer] = bolt.answers(await bolt.command("runs state:failed"))
        assert "Name a site" in all_text(answer) and "`site:1001`, `site:1003`" in all_text(answer)
        assert bolt.cde.requests == []
        [allowed] = bolt.answers(await bolt.command("runs site:1001"))
        assert "Showing 1–10" in all_text(allowed)


async def test_subscribing_to_a_site_outside_the_list_is_refused(site_1001: BoltScenario) -> None:
    [answer] = site_1001.answers(await site_1001.command("subscribe site:1002"))
    assert "Site `1002` is not one cde-bot follows here" in all_text(answer)
    assert await site_1001.store.subscriptions() == []
    assert site_1001.answers(await site_1001.command("subscribe site:1001")) == []
