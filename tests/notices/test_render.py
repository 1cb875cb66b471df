"""bot/notices/render.py: notices, digests, thread replies and subscription answers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.cde.models import Run, RunFilter
from bot.demo.runs import make_run
from bot.notices import render as rn
from bot.notices.models import Incident, Mute, NoticeFilter, Subscription
from bot.query import ListRuns, Subscribe, parse
from bot.slack.message import Message
from tests.helpers.blockkit import assert_escaped, assert_fits, buttons, walk

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONNECTOR = "019e16f3-bf9c-7485-b60b-ff3407921934"
PROCESS = "019e16f3-bfc3-79c7-bd03-ad208a64bf34"
RUN_ID = "019e16f3-bfc3-7993-bd03-ad2089ed3b04"
RECOVERY_RUN = "019e16f3-bfc3-7993-bd03-ad2089ed3b99"

NASTY = {
    "site_name": "<!channel>",
    "project_name": "<https://evil.example|click me>",
    "account_name": "a & b",
    "connector_version": "<!here>",
}

# ------------------------------------------------------------------------------ helpers


def run(**kwargs: Any) -> Run:
    kwargs.setdefault("state", "failed")
    kwargs.setdefault("started_at", NOW - timedelta(minutes=15))
    kwargs.setdefault("took", timedelta(minutes=5))
    return Run.model_validate(make_run(**kwargs))


def incident(r: Run | None = None, **kwargs: Any) -> Incident:
    r = r or run(run_id=RUN_ID, process_id=PROCESS)
    values: dict[str, Any] = dict(
        id=1, channel_id="C1", site_id=r.site_id, connector_id=r.connector_id,
        message_ts="1700000000.000100", run=r.model_dump(mode="json", by_alias=True),
        failures=1, muted_failures=0, first_failed_at=r.finished_at, last_failed_at=r.finished_at,
    )
    values.update(kwargs)
    return Incident(**values)


def a_mute(**kwargs: Any) -> Mute:
    values: dict[str, Any] = dict(channel_id="C1", site_id=1001, connector_id=CONNECTOR,
                                  until=NOW + timedelta(hours=4), muted_by="U0MUTER")
    values.update(kwargs)
    return Mute(**values)


def mrkdwn_texts(message: Message) -> list[str]:
    return [obj["text"] for obj in walk(message.blocks) if obj.get("type") == "mrkdwn"]


def all_text(message: Message) -> str:
    return "\n".join(mrkdwn_texts(message))


def selects(message: Message) -> dict[str, dict[str, Any]]:
    return {obj["action_id"]: obj for obj in walk(message.blocks) if obj.get("type") == "static_select"}


def interactive(message: Message) -> set[str]:
    return set(buttons(message)) | set(selects(message))


# --------------------------------------------------------------------------- ordinal


@pytest.mark.parametrize(("number", "expected"), [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (10, "10th"), (11, "11th"), (12, "12th"),
    (13, "13th"), (14, "14th"), (20, "20th"), (21, "21st"), (22, "22nd"), (23, "23rd"),
    (101, "101st"), (102, "102nd"), (111, "111th"), (112, "112th"), (113, "113th"),
    (121, "121st"), (1001, "1001st"), (1011, "1011th"),
])
def test_ordinal(number: int, expected: str) -> None:
    assert rn.ordinal(number) == expected


# --------------------------------------------------------------------------- notices


def test_open_notice_shows_what_where_and_the_facts() -> None:
    r = run(run_id=RUN_ID, process_id=PROCESS, exit_code=3)
    message = rn.notice(incident(r))
    assert_fits(message)
    headline = message.blocks[0]["text"]["text"]
    assert headline == f":red_circle: *Failed:* connector `{CONNECTOR}` v1.0.1 on Site 1 (1001)"
    field_texts = [f["text"] for f in message.blocks[1]["fields"]]
    assert field_texts[:3] == ["*Project*\nProject 2 (650)", "*Account*\nAccount 2 (748)",
                               "*Exit code*\n3"]
    assert "*Duration*\n5m 00s" in field_texts
    assert f"*Run*\n`{RUN_ID}`" in field_texts
    assert f"*Process*\n`{PROCESS}`" in field_texts
    started = next(t for t in field_texts if t.startswith("*Started*"))
    assert f"<!date^{int(r.started_at.timestamp())}^" in started
    status = message.blocks[2]["elements"][0]["text"]
    assert status.startswith("Failed <!date^")


def test_open_notice_fallback_text_reads_well() -> None:
    r = run(run_id=RUN_ID, exit_code=3)
    assert rn.notice(incident(r)).text == (
        f"Failed: connector {CONNECTOR} v1.0.1 on Site 1 (1001), exit code 3")
    again = rn.notice(incident(r, failures=3))
    assert again.text == f"Failed: connector {CONNECTOR} v1.0.1 on Site 1 (1001), exit code 3 (3rd time)"
    for message in (rn.notice(incident(r)), again):
        assert "<" not in message.text and "*" not in message.text and ":red_circle:" not in message.text


def test_fallback_of_a_run_with_few_fields() -> None:
    bare = Run.model_validate({"id": RUN_ID, "state": "failed"})
    message = rn.notice(incident(bare))
    assert message.text == "Failed: connector unknown on unknown site"
    assert_fits(message)
    assert "Recent runs" not in str(message.blocks)  # no site or connector to list runs of


def test_open_notice_has_acknowledge_mute_and_recent_runs() -> None:
    message = rn.notice(incident())
    assert buttons(message)[rn.ACTION_ACK]["text"]["text"] == "Acknowledge"
    select = selects(message)[rn.ACTION_MUTE]
    assert select["placeholder"]["text"] == "Mute…"
    assert [(o["text"]["text"], o["value"]) for o in select["options"]] == [
        ("Mute for 1 hour", "1"), ("Mute for 4 hours", "4"), ("Mute for 24 hours", "24")]
    assert interactive(message) == {rn.ACTION_ACK, rn.ACTION_MUTE, rn.ACTION_RECENT}


def test_recent_runs_value_is_a_runs_command_for_the_connector_on_the_site() -> None:
    r = run(site_id=1003, connector_id=CONNECTOR)
    value = buttons(rn.notice(incident(r)))[rn.ACTION_RECENT]["value"]
    parsed = parse(value)
    assert parsed == ListRuns(RunFilter(site_id=1003, connector_id=CONNECTOR))


def test_acknowledged_notice_shows_who_and_drops_the_acknowledge_button() -> None:
    message = rn.notice(incident(acknowledged_by="U0ALICE", acknowledged_at=NOW))
    assert rn.ACTION_ACK not in buttons(message)
    assert interactive(message) == {rn.ACTION_MUTE, rn.ACTION_RECENT}
    status = message.blocks[2]["elements"][0]["text"]
    assert f":eyes: <@U0ALICE> is on it (since <!date^{int(NOW.timestamp())}^" in status
    assert_fits(message)


def test_muted_notice_offers_unmute_and_says_who_muted() -> None:
    mute = a_mute()
    message = rn.notice(incident(), mute=mute)
    select = selects(message)[rn.ACTION_MUTE]
    assert select["placeholder"]["text"] == "Unmute…"
    assert [o["value"] for o in select["options"]] == ["1", "4", "24", "0"]
    assert select["options"][-1]["text"]["text"] == "Unmute"
    status = message.blocks[2]["elements"][0]["text"]
    assert f":mute: Muted by <@U0MUTER> until <!date^{int(mute.until.timestamp())}^" in status
    assert_fits(message)


def test_muted_counts_show_in_the_status() -> None:
    first = NOW - timedelta(hours=2)
    message = rn.notice(incident(failures=4, muted_failures=2, first_failed_at=first,
                                 last_failed_at=first + timedelta(hours=1, minutes=30)))
    status = message.blocks[2]["elements"][0]["text"]
    assert status.startswith("Failed 4 times in 1h 30m (2 while muted)")


def test_recovered_notice() -> None:
    message = rn.notice(incident(failures=2, resolved_at=NOW, resolved_by_run=RECOVERY_RUN,
                                 acknowledged_by=None), mute=a_mute())
    assert message.blocks[0]["text"]["text"].startswith(":large_green_circle: *Recovered:* connector")
    status = message.blocks[2]["elements"][0]["text"]
    assert f"Recovered <!date^{int(NOW.timestamp())}^" in status
    assert f"run `{RECOVERY_RUN}` finished" in status
    assert ":mute:" not in status  # a mute no longer matters once resolved
    assert interactive(message) == {rn.ACTION_RECENT}
    assert message.text.startswith(f"Recovered: connector {CONNECTOR} v1.0.1 on Site 1 (1001)")
    assert_fits(message)


def test_closed_notice() -> None:
    message = rn.notice(incident(resolved_at=NOW))
    assert message.blocks[0]["text"]["text"].startswith(":white_circle: *Closed:* connector")
    status = message.blocks[2]["elements"][0]["text"]
    assert "Closed: no failure for a whole look-back window" in status
    assert interactive(message) == {rn.ACTION_RECENT}
    assert message.text.startswith("Closed: connector")
    assert_fits(message)


def test_link_button_when_links_are_configured() -> None:
    message = rn.notice(incident(), links=lambda r: f"https://cde.example/runs/{r.id}")
    assert buttons(message)[rn.ACTION_OPEN]["url"] == f"https://cde.example/runs/{RUN_ID}"
    assert rn.ACTION_OPEN not in buttons(rn.notice(incident()))


NASTY_STATES = {  # state: (incident fields, first word of the fallback)
    "open": ({}, "Failed"),
    "acknowledged": ({"acknowledged_by": "U1<!channel>", "acknowledged_at": NOW}, "Failed"),
    "recovered": ({"resolved_at": NOW, "resolved_by_run": "<!channel>", "failures": 3}, "Recovered"),
    "closed": ({"resolved_at": NOW}, "Closed"),
}


@pytest.mark.parametrize("state", list(NASTY_STATES))
def test_notice_escapes_every_outside_string(state: str) -> None:
    r = run(exit_code=1, **NASTY)
    fields, first_word = NASTY_STATES[state]
    message = rn.notice(incident(r, **fields),
                        mute=a_mute(muted_by="U2<https://evil|x>"))
    assert_fits(message)
    for text in mrkdwn_texts(message):
        assert_escaped(text)
    assert_escaped(message.text)
    body = all_text(message)
    assert "&lt;!channel&gt;" in body
    assert "&lt;https://evil.example|click me&gt;" in body
    assert "a &amp; b" in body
    assert "v&lt;!here&gt;" in body
    assert message.text.startswith(f"{first_word}: connector ")
    assert "&lt;!channel&gt; (1001)" in message.text
    assert "v&lt;!here&gt;" in message.text


def test_section_fields_escape_names() -> None:
    block = rn.section_fields(run(**NASTY))
    texts = [f["text"] for f in block["fields"]]
    assert "*Project*\n&lt;https://evil.example|click me&gt; (650)" in texts
    assert "*Account*\na &amp; b (748)" in texts


# --------------------------------------------------------------------------- replies


def test_repeat_reply_counts_the_time() -> None:
    first = NOW - timedelta(hours=2)
    r = run(exit_code=2)
    inc = incident(r, failures=3, first_failed_at=first, last_failed_at=first + timedelta(hours=2))
    message = rn.repeat_reply(inc, [r])
    text = message.blocks[0]["text"]["text"]
    assert text.startswith(":repeat: *Failed again* — 3rd time in 2h 00m\n")
    assert f"Run `{r.id}` · exit code 2 · finished <!date^{int(r.finished_at.timestamp())}^" in text
    assert message.text == f"Failed again (3rd time): connector {CONNECTOR} v1.0.1 on Site 1 (1001)"
    assert_fits(message)


def test_repeat_reply_in_a_digest_thread_names_the_connector_and_site() -> None:
    r = run(site_id=1003)
    message = rn.repeat_reply(incident(r, failures=2, in_digest=True), [r])
    assert f"*Failed again* — connector `{CONNECTOR}` v1.0.1 on Feeds DE (1003) — 2nd time" in (
        message.blocks[0]["text"]["text"])


def test_repeat_reply_of_several_runs_lists_each_once() -> None:
    first = NOW - timedelta(hours=2)
    runs = [run(started_at=NOW - timedelta(minutes=m), exit_code=m) for m in (50, 30, 10)]
    inc = incident(runs[-1], failures=5, first_failed_at=first, last_failed_at=runs[-1].finished_at)
    message = rn.repeat_reply(inc, runs)
    assert_fits(message)
    (block,) = message.blocks
    head, *lines = block["text"]["text"].split("\n")
    assert head == ":repeat: *Failed again, 3 more times* — 5 failures in 1h 55m"
    assert lines == [
        f"Run `{r.id}` · exit code {r.exit_code} · finished <!date^{int(r.finished_at.timestamp())}^"
        "{date_short_pretty} {time}|" f"{r.finished_at:%Y-%m-%d %H:%M} UTC>"
        for r in runs
    ]
    assert message.text == f"Failed again 3 more times: connector {CONNECTOR} v1.0.1 on Site 1 (1001)"


def test_repeat_reply_of_several_runs_in_a_digest_thread_names_the_connector_and_site() -> None:
    runs = [run(site_id=1003), run(site_id=1003)]
    message = rn.repeat_reply(incident(runs[-1], failures=4, in_digest=True), runs)
    assert message.blocks[0]["text"]["text"].startswith(
        f":repeat: *Failed again, 2 more times* — connector `{CONNECTOR}` v1.0.1 on Feeds DE (1003) "
        "— 4 failures in ")
    assert message.text == f"Failed again 2 more times: connector {CONNECTOR} v1.0.1 on Feeds DE (1003)"


def test_repeat_reply_of_very_many_runs_stays_within_limits() -> None:
    runs = [run() for _ in range(2000)]
    message = rn.repeat_reply(incident(runs[-1], failures=2001), runs)
    assert_fits(message)
    assert message.blocks[0]["text"]["text"].startswith(
        ":repeat: *Failed again, 2000 more times* — 2001 failures in ")
    assert message.blocks[-1]["type"] == "context"
    assert "`/cde runs` lists them all" in message.blocks[-1]["elements"][0]["text"]
    sections = [block["text"]["text"] for block in message.blocks if block["type"] == "section"]
    listed = [line for text in sections for line in text.split("\n")][1:]
    assert 0 < len(listed) < len(runs)
    # Those shown are whole lines, oldest first, none cut off.
    assert listed == [f"Run `{r.id}` · exit code 1 · finished <!date^{int(r.finished_at.timestamp())}^"
                      "{date_short_pretty} {time}|" f"{r.finished_at:%Y-%m-%d %H:%M} UTC>"
                      for r in runs[: len(listed)]]


def test_repeat_reply_of_runs_that_fit_has_no_note() -> None:
    runs = [run() for _ in range(20)]
    message = rn.repeat_reply(incident(runs[-1], failures=21), runs)
    assert_fits(message)
    assert [block["type"] for block in message.blocks] == ["section"]
    assert [r.id for r in runs if r.id not in all_text(message)] == []


def test_recovered_reply() -> None:
    finished = run(state="finished", run_id=RECOVERY_RUN)
    message = rn.recovered_reply(incident(failures=3, resolved_at=NOW, resolved_by_run=RECOVERY_RUN),
                                 finished)
    text = message.blocks[0]["text"]["text"]
    assert text.startswith(f":large_green_circle: *Recovered*: run `{RECOVERY_RUN}` finished <!date^")
    assert text.endswith("after 3 failures.")
    assert message.text == f"Recovered: connector {CONNECTOR} v1.0.1 on Site 1 (1001)"
    one = rn.recovered_reply(incident(), finished).blocks[0]["text"]["text"]
    assert one.endswith("after 1 failure.")


@pytest.mark.parametrize("state", ["in_digest", "plain"])
def test_replies_escape_outside_strings(state: str) -> None:
    r = run(**NASTY)
    inc = incident(r, failures=2, in_digest=state == "in_digest")
    several = [run(**NASTY), r]
    for message in (rn.repeat_reply(inc, [r]), rn.repeat_reply(replace(inc, failures=3), several),
                    rn.recovered_reply(inc, r)):
        assert_fits(message)
        for text in [*mrkdwn_texts(message), message.text]:
            assert_escaped(text)


def test_mute_replies() -> None:
    until = NOW + timedelta(hours=4)
    muted = rn.muted_notice_reply(4, "U0BOB", until)
    assert muted.text == "Muted for 4 hours"
    assert "<@U0BOB> muted this connector on this site for 4 hours (until <!date^" in all_text(muted)
    assert rn.muted_notice_reply(1, "U0BOB", until).text == "Muted for 1 hour"
    unmuted = rn.muted_notice_reply(0, "U0BOB", until)
    assert unmuted.text == "Unmuted"
    assert "<@U0BOB> unmuted" in all_text(unmuted)
    assert_escaped(all_text(rn.muted_notice_reply(4, "<!channel>", until)))


@pytest.mark.parametrize(("held_back", "says"), [
    (0, "nothing failed while it lasted"),
    (1, "1 failure was counted while it lasted"),
    (3, "3 failures were counted while it lasted"),
])
def test_mute_ended(held_back: int, says: str) -> None:
    message = rn.mute_ended(held_back)
    assert_fits(message)
    assert message.text == f"Mute ended: {says}"
    assert all_text(message) == f":bell: *Mute ended*: {says}."
    assert interactive(message) == set()


# --------------------------------------------------------------------------- digests


def digest_incidents(count: int, **run_kwargs: Any) -> list[Incident]:
    return [incident(run(site_id=2000 + i, **run_kwargs), id=i + 1, failures=1 + i % 3,
                     in_digest=True)
            for i in range(count)]


def digest_lines(message: Message) -> list[str]:
    """The group lines of a digest: every section after the headline, in order."""
    return [line for block in message.blocks[1:] if block["type"] == "section"
            for line in block["text"]["text"].split("\n")]


def digest_context(message: Message) -> str:
    (block,) = [block for block in message.blocks if block["type"] == "context"]
    return "\n".join(element["text"] for element in block["elements"])


def test_digest_counts_and_groups() -> None:
    incidents = digest_incidents(3)  # 1 + 2 + 3 failures
    message = rn.digest(incidents)
    assert_fits(message)
    assert message.blocks[0]["text"]["text"] == (
        ":rotating_light: *6 runs failed* across 3 site and connector pairs")
    lines = message.blocks[1]["text"]["text"].split("\n")
    assert lines == [
        f"• Site 2000 (2000) · connector `{CONNECTOR}` v1.0.1 — :red_circle: 1 failure",
        f"• Site 2001 (2001) · connector `{CONNECTOR}` v1.0.1 — :red_circle: 2 failures",
        f"• Site 2002 (2002) · connector `{CONNECTOR}` v1.0.1 — :red_circle: 3 failures",
    ]
    assert message.text == "6 runs failed across 3 site and connector pairs"
    assert buttons(message)[rn.ACTION_ACK]["text"]["text"] == "Acknowledge all"
    context_text = digest_context(message)
    assert "more pair" not in context_text
    assert "their own notices" not in context_text


def test_digest_counts_failures_not_arguments() -> None:
    incidents = [incident(run(site_id=2000 + i), id=i + 1, failures=f, in_digest=True)
                 for i, f in enumerate((4, 1))]
    message = rn.digest(incidents)
    assert message.blocks[0]["text"]["text"] == (
        ":rotating_light: *5 runs failed* across 2 site and connector pairs")
    assert message.text == "5 runs failed across 2 site and connector pairs"


def test_digest_says_nothing_of_repeats() -> None:
    # Repeats of open incidents go to their own threads; a digest is about first failures.
    assert "their own notices" not in digest_context(rn.digest(digest_incidents(3)))


def test_digest_singular() -> None:
    message = rn.digest(digest_incidents(1))
    assert message.text == "1 run failed across 1 site and connector pair"


def test_digest_shows_states_and_drops_acknowledge_when_nothing_left_to_acknowledge() -> None:
    a, b, c = digest_incidents(3)
    incidents = [replace(a, acknowledged_by="U0ALICE", acknowledged_at=NOW),
                 replace(b, resolved_at=NOW, resolved_by_run=RECOVERY_RUN),
                 replace(c, resolved_at=NOW)]
    message = rn.digest(incidents)
    lines = message.blocks[1]["text"]["text"].split("\n")
    assert lines[0].endswith(":red_circle: 1 failure · :eyes: <@U0ALICE>")
    assert lines[1].endswith(":large_green_circle: recovered")
    assert lines[2].endswith(":white_circle: closed")
    assert rn.ACTION_ACK not in buttons(message)
    assert_fits(message)


def test_digest_with_forty_groups_stays_within_limits() -> None:
    incidents = digest_incidents(40)  # 1, 2, 3, 1, 2, 3, … failures: 79 in all
    message = rn.digest(incidents)
    assert_fits(message)
    lines = digest_lines(message)
    assert len(lines) == rn.DIGEST_GROUP_LINES
    assert [line.split(" · ")[0] for line in lines] == [
        f"• Site {2000 + i} ({2000 + i})" for i in range(rn.DIGEST_GROUP_LINES)]
    assert "…and 25 more pairs." in digest_context(message)
    assert message.text == "79 runs failed across 40 site and connector pairs"


def test_digest_escapes_outside_strings() -> None:
    message = rn.digest(digest_incidents(20, **NASTY))
    assert_fits(message)
    for text in [*mrkdwn_texts(message), message.text]:
        assert_escaped(text)
    assert "&lt;!channel&gt; (2000)" in all_text(message)


def test_digest_with_long_site_names_still_says_how_many_more() -> None:
    message = rn.digest(digest_incidents(40, site_name="Feeds & Catalogue " * 7))
    assert_fits(message)
    lines = digest_lines(message)
    assert len(lines) == rn.DIGEST_GROUP_LINES  # packed into sections, none cut off
    assert all(line.endswith(("1 failure", "2 failures", "3 failures")) for line in lines)
    assert "…and 25 more pairs." in digest_context(message)


def options(select: dict[str, Any]) -> list[tuple[str, str]]:
    return [(o["text"]["text"], o["value"]) for o in select["options"]]


def assert_select_fits(select: dict[str, Any]) -> None:
    """Slack's limits on a static select: 1 to 100 options, texts of at most 75 characters,
    values of at most 150, a placeholder of at most 150; values tell the options apart.
    """
    assert 1 <= len(select["options"]) <= 100
    assert len(select["placeholder"]["text"]) <= 150
    for option in select["options"]:
        assert option["text"]["type"] == "plain_text"
        assert 1 <= len(option["text"]["text"]) <= 75, option
        assert 1 <= len(option["value"]) <= 150, option
    values = [o["value"] for o in select["options"]]
    assert len(set(values)) == len(values)


def test_digest_offers_to_mute_each_pair_for_four_hours() -> None:
    message = rn.digest(digest_incidents(3))
    assert_fits(message)
    assert interactive(message) == {rn.ACTION_ACK, rn.ACTION_MUTE, rn.ACTION_RECENT}
    select = selects(message)[rn.ACTION_MUTE]
    assert_select_fits(select)
    assert select["placeholder"]["text"] == "Mute a pair for 4 h…"
    assert options(select) == [
        (f"Site {2000 + i} · {CONNECTOR[:13]}… v1.0.1", f"{i + 1}:4") for i in range(3)]
    for _, value in options(select):
        incident_id, hours = value.split(":")
        assert incident_id.isdigit() and int(incident_id) > 0
        assert int(hours) == rn.DIGEST_MUTE_HOURS and int(hours) in rn.MUTE_HOURS


def test_digest_mutes_only_open_pairs_that_have_an_id() -> None:
    unsaved, open_one, recovered, closed, taken = digest_incidents(5)
    incidents = [replace(unsaved, id=0), replace(open_one, id=5),
                 replace(recovered, id=6, resolved_at=NOW, resolved_by_run=RECOVERY_RUN),
                 replace(closed, id=7, resolved_at=NOW),
                 replace(taken, id=8, acknowledged_by="U0ALICE", acknowledged_at=NOW)]
    select = selects(rn.digest(incidents))[rn.ACTION_MUTE]
    assert_select_fits(select)
    assert [value for _, value in options(select)] == ["5:4", "8:4"]


def test_digest_of_unsaved_pairs_offers_no_mute() -> None:
    # A digest is first posted before its incidents are saved: nothing to name yet.
    incidents = [replace(i, id=0) for i in digest_incidents(3)]
    message = rn.digest(incidents)
    assert_fits(message)
    assert rn.ACTION_MUTE not in selects(message)
    assert not any(o.get("value", "").startswith("0:") for o in walk(message.blocks))


def test_digest_offers_recent_runs_of_each_pair() -> None:
    incidents = digest_incidents(3)
    message = rn.digest(incidents)
    select = selects(message)[rn.ACTION_RECENT]
    assert_select_fits(select)
    assert select["placeholder"]["text"] == "Recent runs of…"
    assert [text for text, _ in options(select)] == [
        f"Site {2000 + i} · {CONNECTOR[:13]}… v1.0.1" for i in range(3)]
    assert [parse(value) for _, value in options(select)] == [
        ListRuns(RunFilter(site_id=2000 + i, connector_id=CONNECTOR)) for i in range(3)]
    assert all(value.startswith("runs ") for _, value in options(select))


def test_digest_offers_no_recent_runs_of_a_pair_without_site_or_connector() -> None:
    bare = Run.model_validate({"id": RUN_ID, "state": "failed"})
    known = incident(run(site_id=2001), id=2, in_digest=True)
    message = rn.digest([incident(bare, id=1, in_digest=True), known])
    assert_fits(message)
    select = selects(message)[rn.ACTION_RECENT]
    assert [parse(value) for _, value in options(select)] == [
        ListRuns(RunFilter(site_id=2001, connector_id=CONNECTOR))]
    assert rn.ACTION_RECENT not in selects(rn.digest([incident(bare, id=1, in_digest=True)]))


def test_digest_selects_of_many_pairs_with_long_names_stay_within_limits() -> None:
    incidents = digest_incidents(120, **{**NASTY, "site_name": "Feeds & Catalogue <!here> " * 7})
    message = rn.digest(incidents)
    assert_fits(message)
    mute_select = selects(message)[rn.ACTION_MUTE]
    recent_select = selects(message)[rn.ACTION_RECENT]
    for select in (mute_select, recent_select):
        assert_select_fits(select)
        assert len(select["options"]) == 100
    assert [value for _, value in options(mute_select)] == [f"{i}:4" for i in range(1, 101)]
    assert [parse(value) for _, value in options(recent_select)] == [
        ListRuns(RunFilter(site_id=2000 + i, connector_id=CONNECTOR)) for i in range(100)]


def reply_lines(reply: Message) -> list[str]:
    """The run lines of one digest-list reply, across all its sections."""
    return [line for block in reply.blocks for line in block["text"]["text"].split("\n")]


def test_digest_list_chunks_a_hundred_runs() -> None:
    runs = [run(site_id=2000 + i) for i in range(100)]
    replies = rn.digest_list(runs)
    assert len(replies) >= 1
    for reply in replies:
        assert_fits(reply)
        assert 1 <= len(reply.blocks) <= rn.DIGEST_SECTIONS_PER_REPLY
        assert all(block["type"] == "section" for block in reply.blocks)
        shown = len(reply_lines(reply))
        assert reply.text == f"{shown} failed {'run' if shown == 1 else 'runs'} of 100"
    listed = [line for reply in replies for line in reply_lines(reply)]
    assert len(listed) == 100
    assert [re.search(r"`([0-9a-f-]{36})`", line).group(1) for line in listed] == [r.id for r in runs]
    everything = "\n".join(listed)
    assert [r.id for r in runs if everything.count(r.id) != 1] == []
    assert listed[0] == (f"• `{runs[0].id}` · Site 2000 (2000) · connector `{CONNECTOR}` v1.0.1 · "
                         f"exit code 1 · <!date^{int(runs[0].finished_at.timestamp())}^"
                         "{date_short_pretty} {time}|2025-03-01 11:50 UTC>")


def test_digest_list_of_nothing_and_of_one() -> None:
    assert rn.digest_list([]) == []
    (only,) = rn.digest_list([run()])
    assert only.text == "1 failed run of 1"
    assert_fits(only)
    assert len(reply_lines(only)) == 1


def test_digest_list_escapes_outside_strings() -> None:
    for reply in rn.digest_list([run(**NASTY) for _ in range(8)]):
        assert_fits(reply)
        for text in [*mrkdwn_texts(reply), reply.text]:
            assert_escaped(text)


def test_digest_list_lists_every_run_with_realistic_site_names() -> None:
    runs = [run(site_id=2000 + i, site_name="Feeds Germany - Main Catalogue") for i in range(100)]
    replies = rn.digest_list(runs)
    for reply in replies:
        assert_fits(reply)
    text = "\n".join(line for reply in replies for line in reply_lines(reply))
    assert [r.id for r in runs if r.id not in text] == []


# --------------------------------------------------------------------- subscriptions


def test_describe_empty_filter() -> None:
    assert rn.describe(NoticeFilter()) == "every failed run the bot's CDE account can see"


def test_describe_every_field_in_words() -> None:
    full = NoticeFilter(site_id=1001, connector_id=CONNECTOR, connector_version="1.0.1",
                        process_id=PROCESS, project_id=650, account_id=748)
    assert rn.describe(full) == (
        f"failed runs of connector `{CONNECTOR}` version 1.0.1 on site 1001 in project 650 "
        f"for account 748 of process `{PROCESS}`")


@pytest.mark.parametrize(("notice_filter", "expected"), [
    (NoticeFilter(site_id=1001), "failed runs on site 1001"),
    (NoticeFilter(project_id=650), "failed runs in project 650"),
    (NoticeFilter(account_id=748), "failed runs for account 748"),
    (NoticeFilter(connector_version="2.0.0"), "failed runs version 2.0.0"),
    (NoticeFilter(process_id=PROCESS), f"failed runs of process `{PROCESS}`"),
])
def test_describe_single_fields(notice_filter: NoticeFilter, expected: str) -> None:
    assert rn.describe(notice_filter) == expected


def test_describe_escapes() -> None:
    text = rn.describe(NoticeFilter(connector_id="<!channel>", connector_version="<!here>&"))
    assert_escaped(text)
    assert "&lt;!here&gt;&amp;" in text


def subscription(sub_id: int, **filters: Any) -> Subscription:
    return Subscription(sub_id, "C1", NoticeFilter(**filters), "U0ALICE", NOW - timedelta(days=1))


def test_subscription_list_empty() -> None:
    message = rn.subscription_list([])
    assert message.text == "This channel has no subscriptions"
    assert "`/cde subscribe site:1001`" in all_text(message)
    assert_fits(message)


def test_subscription_list_names_each_with_its_id() -> None:
    subs = [subscription(3, site_id=1001), subscription(7), subscription(12, connector_id=CONNECTOR)]
    message = rn.subscription_list(subs)
    assert_fits(message)
    assert message.text == "This channel has 3 subscriptions"
    lines = message.blocks[1]["text"]["text"].split("\n")
    assert [line.split(" · ")[0] for line in lines] == ["`3`", "`7`", "`12`"]
    assert lines[0].startswith("`3` · failed runs on site 1001 · by <@U0ALICE> <!date^")
    assert "every failed run the bot's CDE account can see" in lines[1]
    assert message.blocks[-1]["type"] == "context"
    assert "`/cde unsubscribe &lt;id&gt;`" in message.blocks[-1]["elements"][0]["text"]
    assert rn.subscription_list(subs[:1]).text == "This channel has 1 subscription"


def test_subscription_list_with_many_stays_within_limits() -> None:
    subs = [subscription(i, site_id=1000 + i, connector_id=CONNECTOR) for i in range(1, 101)]
    message = rn.subscription_list(subs)
    assert_fits(message)
    assert message.text == "This channel has 100 subscriptions"


def test_subscription_list_shows_every_id_of_thirty() -> None:
    subs = [subscription(i, site_id=1000 + i, connector_id=CONNECTOR) for i in range(1, 31)]
    text = all_text(rn.subscription_list(subs))
    assert [s.id for s in subs if f"`{s.id}`" not in text] == []


def test_subscription_answers_escape() -> None:
    sub = Subscription(4, "C1", NoticeFilter(connector_version="<!here>"), "<!channel>", NOW)
    for message in (rn.subscribed(sub), rn.subscription_list([sub]),
                    rn.unsubscribed("<!channel>", 1, 4)):
        assert_fits(message)
        for text in [*mrkdwn_texts(message), message.text]:
            assert_escaped(text)
        assert "&lt;!channel&gt;" in all_text(message)
    assert "version &lt;!here&gt;" in all_text(rn.subscription_list([sub]))


@pytest.mark.parametrize(("which", "placeholder"), [
    ("subscription_list", "`/cde unsubscribe &lt;id&gt;`"),
    ("confirm_subscribe_all", "`connector:&lt;uuid&gt;`"),
], ids=["subscription_list", "confirm_subscribe_all"])
def test_own_placeholders_are_escaped_in_mrkdwn(which: str, placeholder: str) -> None:
    # Slack parses <...> even inside backticks, so the placeholders must be escaped.
    message = (rn.subscription_list([subscription(1)]) if which == "subscription_list"
               else rn.confirm_subscribe_all())
    for text in mrkdwn_texts(message):
        assert_escaped(text)
    assert placeholder in all_text(message)


def test_subscribed_and_unsubscribed() -> None:
    message = rn.subscribed(subscription(5, site_id=1001))
    assert message.text == "Subscribed this channel (#5)"
    text = all_text(message)
    assert "<@U0ALICE> subscribed this channel to failed runs on site 1001." in text
    assert "`/cde unsubscribe 5`" in text
    assert rn.unsubscribed("U0BOB", 1, 5).text == "Unsubscribed subscription `5`"
    assert rn.unsubscribed("U0BOB", 3, None).text == "Unsubscribed all 3 subscriptions"


def test_confirm_subscribe_all_button_is_the_subscribe_all_action() -> None:
    # The listener of this action subscribes to everything whatever the value; the value
    # still reads as the same request, an empty filter.
    message = rn.confirm_subscribe_all()
    assert_fits(message)
    assert interactive(message) == {rn.ACTION_SUBSCRIBE_ALL}
    assert rn.ACTION_SUBSCRIBE_ALL == "subscribe_all"
    button = buttons(message)[rn.ACTION_SUBSCRIBE_ALL]
    assert button["style"] == "danger"
    assert parse(button["value"]) == Subscribe(NoticeFilter())


def test_outage_messages_escape_the_error() -> None:
    since = NOW - timedelta(minutes=12)
    alert = rn.outage_alert(since, "<!channel> down & out", NOW)
    assert alert.text == "The CDE API has been unreachable for 12m 00s"
    assert "&lt;!channel&gt; down &amp; out" in all_text(alert)
    over = rn.outage_over(since, NOW)
    assert over.text == "The CDE API is reachable again after 12m 00s"
    for message in (alert, over):
        assert_fits(message)
