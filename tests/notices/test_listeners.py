"""Path 2's listeners in process: the subscription sub-commands and the buttons on notices."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.bolt import OPS, BoltScenario, all_text, bolt_scenario
from tests.standins.slack import BOT_USER_ID, encode_slash_command, slash_command_payload

OTHER = "C0002"


@pytest.fixture
async def bolt(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path) as scenario:
        yield scenario


def commands_counted(bolt: BoltScenario, command: str, outcome: str) -> float:
    text = bolt.metrics.render().decode()
    found = re.search(rf'cde_bot_commands_total{{command="{command}",outcome="{outcome}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def confirmation(answer: dict[str, object]) -> dict[str, object]:
    """The ephemeral confirmation as the message its button is clicked on."""
    return {"ts": "1.0", "blocks": answer["blocks"], "text": answer["text"]}


async def test_subscription_commands(bolt: BoltScenario) -> None:
    sent = await bolt.command("subscribe")
    assert sent.status == 200 and sent.body == ""
    [confirm] = bolt.answers(sent)
    assert "every failed run" in all_text(confirm)
    assert bolt.slack.messages(OPS) == []  # nothing followed before the click

    await bolt.click("subscribe_all", confirmation(confirm))
    [posted] = bolt.slack.messages(OPS)
    assert "every failed run" in all_text(posted)

    subscribed = await bolt.command("subscribe site:1001 project:650")
    assert bolt.answers(subscribed) == []  # told in the channel instead
    assert len(bolt.slack.messages(OPS)) == 2
    [duplicate] = bolt.answers(await bolt.command("subscribe site:1001 project:650"))
    assert "already follows" in all_text(duplicate)

    [listing] = bolt.answers(await bolt.command("subscriptions"))
    assert "2 subscriptions" in all_text(listing) and "on site 1001 in project 650" in all_text(listing)

    [missing] = bolt.answers(await bolt.command("unsubscribe 99"))
    assert "no subscription `99`" in all_text(missing)
    await bolt.command("unsubscribe all")
    assert "removed all 2 subscriptions" in all_text(bolt.slack.messages(OPS))
    [empty] = bolt.answers(await bolt.command("subscriptions"))
    assert "follows no failures" in all_text(empty)
    assert commands_counted(bolt, "subscribe", "user_error") == 1
    assert commands_counted(bolt, "unsubscribe", "user_error") == 1
    assert commands_counted(bolt, "subscriptions", "ok") == 2
    assert bolt.cde.requests == []


async def test_subscriptions_belong_to_their_channel(bolt: BoltScenario) -> None:
    await bolt.command("subscribe site:1001")
    [listing] = bolt.answers(await bolt.command("subscriptions", channel=OTHER))
    assert "follows no failures" in all_text(listing)


async def test_subscribing_where_the_bot_cannot_post_is_refused(bolt: BoltScenario) -> None:
    bolt.slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    [answer] = bolt.answers(await bolt.command("subscribe site:1001"))
    # The bot is named as Slack shows it (its user id from auth.test), never by a fixed name.
    assert f"Invite <@{BOT_USER_ID}> to this channel first (`/invite`)" in all_text(answer)
    assert "@cde-bot" not in all_text(answer)
    [listing] = bolt.answers(await bolt.command("subscriptions"))
    assert "follows no failures" in all_text(listing)


async def test_confirming_everything_replaces_the_question_when_refused(bolt: BoltScenario) -> None:
    [confirm] = bolt.answers(await bolt.command("subscribe all"))
    await bolt.click("subscribe_all", confirmation(confirm))
    # A second confirmation (an old question clicked again) is answered in its place.
    sent = await bolt.click("subscribe_all", confirmation(confirm))
    [answer] = bolt.answers(sent)
    assert "already follows" in all_text(answer) and answer["replace_original"] is True
    assert commands_counted(bolt, "button", "ok") == 1
    assert commands_counted(bolt, "button", "user_error") == 1


async def test_a_confirmed_subscription_deletes_the_question(bolt: BoltScenario) -> None:
    [confirm] = bolt.answers(await bolt.command("subscribe all"))
    [deleted] = bolt.answers(await bolt.click("subscribe_all", confirmation(confirm)))
    assert deleted["delete_original"] is True


async def test_acknowledge_marks_the_notice_taken(bolt: BoltScenario) -> None:
    incident, notice = await bolt.post_notice()
    sent = await bolt.click("incident_ack", notice, user="U0002")
    assert sent.status == 200 and bolt.answers(sent) == []
    redrawn = bolt.slack.message(OPS, incident.message_ts)
    assert "<@U0002> is on it" in all_text(redrawn)
    assert '"Acknowledge"' not in all_text(redrawn)
    stored = await bolt.store.incident(incident.id)
    assert stored is not None and stored.acknowledged_by == "U0002"


async def test_acknowledging_what_someone_else_took_says_who(bolt: BoltScenario) -> None:
    _, notice = await bolt.post_notice()
    await bolt.click("incident_ack", notice, user="U0002")
    [answer] = bolt.answers(await bolt.click("incident_ack", notice, user="U0001"))
    assert "Already acknowledged by <@U0002>." in all_text(answer)
    assert answer["replace_original"] is False
    # The one who took it clicking again hears nothing.
    assert bolt.answers(await bolt.click("incident_ack", notice, user="U0002")) == []


async def test_buttons_on_an_untracked_message_say_so(bolt: BoltScenario) -> None:
    message = {"ts": "1699999999.000001", "text": "an old notice"}
    [acked] = bolt.answers(await bolt.click("incident_ack", message))
    assert "no longer tracked" in all_text(acked) and acked["replace_original"] is False
    [muted] = bolt.answers(await bolt.click("incident_mute", message, selected="4"))
    assert "no longer tracked" in all_text(muted)


async def test_mute_holds_the_connector_back_and_replies_in_the_thread(bolt: BoltScenario) -> None:
    incident, notice = await bolt.post_notice()
    sent = await bolt.click("incident_mute", notice, selected="4", user="U0002")
    assert sent.status == 200 and bolt.answers(sent) == []
    assert "Muted by <@U0002>" in all_text(bolt.slack.message(OPS, incident.message_ts))
    replies = bolt.slack.replies(OPS, incident.message_ts)
    assert any("muted this connector" in all_text(reply) for reply in replies)
    [mute] = await bolt.store.active_mutes(bolt.services.clock())
    assert (mute.site_id, mute.connector_id, mute.muted_by) == (
        incident.site_id, incident.connector_id, "U0002")


async def test_unmute_and_a_digest_pair(bolt: BoltScenario) -> None:
    incident, notice = await bolt.post_notice(in_digest=True)
    await bolt.click("incident_mute", notice, selected=f"{incident.id}:24")
    assert len(await bolt.store.active_mutes(bolt.services.clock())) == 1
    await bolt.click("incident_mute", notice, selected=f"{incident.id}:0")
    assert await bolt.store.active_mutes(bolt.services.clock()) == []
    [gone] = bolt.answers(await bolt.click("incident_mute", notice, selected=f"{incident.id + 1}:4"))
    assert "no longer tracked" in all_text(gone)


# Forged or damaged values: hours not offered, ids no store can hold, digits Python reads
# but the bot never writes (which `int()` refuses or reads differently).
@pytest.mark.parametrize("value", ["3", "x:4", "4:", "", "1:2:4", "04", "²", "١:4", "٤",
                                   "9223372036854775808:4", "99999999999999999999:24",
                                   "9" * 5000 + ":4", "-1:4"])
async def test_a_mute_choice_the_bot_never_offers_is_refused(bolt: BoltScenario, value: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    incident, notice = await bolt.post_notice()
    [answer] = bolt.answers(await bolt.click("incident_mute", notice, selected=value))
    assert "not one the bot offers" in all_text(answer)
    assert "refused a mute choice the bot never offers" in caplog.text
    assert await bolt.store.active_mutes(bolt.services.clock()) == []
    stored = await bolt.store.incident(incident.id)
    assert stored == incident


async def test_the_largest_incident_id_a_store_keeps_is_not_tracked(bolt: BoltScenario) -> None:
    _, notice = await bolt.post_notice(in_digest=True)
    [gone] = bolt.answers(await bolt.click("incident_mute", notice, selected="9223372036854775807:4"))
    assert "no longer tracked" in all_text(gone)


async def command_in(bolt: BoltScenario, text: str, *, channel_id: str,
                     channel_name: str) -> list[dict[str, object]]:
    """`/cde text` typed in a conversation Slack names `channel_name`; the answers."""
    url = bolt.slack.new_response_url(channel_id=channel_id, user_id="U0001")
    payload = slash_command_payload(text, response_url=url, channel_id=channel_id,
                                    channel_name=channel_name)
    await bolt.dispatch(encode_slash_command(payload))
    return bolt.slack.responses(url)


@pytest.mark.parametrize(("channel_id", "channel_name"), [
    ("D0PEOPLE1", "directmessage"),          # a DM between two people
    ("G0GROUP01", "mpdm-alice--bob--carol-1"),  # a group DM
    ("C0GROUP02", "mpdm-alice--bob-1"),
])
async def test_subscribing_in_a_direct_message_explains_that_notices_need_a_channel(
    bolt: BoltScenario, channel_id: str, channel_name: str,
) -> None:
    # Slack keeps apps out of DMs between people and group DMs: the post is refused.
    bolt.slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    [answer] = await command_in(bolt, "subscribe site:1001", channel_id=channel_id,
                                channel_name=channel_name)
    text = all_text(answer)
    assert "Notices need a channel" in text
    assert "`/cde subscribe site:1001` in a channel" in text
    assert "/invite" not in text  # Slack allows no invitation there
    [listing] = await command_in(bolt, "subscriptions", channel_id=channel_id, channel_name=channel_name)
    assert "follows no failures" in all_text(listing)


async def test_the_bots_own_direct_message_can_be_subscribed(bolt: BoltScenario) -> None:
    # An app may post in its own DM with a person, so a subscription there stands.
    answers = await command_in(bolt, "subscribe site:1001", channel_id="D0BOTDM01",
                               channel_name="directmessage")
    assert answers == []
    assert "subscribed this channel" in all_text(bolt.slack.messages("D0BOTDM01"))


async def test_acknowledge_when_the_notice_cannot_be_updated_tells_the_clicker(bolt: BoltScenario) -> None:
    incident, notice = await bolt.post_notice()
    bolt.slack.fail_next("chat.update", status=200, retry_after=None, error="cant_update_message")
    sent = await bolt.click("incident_ack", notice, user="U0002")
    [answer] = bolt.answers(sent)
    assert "Your acknowledgement is saved, but Slack did not let me update the notice" in all_text(answer)
    assert answer["replace_original"] is False and answer["response_type"] == "ephemeral"
    assert "is on it" not in all_text(bolt.slack.message(OPS, incident.message_ts))
    stored = await bolt.store.incident(incident.id)
    assert stored is not None and stored.acknowledged_by == "U0002"
    # The next redraw (a mute here) shows the acknowledgement kept.
    await bolt.click("incident_mute", notice, selected="4", user="U0001")
    assert "<@U0002> is on it" in all_text(bolt.slack.message(OPS, incident.message_ts))


@pytest.mark.parametrize(("selected", "done"), [("4", "The mute is set"), ("0", "The mute is lifted")])
async def test_mute_when_the_notice_cannot_be_updated_tells_the_clicker(
    bolt: BoltScenario, selected: str, done: str,
) -> None:
    _, notice = await bolt.post_notice()
    if selected == "0":
        await bolt.click("incident_mute", notice, selected="4")
    bolt.slack.fail_next("chat.update", status=500, retry_after=None, error="internal_error")
    [answer] = bolt.answers(await bolt.click("incident_mute", notice, selected=selected, user="U0002"))
    assert f"{done}, but Slack did not let me update the notice" in all_text(answer)
    mutes = await bolt.store.active_mutes(bolt.services.clock())
    assert len(mutes) == (1 if selected == "4" else 0)
