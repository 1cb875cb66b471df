"""One poll: read the failed runs in the look-back window, decide what is news, post it.

The API cost of a poll does not depend on how many subscriptions there are: one scan of
failed runs (matched to subscriptions locally) plus one small scan per open incident's
connector and site, to see it recover. Every decision is made by `bot.notices.triage`; this module
only fetches, posts and records. A notice is recorded as told right after Slack accepted
it, so a failed post is tried again next poll and a told one is never told again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from slack_sdk.errors import SlackApiError

from bot.cde.client import CdeClient
from bot.cde.errors import CdeError
from bot.cde.models import FAILED, FINISHED, Run, RunFilter
from bot.cde.scan import runs_since
from bot.notices import render as render_notices
from bot.notices import triage
from bot.notices.models import Incident
from bot.notices.oncall import Notices
from bot.slack.poster import PERMANENT_ERRORS, slack_error
from bot.store.base import Store

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
    # Messages Slack accepted, by kind: notice | repeat | recovery | digest | digest_list | admin.
    notices: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count_post(self, kind: str) -> None:
        """One message posted in a channel (admin alerts are counted apart, not in `posted`)."""
        self.notices[kind] += 1
        if kind != "admin":
            self.posted += 1


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
        """Fetch, decide, post. API errors are reported, never raised; one action failing
        never stops the others.
        """
        report = PollReport()
        now = self.clock()
        subscriptions = await self.store.subscriptions()
        open_incidents = await self.store.open_incidents()
        if not subscriptions and not open_incidents:
            await self.store.set_state(STATE_LAST_SUCCESS, now.isoformat())
            return report
        failed: list[Run] = []
        if subscriptions:
            try:
                failed = await self._scan_failures(now, report)
            except CdeError as exc:
                report.outcome, report.error = "api_error", str(exc)
                log.warning("poll failed, will retry next poll: %s", exc)
                await self._poll_failed(now, str(exc), report)
                return report
            # Only the scan of failed runs tells whether the API is back.
            await self._poll_succeeded(now, report)
        else:
            await self.store.set_state(STATE_LAST_SUCCESS, now.isoformat())
        report.outcome = "ok"
        report.failed_runs_seen = len(failed)
        unfinished = [run.id for run in failed if run.failed and run.finished_at is None]
        facts = triage.PollFacts(
            now=now, window=self.config.window, failed_runs=failed, subscriptions=subscriptions,
            announced=await self.store.announced(run.id for run in failed),
            open_incidents=open_incidents, mutes=await self.store.active_mutes(now),
            digest_threshold=self.config.digest_threshold,
            first_seen=await self.store.first_seen(unfinished, now),
        )
        for action in triage.plan_failures(facts):
            await self._carry_out(action, facts, report)
        still_open = await self.store.open_incidents()
        finished = await self._scan_recoveries(still_open, report)
        for action in triage.plan_recoveries(still_open, finished, now):
            await self._carry_out(action, facts, report)
        await self._end_mutes(now)
        for action in triage.plan_expiries(await self.store.open_incidents(), now, self.config.window):
            await self._carry_out(action, facts, report)
        # Records outlive the window twice over, and those of runs the API still lists are
        # kept whatever their age, so no run is ever told twice.
        listed = [run.id for run in failed]
        await self.store.prune_announced(now - 2 * self.config.window, keep=listed)
        await self.store.prune(now - 2 * self.config.window, keep=listed)
        log.info(
            "poll: %d failed runs in window, %d posted, %d updated, %d muted, %d API requests",
            report.failed_runs_seen, report.posted, report.updated, report.suppressed,
            report.api_requests,
        )
        return report

    # -- fetching ------------------------------------------------------------------------

    async def _scan_failures(self, now: datetime, report: PollReport) -> list[Run]:
        scan = await runs_since(self.cde, RunFilter(state=FAILED), now - self.config.window)
        report.api_requests += scan.requests
        return scan.runs

    async def _scan_recoveries(
        self, open_incidents: list[Incident], report: PollReport
    ) -> dict[triage.IncidentKey, list[Run]]:
        """Finished runs of each open incident's connector on its site. A scan that fails is
        skipped (tried again next poll); it must not hold up anything else.
        """
        finished: dict[triage.IncidentKey, list[Run]] = {}
        for site_id, connector_id in sorted(triage.recovery_keys(open_incidents), key=str):
            since = min(
                triage.incident_run(i).created_at or i.first_failed_at
                for i in open_incidents
                if triage.key_of(i) == (site_id, connector_id)
            )
            try:
                scan = await runs_since(
                    self.cde, RunFilter(state=FINISHED, site_id=site_id, connector_id=connector_id),
                    since, page_size=20,
                )
            except CdeError as exc:
                log.warning("could not look for a recovery of connector %s on site %s: %s",
                            connector_id, site_id, exc)
                continue
            report.api_requests += scan.requests
            finished[(site_id, connector_id)] = scan.runs
        return finished

    # -- carrying out --------------------------------------------------------------------

    async def _carry_out(self, action: triage.Action, facts: triage.PollFacts,
                         report: PollReport) -> None:
        report.actions[type(action).__name__] += 1
        try:
            await self._apply(action, facts, report)
        except SlackApiError as exc:
            # The action's first post failed: nothing of it was recorded.
            error = slack_error(exc)
            report.post_errors += 1
            if error in PERMANENT_ERRORS:
                # Trying again cannot help (no access to the channel, a message Slack will
                # never take): record the runs as told rather than failing on them for ever.
                log.error("cannot post %s in %s (%s); the failure is recorded as told",
                          type(action).__name__, _channel(action), error)
                await self.store.mark_announced(triage.announced_pairs(action), facts.now)
            else:
                log.warning("Slack refused %s in %s (%s); will retry next poll",
                            type(action).__name__, _channel(action), error)
        except Exception:
            # Whatever else goes wrong with one action (a timeout, the database), the poll
            # goes on with the others; what was not recorded is tried again next poll.
            report.post_errors += 1
            log.exception("could not carry out %s in %s", type(action).__name__, _channel(action))

    async def _apply(self, action: triage.Action, facts: triage.PollFacts, report: PollReport) -> None:
        """Each action's first post is the one that matters: once Slack took it, the state
        and the runs it told are recorded in one transaction; what follows is best effort.
        """
        now = facts.now
        told = triage.announced_pairs(action)
        if isinstance(action, triage.OpenIncident):
            incident = action.incident
            ts = await self.poster.post(incident.channel_id, render_notices.notice(
                incident, links=self.notices.links))
            report.count_post("notice")
            incident = await self.store.save_incident(replace(incident, message_ts=ts),
                                                      announce=told, at=now)
            if len(action.runs) > 1:
                # Several failures of one connector in one poll: one notice, every run in its thread.
                for reply in render_notices.digest_list(action.runs):
                    if await self._best_effort(self.poster.post(incident.channel_id, reply, thread_ts=ts),
                                               "list the runs of a notice"):
                        report.count_post("digest_list")
        elif isinstance(action, triage.Repeat):
            incident = action.incident
            await self.poster.post(incident.channel_id, render_notices.repeat_reply(incident, action.runs),
                                   thread_ts=incident.message_ts)
            report.count_post("repeat")
            runs = action.runs
            stored = await self.store.update_incident(
                incident.id, lambda current: triage.with_failures(current, runs, facts.when),
                announce=told, at=now)
            await self._refresh(stored, now, report)
        elif isinstance(action, triage.Suppress):
            report.suppressed += 1
            run = action.run
            # The mute counts what it holds back, to tell when it ends.
            await self.store.count_suppressed(action.channel_id, run.site_id, run.connector_id)
            if action.incident is None:
                await self.store.mark_announced(told, now)
            else:
                stored = await self.store.update_incident(
                    action.incident.id,
                    lambda current: triage.with_failures(current, [run], facts.when, muted=True),
                    announce=told, at=now)
                await self._refresh(stored, now, report)
        elif isinstance(action, triage.Digest):
            await self._digest(action, now, report)
        elif isinstance(action, triage.Recover):
            incident, run = action.incident, action.run
            await self.poster.post(incident.channel_id, render_notices.recovered_reply(incident, run),
                                   thread_ts=incident.message_ts)
            report.count_post("recovery")
            stored = await self.store.update_incident(
                incident.id, lambda current: replace(current, resolved_at=now, resolved_by_run=run.id))
            await self._refresh(stored, now, report)
        elif isinstance(action, triage.Expire):
            stored = await self.store.update_incident(
                action.incident.id, lambda current: replace(current, resolved_at=now))
            await self._refresh(stored, now, report)

    async def _digest(self, action: triage.Digest, now: datetime, report: PollReport) -> None:
        channel = action.channel_id
        ts = await self.poster.post(channel, render_notices.digest(action.new_incidents))
        report.count_post("digest")
        saved = await self.store.save_incidents(
            [replace(incident, message_ts=ts) for incident in action.new_incidents],
            announce=triage.announced_pairs(action), at=now)
        # Drawn again now that its pairs have ids, so that "Mute a pair" can name them.
        await self._refresh(saved[0] if saved else None, now, report)
        for reply in render_notices.digest_list(action.runs):
            if await self._best_effort(self.poster.post(channel, reply, thread_ts=ts),
                                       "list the runs of a digest"):
                report.count_post("digest_list")

    async def _refresh(self, incident: Incident | None, now: datetime, report: PollReport) -> None:
        if incident is not None:
            await self.notices.refresh(incident, now)
            report.updated += 1

    async def _best_effort(self, call: Awaitable[object], what: str) -> bool:
        try:
            await call
        except Exception as exc:
            log.warning("could not %s: %s", what, slack_error(exc))
            return False
        return True

    async def _end_mutes(self, now: datetime) -> None:
        """Tell a notice's thread when its mute ran out, with what it held back."""
        open_by = {(i.channel_id, i.site_id, i.connector_id): i for i in await self.store.open_incidents()}
        for mute in await self.store.ended_mutes(now):
            incident = open_by.get((mute.channel_id, mute.site_id, mute.connector_id))
            try:
                if incident is not None:
                    await self.poster.post(mute.channel_id, render_notices.mute_ended(mute.suppressed),
                                           thread_ts=incident.message_ts)
                # Forgotten once told, so that it is told once; the redraw is best effort.
                await self.store.delete_mute(mute.channel_id, mute.site_id, mute.connector_id)
            except Exception as exc:
                log.warning("could not tell that a mute in %s ended: %s", mute.channel_id,
                            slack_error(exc))
                continue
            if incident is not None:
                await self.notices.refresh(incident, now)

    # -- API outages ---------------------------------------------------------------------

    async def _poll_failed(self, now: datetime, error: str, report: PollReport) -> None:
        since_text = await self.store.get_state(STATE_OUTAGE_SINCE)
        if since_text is None:
            await self.store.set_state(STATE_OUTAGE_SINCE, now.isoformat())
            return
        since = datetime.fromisoformat(since_text)
        reported = await self.store.get_state(STATE_OUTAGE_REPORTED)
        if reported or now - since < self.config.outage_alert_after:
            return
        log.error("the CDE API has been unreachable since %s: %s", since.isoformat(), error)
        if self.config.admin_channel and not await self._tell_admins(
            render_notices.outage_alert(since, error, now), report
        ):
            return  # told next poll, then
        await self.store.set_state(STATE_OUTAGE_REPORTED, now.isoformat())

    async def _poll_succeeded(self, now: datetime, report: PollReport) -> None:
        """The API answered: record it, and end an outage (telling the admins if they
        were told it began; if that post fails, it is tried again next poll).
        """
        await self.store.set_state(STATE_LAST_SUCCESS, now.isoformat())
        since_text = await self.store.get_state(STATE_OUTAGE_SINCE)
        if since_text is None:
            return
        since = datetime.fromisoformat(since_text)
        reported = await self.store.get_state(STATE_OUTAGE_REPORTED)
        if reported and self.config.admin_channel and not await self._tell_admins(
            render_notices.outage_over(since, now), report
        ):
            return
        log.info("the CDE API is reachable again after %s", now - since)
        await self.store.set_state(STATE_OUTAGE_SINCE, None)
        await self.store.set_state(STATE_OUTAGE_REPORTED, None)

    async def _tell_admins(self, message: render_notices.Message, report: PollReport) -> bool:
        assert self.config.admin_channel is not None
        try:
            await self.poster.post(self.config.admin_channel, message)
        except Exception as exc:
            log.error("could not post in the admin channel %s: %s", self.config.admin_channel,
                      slack_error(exc))
            return False
        report.count_post("admin")
        return True

    async def last_success(self) -> datetime | None:
        text = await self.store.get_state(STATE_LAST_SUCCESS)
        return datetime.fromisoformat(text) if text else None


def _channel(action: triage.Action) -> str:
    if isinstance(action, triage.Suppress | triage.Digest):
        return action.channel_id
    return action.incident.channel_id
