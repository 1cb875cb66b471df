"""One poll: read the failed runs in the look-back window, decide what is news, tell it.

The API cost of a poll does not depend on how many subscriptions or open incidents there
are, nor on how many failed runs the look-back window holds: at most `poll_max_requests`
requests read the failed runs (the head of the window every poll, the rest over several
polls, see `bot.cde.window`; matched to subscriptions locally), then, to see incidents
recover, at most `recovery_max_requests` requests (a scan per site, or one of every
finished run when the sites are more). The poller gathers the facts once per round (the
open incidents are read once; later steps follow what the actions recorded), lets
`bot.notices.triage` decide, hands the actions to `bot.notices.deliver` (which records
them with their posts), has `bot.notices.outbox` send the posts, and prunes. Posts left
from an earlier poll (or a crash) are sent first. API outages are followed by
`bot.notices.outage`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.cde.client import CdeClient
from bot.cde.errors import CdeError, CdeRateLimited
from bot.cde.models import FINISHED, Run, RunFilter
from bot.cde.scan import WindowRead, runs_since
from bot.cde.window import POLL_MAX_REQUESTS, SWEEP_MAX_PAGES
from bot.notices import coverage, outage, triage
from bot.notices import render as render_notices
from bot.notices.best_effort import best_effort
from bot.notices.deliver import Delivery, Outcome
from bot.notices.failures import FailureWindow
from bot.notices.models import Incident, Subscription
from bot.notices.oncall import OnCall
from bot.notices.outbox import Outbox, PassReport
from bot.slack.message import Message
from bot.slack.mrkdwn import duration
from bot.store.base import Store

log = logging.getLogger(__name__)



RECOVERY_MAX_REQUESTS = 20


@dataclass(frozen=True)
class PollerConfig:
    window: timedelta = timedelta(hours=24)
    digest_threshold: int = 5
    outage_alert_after: timedelta = timedelta(minutes=10)
    admin_channel: str | None = None
    # Requests one poll may spend reading failed runs (at least 3), whatever the window holds.
    poll_max_requests: int = POLL_MAX_REQUESTS
    # Pages one sweep of the window may read; one that needs more is cut short, and said to be.
    scan_max_pages: int = SWEEP_MAX_PAGES
    # Requests one poll may spend looking for recoveries, whatever the open incidents.
    recovery_max_requests: int = RECOVERY_MAX_REQUESTS
    # CDE_ALLOWED_SITES: failures of other sites are never told (empty: every site).
    allowed_sites: frozenset[int] = frozenset()
    # CDE_ALLOWED_CHANNELS: no new notice is posted elsewhere (empty: every channel).
    allowed_channels: frozenset[str] = frozenset()


@dataclass
class PollReport:
    """What one poll did, for logs and metrics."""

    outcome: str = "idle"  # idle | ok | api_error (Bot.poll_once adds: standby | lease_lost | store_error)
    api_requests: int = 0
    failed_runs_seen: int = 0
    # Runs of the failure scan that did not fully fit (logged once each by the client).
    odd_runs: int = 0
    # Scans cut short by their page budget, by what each was for: what lies beyond was not
    # seen this poll.
    cut_short: list[str] = field(default_factory=list)
    posted: int = 0
    updated: int = 0
    suppressed: int = 0
    post_errors: int = 0
    error: str | None = None
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Messages Slack accepted, by kind: notice | repeat | recovery | digest | digest_list | admin.
    notices: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    # Seconds the API asked to be left alone (a 429's Retry-After): the next poll waits
    # at least this long.
    retry_after: float | None = None
    # The last full sweep of the window (polls, seconds from its first poll to its last):
    # a late failure is told within that (see `bot.cde.window`). None before the first.
    sweep_polls: int | None = None
    sweep_seconds: float | None = None

    def failed_on(self, exc: CdeError) -> None:
        """The poll's scan failed with `exc`."""
        self.outcome, self.error = "api_error", str(exc)
        if isinstance(exc, CdeRateLimited):
            self.retry_after = exc.retry_after

    @property
    def incomplete_scans(self) -> int:
        return len(self.cut_short)

    def count_post(self, kind: str) -> None:
        """One message posted in a channel (admin alerts are counted apart, not in `posted`)."""
        self.notices[kind] += 1
        if kind != "admin":
            self.posted += 1

    def add(self, action: triage.Action, outcome: Outcome) -> None:
        """Count what carrying out `action` did (its posts are counted once sent)."""
        self.actions[type(action).__name__] += 1
        self.suppressed += outcome.suppressed
        self.post_errors += int(outcome.failed)

    def add_pass(self, sent: PassReport) -> None:
        """Count what a pass over the outbox sent."""
        for kind, count in sent.delivered.items():
            if kind == "redraw":
                self.updated += count
                continue
            for _ in range(count):
                self.count_post(kind)
        # Refused for good, or to be tried again later.
        self.post_errors += sent.failed + sent.deferred


