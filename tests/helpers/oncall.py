"""The notice path's parts wired to a Slack stand-in and a fresh SQLite store, for tests
that carry out triage's actions and deliver the outbox themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.cde.models import Run
from bot.notices import triage
from bot.notices.models import Incident
from bot.notices.oncall import OnCall
from bot.slack.poster import SlackPoster
from bot.store.sql import SqlStore
from tests.standins.slack import SlackStandIn


@asynccontextmanager
async def oncall_on(slack: SlackStandIn, database: Path) -> AsyncIterator[OnCall]:
    """On-call actions over an open store at `database` and an unpaced poster to `slack`."""
    store = SqlStore(f"sqlite+aiosqlite:///{database}")
    await store.open()
    try:
        poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url),
                             min_interval=0)
        yield OnCall(store, poster)
    finally:
        await store.close()


def first_failure(*runs: Run, channel: str,
                  now: datetime) -> tuple[triage.OpenIncident, triage.PollFacts]:
    """A new incident in `channel` for `runs` (the last one shown), and the facts of its poll."""
    facts = triage.PollFacts(now=now, window=timedelta(hours=24), failed_runs=list(runs),
                             subscriptions=[], announced=set(), open_incidents=[], mutes=[])
    incident = Incident(id=0, channel_id=channel, site_id=1001, connector_id=runs[-1].connector_id,
                        message_ts="", run=runs[-1].model_dump(mode="json", by_alias=True),
                        failures=len(runs), muted_failures=0, first_failed_at=now, last_failed_at=now)
    return triage.OpenIncident(incident, runs), facts
