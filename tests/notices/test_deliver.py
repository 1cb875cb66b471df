"""bot/notices/deliver.py: every action recorded with its posts in one transaction, and
what becomes of them once the outbox sends them; against a real store and the Slack
stand-in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cde.models import Run
from bot.demo.runs import make_run
from bot.notices import triage
from bot.notices.deliver import Delivery, Outcome
from bot.notices.models import Incident
from bot.notices.outbox import Outbox, PassReport
from bot.notices.poller import OpenIncidents, PollReport
from bot.store import sql_outbox
from bot.store.base import StoreError
from bot.store.sql import SqlStore
from tests.helpers.oncall import first_failure as oncall_first_failure
from tests.helpers.oncall import oncall_on
from tests.standins.slack import SlackStandIn

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OPS = "C0001"


@dataclass
class Parts:
    slack: SlackStandIn
    store: SqlStore
    delivery: Delivery
    outbox: Outbox


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    async with SlackStandIn() as slack, oncall_on(slack, tmp_path / "deliver.db") as oncall:
        store = oncall.store
        yield Parts(slack, store, Delivery(store, oncall), Outbox(oncall, clock=lambda: NOW))


def failed_run(minutes_ago: float) -> Run:
    return Run.model_validate(make_run(state="failed", site_id=1001,
                                       started_at=NOW - timedelta(minutes=minutes_ago + 5)))


def first_failure(*runs: Run) -> tuple[triage.OpenIncident, triage.PollFacts]:
    return oncall_first_failure(*runs, channel=OPS, now=NOW)


async def test_a_first_post_is_recorded_with_the_runs_it_told(parts: Parts) -> None:
    runs = (failed_run(20), failed_run(10))
    action, facts = first_failure(*runs)
    outcome = await parts.delivery.carry_out(action, facts)
    [stored] = await parts.store.open_incidents()
    assert outcome.stored == {stored.id: stored}
    assert (outcome.posts, outcome.failed) == (["notice", "digest_list"], False)
    assert await parts.store.announced(r.id for r in runs) == {(OPS, r.id) for r in runs}
    assert parts.slack.messages(OPS) == []  # recorded first, posted by the outbox

    sent = await parts.outbox.deliver()
    assert dict(sent.delivered) == {"notice": 1, "digest_list": 1}
    [notice] = parts.slack.messages(OPS)
    assert (await parts.store.open_incidents())[0].message_ts == notice["ts"]


async def test_a_channel_the_bot_cannot_post_in_records_the_runs_as_told(parts: Parts) -> None:
    run = failed_run(10)
    action, facts = first_failure(run)
    parts.slack.fail_next("chat.postMessage", status=200, error="not_in_channel", retry_after=None)
    await parts.delivery.carry_out(action, facts)
    sent = await parts.outbox.deliver()
    assert (sent.failed, sum(sent.delivered.values())) == (1, 0)
    assert await parts.store.announced([run.id]) == {(OPS, run.id)}
    assert await parts.store.open_incidents() == []


@pytest.mark.parametrize("fault", ["fatal_error", "html-503"])
async def test_anything_else_is_posted_later_once(parts: Parts, fault: str) -> None:
    run = failed_run(10)
    action, facts = first_failure(run)
    if fault == "html-503":
        parts.slack.fail_next_html("chat.postMessage", status=503)
    else:
        parts.slack.fail_next("chat.postMessage", status=200, error=fault, retry_after=None)
    await parts.delivery.carry_out(action, facts)
    assert (await parts.outbox.deliver()).deferred == 1
    assert await parts.store.announced([run.id]) == {(OPS, run.id)}
    later = Outbox(parts.delivery.oncall, clock=lambda: NOW + timedelta(minutes=10))
    assert (await later.deliver()).delivered["notice"] == 1
    assert len(parts.slack.messages(OPS)) == 1


async def test_state_and_posts_are_one_transaction(parts: Parts,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = failed_run(10)
    action, facts = first_failure(run)

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(sql_outbox, "enqueue", broken)  # the posts cannot be recorded ...
    outcome = await parts.delivery.carry_out(action, facts)
    assert (outcome.failed, outcome.stored) == (True, {})
    # ... so neither is the state: the action is planned again next poll.
    assert await parts.store.open_incidents() == []
    assert await parts.store.announced([run.id]) == set()
    assert await parts.store.pending_posts() == []


def test_the_report_and_the_open_incidents_follow_each_outcome() -> None:
    action, _ = first_failure(failed_run(10))
    opened = Incident(**{**action.incident.__dict__, "id": 7, "message_ts": "1.0"})
    closed = Incident(**{**opened.__dict__, "id": 3, "resolved_at": NOW})
    incidents = OpenIncidents([Incident(**{**opened.__dict__, "id": 3}),
                               Incident(**{**opened.__dict__, "id": 5})])
    incidents.follow({7: opened, 3: closed, 5: None})
    assert [i.id for i in incidents.now()] == [7]

    report = PollReport()
    report.add(action, Outcome(posts=["notice", "digest_list"], redrawn=1, failed=True))
    sent = PassReport(failed=1)
    sent.delivered.update({"notice": 1, "digest_list": 1, "redraw": 1})
    report.add_pass(sent)
    assert (report.posted, report.updated, report.post_errors, dict(report.actions)) == (
        2, 1, 2, {"OpenIncident": 1})