class OpenIncidents:
    """The open incidents of one round: read once at its start, then kept up to date from
    what each action recorded, instead of asking the store again. Only the poller opens and
    closes incidents, so this is what the store holds.
    """

    def __init__(self, incidents: Iterable[Incident]) -> None:
        self._by_id = {incident.id: incident for incident in incidents}

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def now(self) -> list[Incident]:
        """Oldest first, as the store lists them."""
        return [self._by_id[key] for key in sorted(self._by_id)]

    def follow(self, stored: dict[int, Incident | None]) -> None:
        """Take in the incidents as an action left them (None: gone from the store)."""
        for incident_id, incident in stored.items():
            if incident is None or not incident.is_open:
                self._by_id.pop(incident_id, None)
            else:
                self._by_id[incident_id] = incident


class Poller:
    """One round of polling at a time: gathers the facts, lets triage decide, hands the
    actions to delivery, follows API outages and prunes old records.
    """

    def __init__(
        self,
        cde: CdeClient,
        store: Store,
        oncall: OnCall,
        config: PollerConfig = PollerConfig(),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cde = cde
        self.store = store
        self.oncall = oncall
        self.poster = oncall.poster
        self.config = config
        self.clock = clock
        self.delivery = Delivery(store, oncall)
        self.outbox = Outbox(oncall, clock=clock)
        self.outages = outage.OutageStore(store)
        self.coverage = coverage.CoverageStore(store)
        self.failures = FailureWindow(cde, budget=config.poll_max_requests,
                                      max_pages=config.scan_max_pages)

    def start_over(self) -> None:
        """Forget what was read of the window: the next poll starts a new sweep."""
        self.failures.start_over()

    async def poll_once(self) -> PollReport:
        """Fetch, decide, tell. API errors are reported, never raised; one action failing
        never stops the others.
        """
        report = PollReport()
        # What an earlier poll recorded but could not post (or a crash cut short) goes first.
        report.add_pass(await self.outbox.deliver())
        now = self.clock()
        subscriptions = await self.store.subscriptions()
        incidents = OpenIncidents(await self.store.open_incidents())
        if not subscriptions and not incidents:
            return await self._idle(now, report)
        scan: WindowRead | None = None  # no subscription: failed runs are not looked for
        if subscriptions:
            try:
                scan = await self._scan_failures(now, report)
            except CdeError as exc:
                report.failed_on(exc)
                log.warning("poll failed, will retry next poll: %s", exc)
                await self._follow_outage(now, str(exc), report)
                return report
            # Only the scan of failed runs tells whether the API is back.
            await self._follow_outage(now, None, report)
        report.outcome = "ok"
        facts = await self._facts(now, scan, subscriptions, incidents.now())
        report.failed_runs_seen = len(facts.failed_runs)
        await self._deliver(triage.plan_failures(facts), facts, report, incidents)
        finished = await self._scan_recoveries(incidents.now(), report)
        await self._deliver(triage.plan_recoveries(incidents.now(), finished, now), facts, report,
                            incidents)
        await self.delivery.end_mutes(now, incidents.now())
        await self._deliver(triage.plan_expiries(incidents.now(), now, self.config.window), facts,
                            report, incidents)
        await self._follow_coverage(now, report)
        report.add_pass(await self.outbox.deliver())
        await self._prune(now, scan)
        if scan is not None:
            self.failures.done(scan)
        log.info(
            "poll: %d failed runs read, %d posted, %d updated, %d muted, %d not carried out, "
            "%d API requests, %d scans cut short",
            report.failed_runs_seen, report.posted, report.updated, report.suppressed,
            report.post_errors, report.api_requests, report.incomplete_scans,
        )
        return report

    async def _idle(self, now: datetime, report: PollReport) -> PollReport:
        """Nothing to tell, yet the failed runs are scanned and recorded as seen, so that the
        first subscription knows what the bot had seen when it was made (on the bot's own
        clock, see `triage.is_news`). An idle poll counts as a success (for `/readyz` and the
        metrics) only when the API answers and takes the token. The outage record is left
        alone, so the admins hear nothing from an idle bot.
        """
        try:
            scan = await self._scan_failures(now, report)
        except CdeError as exc:
            report.failed_on(exc)
            log.warning("idle poll: the CDE API failed, will retry next poll: %s", exc)
            return report
        report.failed_runs_seen = len(scan.runs)
        self.failures.seen(scan, await self.store.first_seen((run.id for run in scan.runs), now), now)
        self.failures.done(scan)
        return report

    async def _facts(self, now: datetime, scan: WindowRead | None,
                     subscriptions: list[Subscription],
                     open_incidents: list[Incident]) -> triage.PollFacts:
        failed = self.failures.runs(scan) if scan is not None else []
        # Only a scan tells what the bot has seen; without one, nothing is recorded.
        first_seen: dict[str, datetime] = {}
        if scan is not None:
            first_seen = await self.store.first_seen((run.id for run in failed), now)
            self.failures.seen(scan, first_seen, now)
        announced = await self.store.announced(run.id for run in failed)
        mutes = await self.store.active_mutes(now)
        return triage.PollFacts(
            now=now, window=self.config.window, failed_runs=failed, subscriptions=subscriptions,
            announced=announced, open_incidents=open_incidents, mutes=mutes,
            digest_threshold=self.config.digest_threshold,
            first_seen=first_seen, allowed_sites=self.config.allowed_sites,
            allowed_channels=self.config.allowed_channels,
            looked=self.failures.looked(failed),
        )

    async def _deliver(self, actions: Iterable[triage.Action], facts: triage.PollFacts,
                       report: PollReport, incidents: OpenIncidents) -> None:
        for action in actions:
            outcome = await self.delivery.carry_out(action, facts)
            if outcome.failed:
                self.failures.carry(action, facts)
            report.add(action, outcome)
            incidents.follow(outcome.stored)

    async def _prune(self, now: datetime, scan: WindowRead | None) -> None:
        """Records outlive the window twice over, and those of runs the API still lists are
        kept whatever their age, so no run is ever told twice. What is still listed is
        known only once a sweep has read the whole window: until one ends, nothing is
        pruned, and then the runs it read are kept. A sweep cut short by its pages prunes
        nothing either. Without a scan (no subscription) nothing tells which runs are still
        listed, so nothing is pruned.
        """
        if scan is None or scan.cycle is None:
            return
        if not scan.cycle.complete:
            log.warning("nothing pruned: the sweep of failed runs did not reach the end of the "
                        "window")
            return
        listed = scan.cycle.listed
        await self.store.prune_announced(now - 2 * self.config.window, keep=listed)
        await self.store.prune(now - 2 * self.config.window, keep=listed)

    # -- fetching ------------------------------------------------------------------------

    async def _scan_failures(self, now: datetime, report: PollReport) -> WindowRead:
        """This poll's part of the window of failed runs, within `poll_max_requests`."""
        scan = await self.failures.read(now - self.config.window, now)
        report.api_requests += scan.requests
        report.odd_runs = scan.odd
        last = scan.state.last_cycle
        if last is not None:
            report.sweep_polls, report.sweep_seconds = last.polls, last.seconds
        if scan.in_full is not None:
            log.info("the failed runs were read in full this poll (%d requests): %s",
                     scan.requests, scan.in_full)
        if scan.cycle is not None and not scan.cycle.complete:
            log.warning("the sweep of failed runs stopped after %d pages, short of the %s window: "
                        "failures further on are not seen this sweep", scan.cycle.pages,
                        self.config.window)
        if scan.cut_short:
            report.cut_short.append(f"failed runs of the last {duration(self.config.window)}")
        return scan

    async def _scan_recoveries(
        self, open_incidents: list[Incident], report: PollReport
    ) -> dict[triage.IncidentKey, list[Run]]:
        """Finished runs of the open incidents' connectors on their sites, within
        `recovery_max_requests`: one scan per site (newest incidents first) while there are
        no more sites than requests to spend, else one scan of every finished run, newest
        first. Either way the cost follows the sites, never the number of incidents. A scan
        that fails is skipped (tried again next poll); it must not hold up anything else.
        """
        since = _recovery_since(open_incidents)
        if not since:
            return {}
        budget = self.config.recovery_max_requests
        scans = _recovery_scans(since, budget)
        finished: dict[triage.IncidentKey, list[Run]] = {key: [] for key in since}
        spent = 0
        for run_filter, began, where in scans:
            left = budget - spent
            if left <= 0:
                report.cut_short.append(f"finished runs of {where} (recovery budget spent)")
                continue
            try:
                scan = await runs_since(self.cde, run_filter, began, max_pages=left)
            except CdeError as exc:
                log.warning("could not look for recoveries on %s: %s", where, exc)
                continue
            spent += scan.requests
            report.api_requests += scan.requests
            if not scan.complete:
                report.cut_short.append(f"finished runs of {where}")
                log.warning("the recovery scan of %s stopped after %d pages: older recoveries "
                            "are not seen this poll", where, scan.requests)
            for run in scan.runs:
                if (run.site_id, run.connector_id) in finished:
                    finished[(run.site_id, run.connector_id)].append(run)
        return finished

    # -- coverage ------------------------------------------------------------------------

    async def _follow_coverage(self, now: datetime, report: PollReport) -> None:
        """Tell the admins once when scans begin to stop short of the window, and when
        they cover it again; news that could not be posted is told next poll.
        """
        current = await self.coverage.load()
        step = coverage.transition(current, now, tuple(report.cut_short),
                                   pages=self.config.scan_max_pages)
        if isinstance(step.news, coverage.CutShort):
            message = render_notices.scans_cut_short(step.news.scans, step.news.pages)
            if not await self._tell_admins(message, report):
                return
        elif isinstance(step.news, coverage.CoveredAgain):
            if not await self._tell_admins(render_notices.scans_cover_again(step.news.since, now), report):
                return
            log.info("scans of the CDE API cover the look-back window again")
        await self.coverage.save(current, step.short_since)

    # -- API outages ---------------------------------------------------------------------

    async def _follow_outage(self, now: datetime, error: str | None, report: PollReport) -> None:
        """Record whether the API answered (`error` None) and tell the admins when an outage
        has lasted long enough, or ends after they were told; news that could not be posted
        leaves the outage as it was recorded, to be told next poll.
        """
        current = await self.outages.load()
        step = outage.transition(current, now, error, alert_after=self.config.outage_alert_after)
        if step.news is not None and not await self._tell(step.news, now, report):
            return  # told next poll, then
        await self.outages.save(current, step.state)

    async def _tell(self, news: outage.News, now: datetime, report: PollReport) -> bool:
        if isinstance(news, outage.Unreachable):
            log.error("the CDE API has been unreachable since %s: %s", news.since.isoformat(), news.error)
            return await self._tell_admins(render_notices.outage_alert(news.since, news.error, now),
                                           report)
        if news.told and not await self._tell_admins(render_notices.outage_over(news.since, now), report):
            return False
        log.info("the CDE API is reachable again after %s", now - news.since)
        return True

    async def _tell_admins(self, message: Message, report: PollReport) -> bool:
        """Post in the admin channel; True when it was posted, or there is none to post in."""
        channel = self.config.admin_channel
        if not channel:
            return True
        # Posted straight to Slack, not through the outbox: a leader deposed meanwhile must
        # not post it too (`LeaseLost` ends the poll).
        await self.store.confirm_lease()
        # An alert for the admins must never hold up the channels' notices.
        with best_effort(log, "post in the admin channel %s", channel, level=logging.ERROR) as attempt:
            await self.poster.post(channel, message)
        if attempt.failed:
            return False
        report.count_post("admin")
        return True


def _recovery_since(open_incidents: list[Incident]) -> dict[triage.IncidentKey, datetime]:
    """Per (site, connector) with an open incident, since when a finished run would tell
    its recovery: the creation of its oldest incident's latest failed run.
    """
    since: dict[triage.IncidentKey, datetime] = {}
    keys = triage.recovery_keys(open_incidents)
    for incident in open_incidents:
        key = triage.key_of(incident)
        if key in keys:
            began = triage.incident_run(incident).created_at or incident.first_failed_at
            since[key] = min(since.get(key, began), began)
    return since


def _recovery_scans(since: dict[triage.IncidentKey, datetime],
                    budget: int) -> list[tuple[RunFilter, datetime, str]]:
    """The scans that look for these recoveries: one per site, the newest incidents' first,
    while the sites are no more than the requests to spend; else one of every finished run.
    """
    sites: dict[int | None, datetime] = {}
    for (site_id, _), began in since.items():
        sites[site_id] = min(sites.get(site_id, began), began)
    if len(sites) > budget:
        return [(RunFilter(state=FINISHED), min(since.values()), "every site")]
    return [(RunFilter(state=FINISHED, site_id=site_id), began, f"site {site_id}")
            for site_id, began in sorted(sites.items(), key=lambda item: item[1], reverse=True)]
