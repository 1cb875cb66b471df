"""bot/notices/triage.py and bot/notices/models.py: what is news, to whom, and how it is told (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.cde.models import Run
from bot.demo.runs import make_run
from bot.notices import triage
from bot.notices.models import Incident, Mute, NoticeFilter, Subscription
from bot.notices.triage import (
    Digest,
    Expire,
    OpenIncident,
    PollFacts,
    Recover,
    Repeat,
    Suppress,
    announced_pairs,
    new_failures,
    plan_expiries,
    plan_failures,
    plan_recoveries,
    recovery_keys,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
CONNECTOR = "019e16f3-bf9c-7485-b60b-ff3407921934"
OTHER_CONNECTOR = "019e16f3-bfa8-7390-9e63-3354f9aa2939"
PROCESS = "019e16f3-bfc3-79c7-bd03-ad208a64bf34"
OTHER_PROCESS = "019e16f3-bfc3-79c7-bd03-ad208a64bf99"
TOOK = timedelta(minutes=5)

# ------------------------------------------------------------------------------ helpers


def run(
    *, failed_ago: timedelta = timedelta(minutes=10), state: str = "failed", **kwargs: Any
) -> Run:
    """A run that ended `failed_ago` before NOW (after `took`, five minutes by default)."""
    kwargs.setdefault("took", TOOK)
    kwargs.setdefault("started_at", NOW - failed_ago - kwargs["took"])
    return Run.model_validate(make_run(state=state, **kwargs))


def sub(
    channel: str = "C1",
    *,
    created_ago: timedelta = timedelta(hours=2),
    sub_id: int = 1,
    **filters: Any,
) -> Subscription:
    return Subscription(sub_id, channel, NoticeFilter(**filters), "U1", NOW - created_ago)


def facts(
    runs: list[Run],
    subs: list[Subscription] | None = None,
    *,
    announced: set[tuple[str, str]] | None = None,
    open_incidents: list[Incident] | None = None,
    mutes: list[Mute] | None = None,
    threshold: int = 5,
    first_seen: dict[str, datetime] | None = None,
) -> PollFacts:
    return PollFacts(
        now=NOW, window=WINDOW, failed_runs=runs,
        subscriptions=[sub()] if subs is None else subs,
        announced=announced or set(), open_incidents=open_incidents or [], mutes=mutes or [],
        digest_threshold=threshold, first_seen=first_seen or {},
    )


def raw(r: Run) -> dict[str, Any]:
    return r.model_dump(mode="json", by_alias=True)


def open_incident(r: Run, channel: str = "C1", *, failures: int = 1, **kwargs: Any) -> Incident:
    when = r.finished_at or NOW
    values: dict[str, Any] = dict(
        id=7, channel_id=channel, site_id=r.site_id, connector_id=r.connector_id,
        message_ts="1700000000.000100", run=raw(r), failures=failures, muted_failures=0,
        first_failed_at=when, last_failed_at=when,
    )
    values.update(kwargs)
    return Incident(**values)


def mute(channel: str = "C1", site_id: int = 1001, connector_id: str = CONNECTOR,
         until: datetime = NOW + timedelta(hours=1)) -> Mute:
    return Mute(channel, site_id, connector_id, until, "U9")


def unfinished(r: Run, **update: Any) -> Run:
    """`r` as the API may tell a failed run: without a `finished-at`."""
    return r.model_copy(update={"finished_at": None, **update})


def ids(runs: list[Run] | tuple[Run, ...]) -> list[str]:
    return [r.id for r in runs]


def of_type(actions: list[triage.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


# ----------------------------------------------------------------- NoticeFilter.matches

FILTER_CASES = [
    # (filter field, value that matches, make_run kwargs of a run that does not match)
    ("site_id", 1001, {"site_id": 1002}),
    ("connector_id", CONNECTOR, {"connector_id": OTHER_CONNECTOR}),
    ("connector_version", "1.0.1", {"connector_version": "1.0.2"}),
    ("process_id", PROCESS, {"process_id": OTHER_PROCESS}),
    ("project_id", 650, {"project_id": 651}),
    ("account_id", 748, {"account_id": 749}),
]


@pytest.mark.parametrize(("field", "value", "other"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filter_matches_on_each_field(field: str, value: Any, other: dict[str, Any]) -> None:
    notice_filter = NoticeFilter(**{field: value})
    assert notice_filter.matches(run(process_id=PROCESS))
    assert not notice_filter.matches(run(**{"process_id": PROCESS, **other}))


def test_filter_with_every_field_needs_every_field_to_match() -> None:
    full = NoticeFilter(site_id=1001, connector_id=CONNECTOR, connector_version="1.0.1",
                        process_id=PROCESS, project_id=650, account_id=748)
    assert full.matches(run(process_id=PROCESS))
    for _, _, other in FILTER_CASES:
        assert not full.matches(run(**{"process_id": PROCESS, **other})), other


def test_empty_filter_matches_every_run_even_one_without_fields() -> None:
    bare = Run.model_validate({"id": "r-1", "state": "failed"})
    assert NoticeFilter().is_empty
    assert NoticeFilter().matches(bare)
    assert NoticeFilter().matches(run(site_id=4242))
    assert not NoticeFilter(site_id=1001).matches(bare)


def test_filter_round_trips_through_its_dict_and_ignores_unknown_keys() -> None:
    notice_filter = NoticeFilter(site_id=1001, connector_version="1.0.1")
    assert notice_filter.as_dict() == {"site_id": 1001, "connector_version": "1.0.1"}
    assert NoticeFilter.from_dict(notice_filter.as_dict()) == notice_filter
    assert NoticeFilter.from_dict({"site_id": 5, "state": "failed"}) == NoticeFilter(site_id=5)
    assert not notice_filter.is_empty


# ------------------------------------------------------------------------ new_failures


def test_only_failed_runs_are_news() -> None:
    failed = run()
    finished = run(state="finished")
    running = run(state="running")
    unknown = run(state="killed")
    assert new_failures(facts([failed, finished, running, unknown])) == {"C1": [failed]}


@pytest.mark.parametrize(("field", "value", "other"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_subscriptions_are_matched_on_each_filter_field(field: str, value: Any, other: dict) -> None:
    hit = run(process_id=PROCESS)
    miss = run(**{"process_id": PROCESS, **other})
    found = new_failures(facts([hit, miss], [sub(**{field: value})]))
    assert found == {"C1": [hit]}


def test_empty_filter_subscription_gets_every_failure() -> None:
    runs = [run(site_id=1001), run(site_id=1002, connector_id=OTHER_CONNECTOR), run(project_id=1)]
    found = new_failures(facts(runs, [sub()]))
    assert sorted(ids(found["C1"])) == sorted(ids(runs))


def test_no_subscription_no_news() -> None:
    assert new_failures(facts([run()], [])) == {}


def test_run_already_announced_in_a_channel_is_skipped_there_only() -> None:
    r = run()
    found = new_failures(facts([r], [sub("C1"), sub("C2", sub_id=2)], announced={("C1", r.id)}))
    assert found == {"C2": [r]}


def test_everything_announced_gives_nothing() -> None:
    r1, r2 = run(), run(site_id=1002)
    announced = {("C1", r1.id), ("C1", r2.id)}
    assert new_failures(facts([r1, r2], announced=announced)) == {}


def test_failure_before_the_subscription_is_not_news_one_after_is() -> None:
    subscription = sub(created_ago=timedelta(hours=1))
    before = run(failed_ago=timedelta(hours=1, minutes=1))
    after = run(failed_ago=timedelta(minutes=59))
    assert new_failures(facts([before, after], [subscription])) == {"C1": [after]}


def test_failure_in_the_same_second_as_the_subscription_counts_as_after() -> None:
    # The API's times have whole seconds; a subscription made at 11:50:00.7 sees 11:50:00.
    subscription = sub(created_ago=timedelta(minutes=10) - timedelta(milliseconds=700))
    same_second = run(failed_ago=timedelta(minutes=10))
    second_before = run(failed_ago=timedelta(minutes=10, seconds=1))
    assert new_failures(facts([same_second, second_before], [subscription])) == {"C1": [same_second]}


def test_run_started_before_subscribing_that_fails_after_is_news() -> None:
    subscription = sub(created_ago=timedelta(minutes=30))
    # Created and started an hour ago, failed ten minutes ago.
    r = run(started_at=NOW - timedelta(hours=1), took=timedelta(minutes=50))
    assert r.created_at < subscription.created_at < r.finished_at
    assert new_failures(facts([r], [subscription])) == {"C1": [r]}


def test_pre_existing_failure_is_judged_per_subscription() -> None:
    r = run(failed_ago=timedelta(hours=1))
    old = sub("C1", created_ago=timedelta(hours=3))
    new = sub("C2", created_ago=timedelta(minutes=5), sub_id=2)
    assert new_failures(facts([r], [old, new])) == {"C1": [r]}


def test_late_failure_with_an_old_created_at_inside_the_window_is_news() -> None:
    created = NOW - timedelta(hours=20)
    r = run(started_at=created, created_at=created, took=timedelta(hours=19, minutes=50))
    assert r.finished_at == NOW - timedelta(minutes=10)
    assert new_failures(facts([r], [sub(created_ago=timedelta(hours=1))])) == {"C1": [r]}


def test_created_at_older_than_the_window_is_ignored() -> None:
    created = NOW - WINDOW - timedelta(minutes=1)
    r = run(started_at=created, created_at=created, took=WINDOW)  # failed a minute ago
    assert new_failures(facts([r], [sub(created_ago=timedelta(days=3))])) == {}


def test_created_at_exactly_at_the_window_edge_is_kept() -> None:
    created = NOW - WINDOW
    r = run(started_at=created, created_at=created, took=timedelta(hours=23))
    assert new_failures(facts([r], [sub(created_ago=timedelta(days=3))])) == {"C1": [r]}


def test_failed_run_without_any_times_counts_as_failing_now() -> None:
    bare = Run.model_validate({"id": "r-bare", "state": "failed"})
    assert new_failures(facts([bare], [sub(created_ago=timedelta(seconds=1))])) == {"C1": [bare]}


def test_one_notice_per_channel_when_two_of_its_subscriptions_match() -> None:
    r = run()
    subs = [sub("C1"), sub("C1", sub_id=2, site_id=1001), sub("C1", sub_id=3, connector_id=CONNECTOR)]
    assert new_failures(facts([r], subs)) == {"C1": [r]}


def test_channels_are_independent() -> None:
    a = run(site_id=1001)
    b = run(site_id=1002)
    both = run(site_id=1001, connector_id=OTHER_CONNECTOR)
    subs = [sub("C1", site_id=1001), sub("C2", sub_id=2, site_id=1002),
            sub("C3", sub_id=3, connector_id=OTHER_CONNECTOR)]
    found = new_failures(facts([a, b, both], subs))
    assert {channel: sorted(ids(runs)) for channel, runs in found.items()} == {
        "C1": sorted([a.id, both.id]), "C2": [b.id], "C3": [both.id],
    }


def test_runs_come_oldest_failure_first() -> None:
    newest = run(failed_ago=timedelta(minutes=1))
    oldest = run(failed_ago=timedelta(minutes=30))
    middle = run(failed_ago=timedelta(minutes=10))
    assert new_failures(facts([newest, oldest, middle]))["C1"] == [oldest, middle, newest]


def test_failed_at_is_finished_at_or_else_the_default() -> None:
    r = run()
    assert triage.failed_at(r, NOW) == r.finished_at
    # Not started-at nor created-at: a run that started long ago may have failed just now.
    no_end = unfinished(r)
    assert no_end.started_at is not None and no_end.created_at is not None
    assert triage.failed_at(no_end, NOW) == NOW
    assert triage.failed_at(no_end, NOW - timedelta(minutes=3)) == NOW - timedelta(minutes=3)
    bare = Run.model_validate({"id": "r-bare", "state": "failed"})
    assert triage.failed_at(bare, NOW) == NOW


def test_poll_facts_tell_when_a_run_failed() -> None:
    seen = NOW - timedelta(minutes=7)
    finished = run()
    seen_before = unfinished(run())
    seen_now = unfinished(run())
    poll = facts([], first_seen={seen_before.id: seen, finished.id: NOW - timedelta(hours=5)})
    assert poll.when(finished) == finished.finished_at  # finished-at wins over first seen
    assert poll.when(seen_before) == seen
    assert poll.when(seen_now) == NOW
    assert facts([]).first_seen == {}


def test_run_without_finished_at_that_started_before_subscribing_is_news() -> None:
    subscription = sub(created_ago=timedelta(minutes=30))
    r = unfinished(run(started_at=NOW - timedelta(hours=1), took=timedelta(minutes=50)))
    assert r.started_at < subscription.created_at
    assert new_failures(facts([r], [subscription])) == {"C1": [r]}
    seen_after = {r.id: NOW - timedelta(minutes=20)}
    assert new_failures(facts([r], [subscription], first_seen=seen_after)) == {"C1": [r]}


def test_run_without_finished_at_first_seen_before_subscribing_is_not_news() -> None:
    subscription = sub(created_ago=timedelta(minutes=30))
    r = unfinished(run(started_at=NOW - timedelta(hours=1), took=timedelta(minutes=50)))
    assert new_failures(facts([r], [subscription], first_seen={r.id: NOW - timedelta(minutes=31)})) == {}


def test_without_created_at_the_window_applies_to_the_failure() -> None:
    subscription = sub(created_ago=timedelta(days=3))
    inside = run(failed_ago=WINDOW - timedelta(minutes=1)).model_copy(update={"created_at": None})
    outside = run(failed_ago=WINDOW + timedelta(minutes=1)).model_copy(update={"created_at": None})
    edge = run(failed_ago=WINDOW).model_copy(update={"created_at": None})
    assert new_failures(facts([inside, outside, edge], [subscription])) == {"C1": [edge, inside]}


def test_without_created_at_or_finished_at_the_window_applies_to_first_seen() -> None:
    subscription = sub(created_ago=timedelta(days=3))
    old = unfinished(run(failed_ago=timedelta(hours=1)), created_at=None)
    recent = unfinished(run(failed_ago=timedelta(hours=1)), created_at=None)
    first_seen = {old.id: NOW - WINDOW - timedelta(minutes=1), recent.id: NOW - WINDOW + timedelta(minutes=1)}
    assert new_failures(facts([old, recent], [subscription], first_seen=first_seen)) == {"C1": [recent]}


def test_runs_without_finished_at_are_ordered_by_first_seen() -> None:
    early = unfinished(run(failed_ago=timedelta(minutes=1)))
    late = unfinished(run(failed_ago=timedelta(minutes=50)))
    middle = run(failed_ago=timedelta(minutes=10))
    first_seen = {early.id: NOW - timedelta(minutes=30), late.id: NOW - timedelta(minutes=2)}
    found = new_failures(facts([late, middle, early], first_seen=first_seen))
    assert found["C1"] == [early, middle, late]


# ------------------------------------------------------------------------ plan_failures


def test_first_failure_opens_an_incident() -> None:
    r = run(exit_code=3)
    actions = plan_failures(facts([r]))
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, OpenIncident)
    assert action.runs == (r,)
    incident = action.incident
    assert (incident.id, incident.channel_id, incident.message_ts) == (0, "C1", "")
    assert (incident.site_id, incident.connector_id) == (1001, CONNECTOR)
    assert incident.run == raw(r)
    assert (incident.failures, incident.muted_failures) == (1, 0)
    assert incident.first_failed_at == incident.last_failed_at == r.finished_at
    assert incident.is_open and not incident.in_digest and incident.acknowledged_by is None
    assert triage.incident_run(incident) == r


def test_several_failures_of_one_connector_and_site_open_one_incident() -> None:
    runs = [run(failed_ago=timedelta(minutes=m)) for m in (3, 30, 15)]
    actions = plan_failures(facts(runs))
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, OpenIncident)
    oldest_first = sorted(runs, key=lambda r: r.finished_at)
    assert action.runs == tuple(oldest_first)
    assert action.incident.failures == 3
    assert action.incident.first_failed_at == oldest_first[0].finished_at
    assert action.incident.last_failed_at == oldest_first[-1].finished_at
    assert action.incident.run == raw(oldest_first[-1])
    assert announced_pairs(action) == [("C1", r.id) for r in oldest_first]


def test_different_connectors_or_sites_open_separate_incidents() -> None:
    runs = [run(), run(site_id=1002), run(connector_id=OTHER_CONNECTOR)]
    actions = plan_failures(facts(runs))
    assert all(isinstance(a, OpenIncident) for a in actions)
    keys = {triage.key_of(a.incident) for a in actions}
    assert keys == {(1001, CONNECTOR), (1002, CONNECTOR), (1001, OTHER_CONNECTOR)}
    assert all(a.incident.failures == 1 for a in actions)


def test_failure_with_an_open_incident_is_a_repeat() -> None:
    first = run(failed_ago=timedelta(hours=2))
    incident = open_incident(first, failures=2, first_failed_at=first.finished_at - timedelta(hours=1))
    again = run(failed_ago=timedelta(minutes=5))
    actions = plan_failures(facts([again], open_incidents=[incident]))
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Repeat)
    assert action.runs == (again,)
    updated = action.incident
    assert updated.id == incident.id and updated.message_ts == incident.message_ts
    assert updated.failures == 3
    assert updated.last_failed_at == again.finished_at
    assert updated.first_failed_at == incident.first_failed_at
    assert updated.run == raw(again)
    assert updated.muted_failures == 0
    assert announced_pairs(action) == [("C1", again.id)]


def test_repeats_in_one_poll_make_one_repeat_oldest_first() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=3)))
    r1, r2, r3 = (run(failed_ago=timedelta(minutes=m)) for m in (20, 2, 11))
    actions = plan_failures(facts([r2, r1, r3], open_incidents=[incident]))
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Repeat)
    assert action.runs == (r1, r3, r2)
    updated = action.incident
    assert updated.id == incident.id and updated.failures == 4
    assert updated.first_failed_at == incident.first_failed_at
    assert updated.last_failed_at == r2.finished_at
    assert updated.run == raw(r2)
    assert announced_pairs(action) == [("C1", r.id) for r in (r1, r3, r2)]


def test_repeats_of_two_incidents_make_one_repeat_each() -> None:
    here = open_incident(run(failed_ago=timedelta(hours=3)), id=7)
    there = open_incident(run(site_id=1002, failed_ago=timedelta(hours=3)), id=8)
    runs = [run(failed_ago=timedelta(minutes=m)) for m in (30, 10)]
    other = run(site_id=1002, failed_ago=timedelta(minutes=20))
    actions = plan_failures(facts([*runs, other], open_incidents=[here, there]))
    assert [type(a) for a in actions] == [Repeat, Repeat]
    by_id = {a.incident.id: a for a in actions}
    assert (by_id[7].runs, by_id[7].incident.failures) == (tuple(runs), 3)
    assert (by_id[8].runs, by_id[8].incident.failures) == ((other,), 2)


def test_repeat_of_a_run_without_finished_at_is_dated_when_first_seen() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=3)))
    seen = NOW - timedelta(minutes=4)
    r = unfinished(run(failed_ago=timedelta(minutes=50)))
    (action,) = plan_failures(facts([r], open_incidents=[incident], first_seen={r.id: seen}))
    assert isinstance(action, Repeat)
    assert action.incident.last_failed_at == seen
    assert action.incident.run == raw(r)


def test_first_failures_without_finished_at_are_dated_when_first_seen() -> None:
    older, newer = unfinished(run()), unfinished(run())
    first_seen = {older.id: NOW - timedelta(minutes=40), newer.id: NOW - timedelta(minutes=3)}
    (action,) = plan_failures(facts([newer, older], first_seen=first_seen))
    assert isinstance(action, OpenIncident)
    assert action.runs == (older, newer)
    assert action.incident.first_failed_at == NOW - timedelta(minutes=40)
    assert action.incident.last_failed_at == NOW - timedelta(minutes=3)


def test_an_older_repeat_counts_but_keeps_the_latest_run() -> None:
    latest = run(failed_ago=timedelta(minutes=5))
    incident = open_incident(latest)
    older = run(failed_ago=timedelta(minutes=50))  # a slow API told it late
    (action,) = plan_failures(facts([older], open_incidents=[incident]))
    assert isinstance(action, Repeat)
    assert action.incident.failures == 2
    assert action.incident.last_failed_at == latest.finished_at
    assert action.incident.run == raw(latest)


def test_with_failures_counts_each_run_and_keeps_the_latest() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=1)), failures=2, muted_failures=1)
    newest, older = run(failed_ago=timedelta(minutes=5)), run(failed_ago=timedelta(minutes=30))
    seen = {newest.id: NOW - timedelta(minutes=1), older.id: NOW - timedelta(minutes=40)}
    updated = triage.with_failures(incident, [newest, older], lambda r: seen[r.id])
    assert (updated.failures, updated.muted_failures) == (4, 1)
    assert updated.last_failed_at == NOW - timedelta(minutes=1)  # from `when`, not finished-at
    assert updated.run == raw(newest)
    assert updated.first_failed_at == incident.first_failed_at
    muted = triage.with_failures(incident, [newest, older], lambda r: seen[r.id], muted=True)
    assert (muted.failures, muted.muted_failures) == (4, 3)
    assert triage.with_failures(incident, [], lambda r: NOW) == incident


def test_open_incident_in_another_channel_does_not_make_a_repeat_here() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=1)), channel="C2")
    r = run()
    (action,) = plan_failures(facts([r], [sub("C1")], open_incidents=[incident]))
    assert isinstance(action, OpenIncident)
    assert action.incident.channel_id == "C1"


def test_open_incident_of_another_connector_does_not_make_a_repeat() -> None:
    incident = open_incident(run(connector_id=OTHER_CONNECTOR, failed_ago=timedelta(hours=1)))
    (action,) = plan_failures(facts([run()], open_incidents=[incident]))
    assert isinstance(action, OpenIncident)


def test_muted_failure_without_an_incident_is_suppressed() -> None:
    r = run()
    actions = plan_failures(facts([r], mutes=[mute()]))
    assert actions == [Suppress("C1", r, None)]
    assert announced_pairs(actions[0]) == [("C1", r.id)]


def test_muted_failure_with_an_open_incident_updates_its_counts() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=1)))
    r = run()
    (action,) = plan_failures(facts([r], open_incidents=[incident], mutes=[mute()]))
    assert isinstance(action, Suppress)
    assert action.channel_id == "C1" and action.run == r
    assert action.incident is not None
    assert (action.incident.failures, action.incident.muted_failures) == (2, 1)
    assert action.incident.last_failed_at == r.finished_at
    assert action.incident.id == incident.id


def test_two_muted_failures_count_twice() -> None:
    incident = open_incident(run(failed_ago=timedelta(hours=1)))
    runs = [run(failed_ago=timedelta(minutes=20)), run(failed_ago=timedelta(minutes=2))]
    actions = plan_failures(facts(runs, open_incidents=[incident], mutes=[mute()]))
    assert [type(a) for a in actions] == [Suppress, Suppress]
    assert [(a.incident.failures, a.incident.muted_failures) for a in actions] == [(2, 1), (3, 2)]


@pytest.mark.parametrize("the_mute", [
    mute(until=NOW),  # ended just now
    mute(until=NOW - timedelta(minutes=1)),
    mute(channel="C2"),
    mute(site_id=1002),
    mute(connector_id=OTHER_CONNECTOR),
], ids=["ends-now", "expired", "other-channel", "other-site", "other-connector"])
def test_mutes_that_do_not_apply(the_mute: Mute) -> None:
    (action,) = plan_failures(facts([run()], mutes=[the_mute]))
    assert isinstance(action, OpenIncident)


def test_mute_is_per_channel() -> None:
    r = run()
    actions = plan_failures(facts([r], [sub("C1"), sub("C2", sub_id=2)], mutes=[mute("C1")]))
    assert {(type(a), triage.announced_pairs(a)[0][0]) for a in actions} == {
        (Suppress, "C1"), (OpenIncident, "C2")}


def test_more_than_the_threshold_gives_one_digest() -> None:
    existing = open_incident(run(site_id=1003, failed_ago=timedelta(hours=1)))
    first_failures = ([run(site_id=1001, failed_ago=timedelta(minutes=m)) for m in (40, 30, 20)]
                      + [run(site_id=1002, failed_ago=timedelta(minutes=m)) for m in (35, 25, 15)])
    repeat = run(site_id=1003, failed_ago=timedelta(minutes=5))
    actions = plan_failures(facts([*first_failures, repeat], open_incidents=[existing]))
    assert len(actions) == 2
    (digest,) = of_type(actions, Digest)
    assert digest.channel_id == "C1"
    assert sorted(ids(digest.runs)) == sorted(ids(first_failures))
    new = {i.site_id: i for i in digest.new_incidents}
    assert set(new) == {1001, 1002} and len(digest.new_incidents) == 2
    assert all(i.in_digest and i.id == 0 and i.channel_id == "C1" for i in new.values())
    assert (new[1001].failures, new[1002].failures) == (3, 3)
    assert new[1001].first_failed_at == first_failures[0].finished_at
    assert new[1001].last_failed_at == first_failures[2].finished_at
    assert sorted(announced_pairs(digest)) == sorted(("C1", r.id) for r in first_failures)
    # The failure of a connector already failing here goes to its incident's thread.
    (action,) = of_type(actions, Repeat)
    assert action.runs == (repeat,)
    assert action.incident.id == existing.id and action.incident.failures == 2
    assert action.incident.last_failed_at == repeat.finished_at
    assert not action.incident.in_digest
    assert announced_pairs(action) == [("C1", repeat.id)]


def test_digest_runs_come_oldest_failure_first() -> None:
    # Failures of two pairs, interleaved in time: the digest lists them as they failed.
    runs = ([run(site_id=1001, failed_ago=timedelta(minutes=m)) for m in (40, 30, 20)]
            + [run(site_id=1002, failed_ago=timedelta(minutes=m)) for m in (35, 25, 15)])
    (digest,) = plan_failures(facts(runs))
    assert isinstance(digest, Digest)
    assert list(digest.runs) == sorted(runs, key=lambda r: r.finished_at)


def test_repeats_do_not_count_toward_the_digest_threshold() -> None:
    existing = open_incident(run(site_id=1009, failed_ago=timedelta(hours=1)))
    repeats = [run(site_id=1009, failed_ago=timedelta(minutes=m)) for m in (1, 2, 3)]
    first_failures = [run(site_id=1001 + i) for i in range(5)]
    actions = plan_failures(facts(repeats + first_failures, open_incidents=[existing], threshold=5))
    assert not of_type(actions, Digest)
    assert len(of_type(actions, OpenIncident)) == 5
    (action,) = of_type(actions, Repeat)
    assert action.runs == tuple(reversed(repeats)) and action.incident.failures == 4


def test_only_repeats_never_make_a_digest() -> None:
    existing = open_incident(run(failed_ago=timedelta(hours=1)))
    repeats = [run(failed_ago=timedelta(minutes=m)) for m in range(1, 9)]
    (action,) = plan_failures(facts(repeats, open_incidents=[existing], threshold=5))
    assert isinstance(action, Repeat)
    assert len(action.runs) == 8 and action.incident.failures == 9


def test_threshold_exactly_met_is_told_one_by_one() -> None:
    runs = [run(site_id=1001 + i) for i in range(5)]
    actions = plan_failures(facts(runs, threshold=5))
    assert [type(a) for a in actions] == [OpenIncident] * 5


def test_threshold_counts_runs_not_groups() -> None:
    runs = [run(failed_ago=timedelta(minutes=m)) for m in range(1, 7)]  # six, one group
    (digest,) = plan_failures(facts(runs, threshold=5))
    assert isinstance(digest, Digest)
    (incident,) = digest.new_incidents
    assert incident.failures == 6 and incident.in_digest


def test_muted_runs_do_not_count_toward_the_digest_threshold() -> None:
    muted_runs = [run(site_id=1009, failed_ago=timedelta(minutes=m)) for m in (1, 2, 3)]
    told = [run(site_id=1001 + i) for i in range(5)]
    actions = plan_failures(facts(muted_runs + told, mutes=[mute(site_id=1009)]))
    assert len(of_type(actions, Suppress)) == 3
    assert len(of_type(actions, OpenIncident)) == 5
    assert not of_type(actions, Digest)


def test_digest_leaves_muted_runs_out() -> None:
    muted_run = run(site_id=1009)
    told = [run(site_id=1001 + i) for i in range(6)]
    actions = plan_failures(facts([muted_run, *told], mutes=[mute(site_id=1009)]))
    (digest,) = of_type(actions, Digest)
    (suppress,) = of_type(actions, Suppress)
    assert suppress.run == muted_run
    assert muted_run.id not in ids(digest.runs)
    assert len(digest.runs) == 6 and len(actions) == 2


def test_digest_threshold_is_per_channel() -> None:
    c1_runs = [run(site_id=1001 + i) for i in range(6)]
    c2_run = run(site_id=2001)
    subs = [sub("C1", site_id=None), sub("C2", sub_id=2, site_id=2001)]
    actions = plan_failures(facts([*c1_runs, c2_run], subs))
    digests = of_type(actions, Digest)
    assert len(digests) == 1
    assert c2_run.id in ids(digests[0].runs)  # C1 follows everything
    assert len(digests[0].runs) == 7
    (notice,) = of_type(actions, OpenIncident)
    assert notice.incident.channel_id == "C2" and notice.runs == (c2_run,)


def test_custom_threshold() -> None:
    actions = plan_failures(facts([run(), run(site_id=1002)], threshold=1))
    assert [type(a) for a in actions] == [Digest]


def test_announced_runs_do_not_reach_the_plan() -> None:
    r = run()
    assert plan_failures(facts([r], announced={("C1", r.id)})) == []


def test_announced_pairs_of_every_action() -> None:
    r = run()
    incident = open_incident(r)
    assert announced_pairs(OpenIncident(incident, (r,))) == [("C1", r.id)]
    again = run()
    assert announced_pairs(Repeat(incident, (r,))) == [("C1", r.id)]
    assert announced_pairs(Repeat(incident, (r, again))) == [("C1", r.id), ("C1", again.id)]
    assert announced_pairs(Suppress("C9", r, None)) == [("C9", r.id)]
    other = run(site_id=1002)
    assert announced_pairs(Digest("C3", (r, other), ())) == [("C3", r.id), ("C3", other.id)]
    assert announced_pairs(Recover(incident, r)) == []
    assert announced_pairs(Expire(incident)) == []


def test_announced_pairs_of_a_digest_name_every_run() -> None:
    runs = (run(), run(site_id=1002), run(site_id=1003))
    assert announced_pairs(Digest("C3", runs, ())) == [("C3", r.id) for r in runs]


# ----------------------------------------------------------------------- recoveries


def finished_run(created_after: timedelta, failed: Run, **kwargs: Any) -> Run:
    created = failed.created_at + created_after
    return Run.model_validate(make_run(state="finished", started_at=created, created_at=created,
                                       took=TOOK, **kwargs))


def test_later_finished_run_resolves_the_incident() -> None:
    failed = run(failed_ago=timedelta(hours=1))
    incident = open_incident(failed)
    later = finished_run(timedelta(minutes=30), failed)
    (action,) = plan_recoveries([incident], {(1001, CONNECTOR): [later]}, NOW)
    assert isinstance(action, Recover)
    assert action.run == later
    assert action.incident.resolved_at == NOW
    assert action.incident.resolved_by_run == later.id
    assert not action.incident.is_open
    assert replace(action.incident, resolved_at=None, resolved_by_run=None) == incident


def test_the_first_later_finished_run_is_the_one_that_resolves() -> None:
    failed = run(failed_ago=timedelta(hours=2))
    incident = open_incident(failed)
    runs = [finished_run(timedelta(minutes=m), failed) for m in (90, 30, 60)]
    (action,) = plan_recoveries([incident], {(1001, CONNECTOR): runs}, NOW)
    assert action.run == runs[1]
    assert action.incident.resolved_by_run == runs[1].id


def test_earlier_finished_run_does_not_resolve() -> None:
    failed = run(failed_ago=timedelta(minutes=10))
    earlier = finished_run(-timedelta(hours=1), failed)
    same_time = finished_run(timedelta(0), failed)
    assert plan_recoveries([open_incident(failed)], {(1001, CONNECTOR): [earlier, same_time]}, NOW) == []


def test_later_failed_run_does_not_resolve() -> None:
    failed = run(failed_ago=timedelta(hours=1))
    later_failure = run(failed_ago=timedelta(minutes=1))
    assert plan_recoveries([open_incident(failed)], {(1001, CONNECTOR): [later_failure]}, NOW) == []


def test_the_failed_run_itself_does_not_resolve() -> None:
    failed = run(failed_ago=timedelta(hours=1))
    itself_finished = failed.model_copy(update={"state": "finished"})
    assert plan_recoveries([open_incident(failed)], {(1001, CONNECTOR): [itself_finished]}, NOW) == []


def test_finished_run_of_another_key_does_not_resolve() -> None:
    failed = run(failed_ago=timedelta(hours=1))
    other = finished_run(timedelta(minutes=30), failed, site_id=1002)
    assert plan_recoveries([open_incident(failed)], {(1002, CONNECTOR): [other]}, NOW) == []
    assert plan_recoveries([open_incident(failed)], {}, NOW) == []


def test_resolved_incident_is_not_resolved_again() -> None:
    failed = run(failed_ago=timedelta(hours=1))
    closed = open_incident(failed, resolved_at=NOW - timedelta(minutes=5))
    later = finished_run(timedelta(minutes=30), failed)
    assert plan_recoveries([closed], {(1001, CONNECTOR): [later]}, NOW) == []


def test_without_created_at_run_ids_decide_the_order() -> None:
    failed = run(failed_ago=timedelta(hours=1)).model_copy(update={"created_at": None})
    later = finished_run(timedelta(minutes=30), run(failed_ago=timedelta(hours=1)))
    earlier = finished_run(-timedelta(minutes=30), run(failed_ago=timedelta(hours=1)))
    assert earlier.id < failed.id < later.id  # UUIDv7: time-ordered
    incident = open_incident(failed)
    (action,) = plan_recoveries([incident], {(1001, CONNECTOR): [earlier, later]}, NOW)
    assert action.run == later


def test_run_that_finished_before_a_late_failure_does_not_resolve_it() -> None:
    # A long run created 10 h ago fails 10 min ago; a short run created 9 h ago (after it)
    # finished 8 h 55 min ago, long before that failure. It shows no recovery.
    created = NOW - timedelta(hours=10)
    late_failure = Run.model_validate(make_run(
        state="failed", started_at=created, created_at=created, took=timedelta(hours=9, minutes=50)))
    short = Run.model_validate(make_run(
        state="finished", started_at=NOW - timedelta(hours=9), created_at=NOW - timedelta(hours=9),
        took=TOOK))
    assert short.finished_at < late_failure.finished_at
    incident = open_incident(late_failure)
    assert plan_recoveries([incident], {(1001, CONNECTOR): [short]}, NOW) == []


def test_expiry_closes_incidents_quiet_for_a_whole_window() -> None:
    quiet = open_incident(run(), id=1, last_failed_at=NOW - WINDOW - timedelta(seconds=1))
    recent = open_incident(run(), id=2, last_failed_at=NOW - WINDOW + timedelta(minutes=1))
    edge = open_incident(run(), id=3, last_failed_at=NOW - WINDOW)
    resolved = open_incident(run(), id=4, last_failed_at=NOW - 3 * WINDOW,
                             resolved_at=NOW - WINDOW)
    actions = plan_expiries([quiet, recent, edge, resolved], NOW, WINDOW)
    assert actions == [Expire(replace(quiet, resolved_at=NOW))]
    assert actions[0].incident.resolved_by_run is None
    assert announced_pairs(actions[0]) == []


def test_recovery_keys_of_open_incidents_with_known_site_and_connector() -> None:
    r = run()
    incidents = [
        open_incident(r, id=1),
        open_incident(r, id=2, channel="C2"),  # same key: once
        open_incident(r, id=3, site_id=1002),
        open_incident(r, id=4, site_id=None),
        open_incident(r, id=5, connector_id=None),
        open_incident(r, id=6, site_id=1003, resolved_at=NOW),
    ]
    assert recovery_keys(incidents) == {(1001, CONNECTOR), (1002, CONNECTOR)}
    assert recovery_keys([]) == set()


def test_failures_outside_the_allowed_sites_are_no_news() -> None:
    allowed, outside, unknown = run(site_id=1001), run(site_id=1002), run(site_id=None)
    bounded = replace(facts([allowed, outside, unknown]), allowed_sites=frozenset({1001}))
    assert new_failures(bounded) == {"C1": [allowed]}
    assert new_failures(facts([allowed, outside, unknown])) == {"C1": sorted(
        [allowed, outside, unknown], key=lambda r: (r.finished_at, r.id))}


def test_channels_outside_the_allowed_list_are_told_nothing() -> None:
    failed = run(site_id=1001)
    both = [sub("C1"), sub("C2", sub_id=2)]
    bounded = replace(facts([failed], both), allowed_channels=frozenset({"C2"}))
    assert new_failures(bounded) == {"C2": [failed]}
    assert set(new_failures(facts([failed], both))) == {"C1", "C2"}


def test_the_filter_index_offers_every_filter_that_matches_and_each_once() -> None:
    import itertools

    from bot.cde.models import Run
    from bot.demo.runs import make_run
    from bot.notices.models import NoticeFilter
    from bot.notices.triage import FilterIndex

    sites, connectors = (None, 1, 2), (None, "c1", "c2")
    filters = [NoticeFilter(site_id=s, connector_id=c, connector_version=v)
               for s, c, v in itertools.product(sites, connectors, (None, "1.0.1", "9"))]
    index = FilterIndex(filters)
    for site, connector in itertools.product((None, 1, 2, 3), (None, "c1", "c3")):
        run = Run.model_validate(make_run(state="failed", site_id=site or 1, connector_id=connector or "x"))
        run = run.model_copy(update={"site_id": site, "connector_id": connector})
        offered = index.candidates(run)
        assert len(offered) == len(set(offered))
        assert {f for f in offered if f.matches(run)} == {f for f in filters if f.matches(run)}
