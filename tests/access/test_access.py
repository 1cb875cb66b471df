"""bot/access.py: who may change, where the bot answers, which sites it shows; and the
user groups of CDE_ADMINS read from the Slack stand-in (`usergroups.users.list`), cached,
failing closed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import (
    Access,
    AccessPolicy,
    GroupLookupFailed,
    Verdict,
    decide_change,
    not_enabled_here,
    refusal,
)
from bot.config import load_settings
from bot.slack.usergroups import SlackGroups
from tests.standins.slack import SlackStandIn

TOKEN = "xoxb-access-test-token-77"
POLICY = AccessPolicy(admins=("U0ALICE", "S0ONCALL"))


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=TOKEN) as standin:
        standin.usergroups["S0ONCALL"] = ["U0BOB", "U0CAROL"]
        yield standin


def groups_of(slack: SlackStandIn) -> SlackGroups:
    return SlackGroups(AsyncWebClient(token=TOKEN, base_url=slack.base_url, timeout=5))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def group_calls(slack: SlackStandIn) -> int:
    return sum(call.method == "usergroups.users.list" for call in slack.calls)


# -- the pure decisions ------------------------------------------------------------------------


def test_an_empty_policy_bounds_nothing() -> None:
    policy = AccessPolicy()
    assert decide_change(policy, "U0ANYONE", {}) is Verdict.ALLOWED
    assert policy.may_answer_in("C0ANY") and policy.may_answer_in(None)
    assert policy.may_see_site(1001) and policy.may_see_site(None)


def test_admins_by_id_and_by_group() -> None:
    members = {"S0ONCALL": frozenset({"U0BOB"})}
    assert decide_change(POLICY, "U0ALICE", members) is Verdict.ALLOWED
    assert decide_change(POLICY, "U0BOB", members) is Verdict.ALLOWED
    assert decide_change(POLICY, "U0MALLORY", members) is Verdict.NOT_ADMIN
    assert decide_change(POLICY, None, members) is Verdict.NOT_ADMIN
    assert decide_change(POLICY, "", members) is Verdict.NOT_ADMIN


def test_a_group_that_could_not_be_read_refuses_everyone_not_named() -> None:
    assert decide_change(POLICY, "U0BOB", {"S0ONCALL": None}) is Verdict.UNRESOLVED
    assert decide_change(POLICY, "U0ALICE", {"S0ONCALL": None}) is Verdict.ALLOWED
    two = AccessPolicy(admins=("S0A", "S0B"))
    # Found in a group that was read: allowed, whatever the other group.
    assert decide_change(two, "U0BOB", {"S0A": None, "S0B": frozenset({"U0BOB"})}) is Verdict.ALLOWED


def test_channel_and_site_bounds() -> None:
    policy = AccessPolicy(channels=frozenset({"C0OPS"}), sites=frozenset({1001}))
    assert policy.may_answer_in("C0OPS")
    assert not policy.may_answer_in("C0OTHER") and not policy.may_answer_in(None)
    assert policy.may_see_site(1001)
    assert not policy.may_see_site(1002) and not policy.may_see_site(None)


def test_from_settings() -> None:
    settings = load_settings(environment=False, slack_bot_token="xoxb-1", slack_app_token="xapp-1",
                             cde_api_token="t", cde_admins="U0ALICE,S0ONCALL",
                             cde_allowed_channels="C0OPS", cde_allowed_sites="1001,1002")
    policy = AccessPolicy.from_settings(settings)
    assert policy == AccessPolicy(("U0ALICE", "S0ONCALL"), frozenset({"C0OPS"}), frozenset({1001, 1002}))


def test_refusals_name_who_can_as_escaped_mentions() -> None:
    text = refusal(POLICY, Verdict.NOT_ADMIN, "subscribe")
    assert "Only <@U0ALICE>, <!subteam^S0ONCALL> may subscribe here" in text
    unresolved = refusal(POLICY, Verdict.UNRESOLVED, "mute")
    assert "could not tell me who is in that user group" in unresolved and "usergroups:read" in unresolved
    odd = AccessPolicy(admins=("U<&>",))  # settings never let this through; escaped all the same
    assert "<@U&lt;&amp;&gt;>" in refusal(odd, Verdict.NOT_ADMIN, "mute")
    assert "CDE_ALLOWED_CHANNELS" in not_enabled_here()


# -- user groups from Slack --------------------------------------------------------------------


async def test_group_members_come_from_usergroups_users_list(slack: SlackStandIn) -> None:
    access = Access(POLICY, groups_of(slack))
    assert await access.may_change("U0BOB") is Verdict.ALLOWED
    assert await access.may_change("U0MALLORY") is Verdict.NOT_ADMIN
    [call] = [c for c in slack.calls if c.method == "usergroups.users.list"]  # cached
    assert call.params["usergroup"] == "S0ONCALL"


async def test_an_admin_by_id_needs_no_group_lookup(slack: SlackStandIn) -> None:
    access = Access(POLICY, groups_of(slack))
    assert await access.may_change("U0ALICE") is Verdict.ALLOWED
    assert group_calls(slack) == 0


async def test_members_are_cached_for_the_ttl(slack: SlackStandIn) -> None:
    clock = FakeClock()
    access = Access(POLICY, groups_of(slack), ttl=300, clock=clock)
    assert await access.may_change("U0BOB") is Verdict.ALLOWED
    slack.usergroups["S0ONCALL"] = ["U0CAROL"]  # Bob leaves the group
    clock.now = 299
    assert await access.may_change("U0BOB") is Verdict.ALLOWED
    assert group_calls(slack) == 1
    clock.now = 300
    assert await access.may_change("U0BOB") is Verdict.NOT_ADMIN
    assert group_calls(slack) == 2


@pytest.mark.parametrize("fault", ["missing_scope", "no_such_subteam", "http_500", "html"])
async def test_a_group_slack_cannot_read_fails_closed_and_is_asked_again(
    slack: SlackStandIn, fault: str,
) -> None:
    access = Access(POLICY, groups_of(slack))
    if fault == "missing_scope":
        slack.scopes.remove("usergroups:read")
    elif fault == "no_such_subteam":
        del slack.usergroups["S0ONCALL"]
    elif fault == "http_500":
        slack.fail_next("usergroups.users.list", status=500, retry_after=None, error="internal_error")
    else:
        slack.fail_next_html("usergroups.users.list", status=502)
    assert await access.may_change("U0BOB") is Verdict.UNRESOLVED
    assert await access.may_change("U0ALICE") is Verdict.ALLOWED
    if fault == "missing_scope":
        slack.scopes.append("usergroups:read")
    elif fault == "no_such_subteam":
        slack.usergroups["S0ONCALL"] = ["U0BOB"]
    # A failure is not cached: once Slack answers, access is back.
    assert await access.may_change("U0BOB") is Verdict.ALLOWED


async def test_the_resolver_names_slacks_error(slack: SlackStandIn) -> None:
    slack.scopes.remove("usergroups:read")
    with pytest.raises(GroupLookupFailed, match="missing_scope"):
        await groups_of(slack).members("S0ONCALL")


async def test_without_a_resolver_groups_are_unresolved() -> None:
    assert await Access(POLICY).may_change("U0BOB") is Verdict.UNRESOLVED
    assert await Access().may_change("U0ANYONE") is Verdict.ALLOWED
