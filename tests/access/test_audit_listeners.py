"""The audit trail through the real app: every change recorded (who, when, what, where),
shown by `/cde subscriptions` and `/cde audit [N]`, logged as structured events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.access import AccessPolicy
from bot.notices.models import AuditEntry, NoticeFilter
from tests.helpers.bolt import OPS, BoltScenario, all_text, bolt_scenario

OTHER = "C0002"


@pytest.fixture
async def bolt(tmp_path: Path) -> AsyncIterator[BoltScenario]:
    async with bolt_scenario(tmp_path) as scenario:
        yield scenario


def confirmation(answer: dict[str, object]) -> dict[str, object]:
    return {"ts": "1.0", "blocks": answer["blocks"], "text": answer["text"]}


async def test_every_change_is_recorded_with_who_when_what_and_where(
    bolt: BoltScenario, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.notices.audit")
    await bolt.command("subscribe site:1001", user="U0001")
    [confirm] = bolt.answers(await bolt.command("subscribe all", user="U0002"))
    await bolt.click("subscribe_all", confirmation(confirm), user="U0002")
    await bolt.command("unsubscribe 1", user="U0002")
    incident, notice = await bolt.post_notice()
    await bolt.click("incident_mute", notice, selected="4", user="U0001")
    await bolt.click("incident_mute", notice, selected="0", user="U0002")
    await bolt.click("incident_ack", notice, user="U0003")
    await bolt.click("incident_ack", notice, user="U0001")  # taken already: no change
    entries = await bolt.store.audit_log(100)
    assert [(e.action, e.user_id, e.channel_id) for e in reversed(entries)] == [
        ("subscribe", "U0001", OPS), ("subscribe", "U0002", OPS), ("unsubscribe", "U0002", OPS),
        ("mute", "U0001", OPS), ("unmute", "U0002", OPS), ("acknowledge", "U0003", OPS)]
    assert entries[-1].details == {"filter": {"site_id": 1001}}
    assert entries[-3].target == "subscription 1"
    assert entries[2].details["hours"] == 4
    assert entries[0].target == f"incident {incident.id}"
    assert all(e.at.tzinfo is not None for e in entries)
    events = [r for r in caplog.records if getattr(r, "event", None) == "audit"]
    assert [(r.action, r.user, r.channel) for r in events] == [  # type: ignore[attr-defined]
        (e.action, e.user_id, e.channel_id) for e in reversed(entries)]
    assert events[0].target == "subscription 1"  # type: ignore[attr-defined]


async def test_a_subscription_taken_back_is_recorded_too(bolt: BoltScenario) -> None:
    bolt.slack.fail_next("chat.postMessage", status=200, error="not_in_channel")
    await bolt.command("subscribe site:1001")
    taken, made = await bolt.store.audit_log(10)
    assert (made.action, taken.action, taken.details) == (
        "subscribe", "subscription_taken_back", {"reason": "not_in_channel"})


async def test_subscriptions_shows_the_channels_last_changes(bolt: BoltScenario) -> None:
    await bolt.command("subscribe site:1001")
    await bolt.command("subscribe site:1002", channel=OTHER)
    await bolt.command("unsubscribe 1")
    [listing] = bolt.answers(await bolt.command("subscriptions"))
    text = all_text(listing)
    assert "Recent changes here" in text
    assert "<@U0001> removed subscription 1" in text
    assert "<@U0001> subscribed (subscription 1): failed runs on site 1001" in text
    assert "site 1002" not in text  # another channel's


async def test_audit_shows_the_last_n_changes_of_this_channel(bolt: BoltScenario) -> None:
    for site in range(1, 26):
        await bolt.services.subscriptions.store.add_subscription(
            OPS, NoticeFilter(site_id=site), "U0001",
            datetime.now(UTC), audit=lambda s: AuditEntry(s.created_at, "U0001", OPS, "subscribe",
                                                          f"subscription {s.id}"))
    [default] = bolt.answers(await bolt.command("audit"))
    assert "The last 20 changes in this channel" in all_text(default)
    assert "subscription 25" in all_text(default) and "subscription 5)" not in all_text(default)
    [three] = bolt.answers(await bolt.command("audit 3"))
    assert "The last 3 changes" in all_text(three) and "subscription 23" in all_text(three)
    [elsewhere] = bolt.answers(await bolt.command("audit", channel=OTHER))
    assert "No subscription, mute or acknowledgement has been changed in this channel" in all_text(elsewhere)


@pytest.mark.parametrize(("text", "says"), [
    ("audit 0", "`0` is out of range: `/cde audit` shows 1 to 100 changes."),
    ("audit 101", "`101` is out of range"),
    ("audit many", "`many` is not a number of changes"),
    ("audit 5 6", "`/cde audit` takes one number, not 2 words."),
])
async def test_a_bad_audit_count_is_explained(bolt: BoltScenario, text: str, says: str) -> None:
    sent = await bolt.command(text)
    assert says in sent.json()["text"]


async def test_every_stored_string_is_escaped(bolt: BoltScenario) -> None:
    await bolt.store.record_audit(AuditEntry(datetime.now(UTC), "U1> <!channel", OPS, "<!here>",
                                             "<https://evil.example|click> & more"))
    [answer] = bolt.answers(await bolt.command("audit"))
    text = all_text(answer)
    assert "<!channel" not in text and "<!here>" not in text and "<https://evil" not in text
    assert "&lt;!here&gt;" in text and "&amp; more" in text


async def test_help_names_the_audit_command(bolt: BoltScenario) -> None:
    sent = await bolt.command("help")
    assert "/cde audit [N]" in all_text(sent.json())


async def test_with_admins_set_the_audit_is_theirs_and_every_channels(tmp_path: Path) -> None:
    async with bolt_scenario(tmp_path, policy=AccessPolicy(admins=("U0ADMIN",))) as bolt:
        await bolt.command("subscribe site:1001", user="U0ADMIN")
        await bolt.command("subscribe site:1002", user="U0ADMIN", channel=OTHER)
        [refused] = bolt.answers(await bolt.command("audit", user="U0001"))
        assert "Only <@U0ADMIN> may see the audit trail here" in all_text(refused)
        [shown] = bolt.answers(await bolt.command("audit", user="U0ADMIN"))
        text = all_text(shown)
        assert "in every channel" in text
        assert f"in <#{OPS}>" in text and f"in <#{OTHER}>" in text
