"""One poll: read the failed runs in the look-back window, decide what is news, post it.

The API cost of a poll does not depend on how many subscriptions there are: one scan of
failed runs (matched to subscriptions locally) plus one small scan per open incident's
connector and site, to see it recover. Every decision is made by `bot.triage`; this module
only fetches, posts and records. A notice is recorded as told right after Slack accepted
it, so a failed post is tried again next poll and a told one is never told again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from slack_sdk.errors import SlackApiError

from bot import render_notices, triage
from bot.cde.client import CdeClient
from bot.cde.errors import CdeError
from bot.cde.models import FAILED, FINISHED, Run, RunFilter
from bot.cde.scan import runs_since
from bot.notices import Notices
from bot.slack import CHANNEL_GONE, slack_error
from bot.store.base import Incident, Store

log = logging.getLogger(__name__)

STATE_LAST_SUCCESS = "poll.last_success"
STATE_OUTAGE_SINCE = "poll.outage_since"
STATE_OUTAGE_REPORTED = "poll.outage_reported"


@dataclass(frozen=True)
class NotifierConfig:
    window: timedelta = timedelta(hours=24)
    digest_threshold: int = 5
    outage_alert_after: timedelta = timedelta(minutes=10)
    admin_channel: str | None = None


@dataclass
class PollReport:
    """What one poll did, for logs and metrics."""

    outcome: str = "idle"  # idle | ok | api_error
    api_requests: int = 0
    failed_runs_seen: int = 0
    posted: int = 0
    updated: int = 0
    suppressed: int = 0
    post_errors: int = 0
    error: str | None = None
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Notifier:
    def __init__(
        self,
        cde: CdeClient,
        store: Store,
        notices: Notices,
        config: NotifierConfig = NotifierConfig(),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cde = cde
        self.store = store
        self.notices = notices
        self.poster = notices.poster
        self.config = config
        self.clock = clock

    async def poll_once(self) -> PollReport:
        """Fetch, decide, post. API errors are reported, never raised."""
        report = PollReport()
        now = self.clock()
        subscriptions = await self.store.subscriptions()
        open_incidents = await self.store.open_incidents()
        if not subscriptions and not open_incidents:
            await self._poll_succeeded(now)
            return report
        try:
            failed, finished = await self._fetch(now, bool(subscriptions), open_incidents, report)
        except CdeError as exc:
            report.outcome, report.error = "api_error", str(exc)
            log.warning("poll failed, will retry next poll: %s", exc)
            await self._poll_failed(now, str(exc))
            return report
        report.outcome = "ok"
        report.failed_runs_seen = len(failed)
        facts = triage.PollFacts(
            now=now, window=self.config.window, failed_runs=failed, subscriptions=subscriptions,
            announced=await self.store.announced(run.id for run in failed),
            open_incidents=open_incidents, mutes=await self.store.active_mutes(now),
            digest_threshold=self.config.digest_threshold,
        )
        for action in triage.plan_failures(facts):
            await self._carry_out(action, now, report)
        still_open = await self.store.open_incidents()
        for action in triage.plan_recoveries(still_open, finished, now):
            await self._carry_out(action, now, report)
        for action in triage.plan_expiries(await self.store.open_incidents(), now, self.config.window):
            await self._carry_out(action, now, report)
        # Records outlive the window twice over, so a run still inside it is never told again.
        await self.store.prune_announced(now - 2 * self.config.window)
        await self._poll_succeeded(now)
        log.info(
            "poll: %d failed runs in window, %d posted, %d updated, %d muted, %d API requests",
            report.failed_runs_seen, report.posted, report.updated, report.suppressed,
            report.api_requests,
        )
        return report

    # -- fetching ------------------------------------------------------------------------

    async def _fetch(
        self, now: datetime, want_failures: bool, open_incidents: list[Incident], report: PollReport
    ) -> tuple[list[Run], dict[triage.IncidentKey, list[Run]]]:
        failed: list[Run] = []
        if want_failures:
            scan = await runs_since(self.cde, RunFilter(state=FAILED), now - self.config.window)
            report.api_requests += scan.requests
            failed = scan.runs
        finished: dict[triage.IncidentKey, list[Run]] = {}
        for site_id, connector_id in sorted(triage.recovery_keys(open_incidents), key=str):
            since = min(
                triage.incident_run(i).created_at or i.first_failed_at
                for i in open_incidents
                if triage.key_of(i) == (site_id, connector_id)
            )
            scan = await runs_since(
                self.cde, RunFilter(state=FINISHED, site_id=site_id, connector_id=connector_id),
                since, page_size=20,
            )
            report.api_requests += scan.requests
            finished[(site_id, connector_id)] = scan.runs
        return failed, finished

    # -- carrying out --------------------------------------------------------------------

    async def _carry_out(self, action: triage.Action, now: datetime, report: PollReport) -> None:
        report.actions[type(action).__name__] += 1
        try:
            await self._apply(action, now, report)
        except SlackApiError as exc:
            error = slack_error(exc)
            report.post_errors += 1
            if error in CHANNEL_GONE:
                # Posting there cannot work until someone invites the bot back: record the
                # runs as told rather than failing on them every poll.
                log.error("cannot post in %s (%s); skipping %s", _channel(action), error,
                          type(action).__name__)
                await self.store.mark_announced(triage.announced_pairs(action), now)
            else:
                log.warning("Slack refused %s in %s (%s); will retry next poll",
                            type(action).__name__, _channel(action), error)
            return
        await self.store.mark_announced(triage.announced_pairs(action), now)

    async def _apply(self, action: triage.Action, now: datetime, report: PollReport) -> None:
        if isinstance(action, triage.OpenIncident):
            incident = action.incident
            ts = await self.poster.post(incident.channel_id, render_notices.notice(
                incident, links=self.notices.links))
            report.posted += 1
            incident = await self.store.save_incident(replace(incident, message_ts=ts))
            if len(action.runs) > 1:
                # Several failures of one connector in one poll: one notice, all runs in its thread.
                for reply in render_notices.digest_list(action.runs):
                    await self.poster.post(incident.channel_id, reply, thread_ts=ts)
                    report.posted += 1
        elif isinstance(action, triage.Repeat):
            incident = action.incident
            await self.poster.post(incident.channel_id,
                                   render_notices.repeat_reply(incident, action.run),
                                   thread_ts=incident.message_ts)
            report.posted += 1
            await self.store.save_incident(incident)
            await self.notices.refresh(incident, now)
            report.updated += 1
        elif isinstance(action, triage.Suppress):
            report.suppressed += 1
            if action.incident is None:
                run = action.run
                await self.store.count_suppressed(action.channel_id, run.site_id, run.connector_id)
            else:
                await self.store.save_incident(action.incident)
                await self.notices.refresh(action.incident, now)
                report.updated += 1
        elif isinstance(action, triage.Digest):
            await self._digest(action, now, report)
        elif isinstance(action, triage.Recover):
            incident = action.incident
            await self.poster.post(incident.channel_id,
                                   render_notices.recovered_reply(incident, action.run),
                                   thread_ts=incident.message_ts)
            report.posted += 1
            await self.store.save_incident(incident)
            await self.notices.refresh(incident, now)
            report.updated += 1
        elif isinstance(action, triage.Expire):
            await self.store.save_incident(action.incident)
            await self.notices.refresh(action.incident, now)
            report.updated += 1

    async def _digest(self, action: triage.Digest, now: datetime, report: PollReport) -> None:
        channel = action.channel_id
        repeats = len(action.runs) - sum(i.failures for i in action.new_incidents)
        ts = await self.poster.post(channel, render_notices.digest(
            action.new_incidents, repeats_elsewhere=repeats))
        report.posted += 1
        for incident in action.new_incidents:
            await self.store.save_incident(replace(incident, message_ts=ts))
        for reply in render_notices.digest_list(action.runs):
            await self.poster.post(channel, reply, thread_ts=ts)
            report.posted += 1
        for incident in action.updated_incidents:
            await self.store.save_incident(incident)
            await self.notices.refresh(incident, now)
            report.updated += 1

    # -- API outages ---------------------------------------------------------------------

    async def _poll_failed(self, now: datetime, error: str) -> None:
        since_text = await self.store.get_state(STATE_OUTAGE_SINCE)
        if since_text is None:
            await self.store.set_state(STATE_OUTAGE_SINCE, now.isoformat())
            return
        since = datetime.fromisoformat(since_text)
        reported = await self.store.get_state(STATE_OUTAGE_REPORTED)
        if reported or now - since < self.config.outage_alert_after:
            return
        log.error("the CDE API has been unreachable since %s: %s", since.isoformat(), error)
        if self.config.admin_channel and await self._tell_admins(
            render_notices.outage_alert(since, error, now)
        ):
            await self.store.set_state(STATE_OUTAGE_REPORTED, now.isoformat())

    async def _poll_succeeded(self, now: datetime) -> None:
        await self.store.set_state(STATE_LAST_SUCCESS, now.isoformat())
        since_text = await self.store.get_state(STATE_OUTAGE_SINCE)
        if since_text is None:
            return
        since = datetime.fromisoformat(since_text)
        if await self.store.get_state(STATE_OUTAGE_REPORTED) and self.config.admin_channel:
            await self._tell_admins(render_notices.outage_over(since, now))
        log.info("the CDE API is reachable again after %s", now - since)
        await self.store.set_state(STATE_OUTAGE_SINCE, None)
        await self.store.set_state(STATE_OUTAGE_REPORTED, None)

    async def _tell_admins(self, message: render_notices.Message) -> bool:
        assert self.config.admin_channel is not None
        try:
            await self.poster.post(self.config.admin_channel, message)
        except SlackApiError as exc:
            log.error("could not post in the admin channel %s: %s", self.config.admin_channel,
                      slack_error(exc))
            return False
        return True

    async def last_success(self) -> datetime | None:
        text = await self.store.get_state(STATE_LAST_SUCCESS)
        return datetime.fromisoformat(text) if text else None


def _channel(action: triage.Action) -> str:
    if isinstance(action, triage.Suppress | triage.Digest):
        return action.channel_id
    return action.incident.channel_id
