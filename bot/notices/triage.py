"""Deciding what to tell whom after a poll (pure: facts in, actions out).

A failed run is *new* for a channel when the channel has a matching subscription that the
bot had not seen the failure by when the channel subscribed (see `is_news`), and the run
has not been told there yet. New failures of a
connector on a site that already has an open incident in that channel are *repeats* and go
into that incident's thread; a muted one is only counted. When more than `digest_threshold`
new failures hit one channel in one poll, they are told in one digest instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.cde.models import Run
from bot.notices.models import Incident, Mute, NoticeFilter, Subscription

IncidentKey = tuple[int | None, str | None]  # (site_id, connector_id)


def incident_key(run: Run) -> IncidentKey:
    return (run.site_id, run.connector_id)


def key_of(incident: Incident) -> IncidentKey:
    return (incident.site_id, incident.connector_id)


def failed_at(run: Run, default: datetime) -> datetime:
    """When the run failed: its `finished-at`, or else `default` (when the bot first saw
    it failed). Not `started-at`: a long run that started before a subscription may well
    fail after it.
    """
    return run.finished_at or default


When = Callable[[Run], datetime]

# What the bot had seen is taken as the present only when its last scan was this recent
# when the channel subscribed (see `is_news`). Polls run far more often than that.
RECENT_SCAN = timedelta(minutes=10)


@dataclass(frozen=True)
class OpenIncident:
    """A first failure (or several in one poll) of a connector on a site: a new notice."""

    incident: Incident  # not saved yet: id 0, no message_ts
    runs: tuple[Run, ...]  # oldest first; the last is `incident.run`


@dataclass(frozen=True)
class Repeat:
    """More failures while the incident is open: a thread reply and a new count."""

    incident: Incident  # as it is after these failures
    runs: tuple[Run, ...]  # oldest failure first


@dataclass(frozen=True)
class Suppress:
    """A failure under a mute: counted, not posted."""

    channel_id: str
    run: Run
    incident: Incident | None  # updated counts, when an incident is open


@dataclass(frozen=True)
class Digest:
    """Too many first failures for one channel in one poll: one message for all of them."""

    channel_id: str
    runs: tuple[Run, ...]
    new_incidents: tuple[Incident, ...]  # not saved yet


@dataclass(frozen=True)
class Recover:
    incident: Incident  # resolved
    run: Run  # the finished run that shows it


@dataclass(frozen=True)
class Expire:
    """No failure for a whole look-back window: closed without a recovery seen."""

    incident: Incident


Action = OpenIncident | Repeat | Suppress | Digest | Recover | Expire


@dataclass(frozen=True)
class PollFacts:
    now: datetime
    window: timedelta
    failed_runs: list[Run]
    subscriptions: list[Subscription]
    announced: set[tuple[str, str]]
    open_incidents: list[Incident]
    mutes: list[Mute]
    digest_threshold: int = 5
    # When the bot first saw each failed run (on its own clock).
    first_seen: dict[str, datetime] = field(default_factory=dict)
    # CDE_ALLOWED_SITES: the only sites whose failures are told (empty: every site).
    allowed_sites: frozenset[int] = frozenset()
    # CDE_ALLOWED_CHANNELS: the only channels told of new failures (empty: every channel).
    allowed_channels: frozenset[str] = frozenset()
    # For each failed run, since when the bot had looked where the API lists it without
    # seeing it, when it first saw it (None: it cannot tell). A run missing here is one
    # of a poll that read the whole window: it failed after the last scan before it.
    looked: dict[str, datetime | None] = field(default_factory=dict)

    def when(self, run: Run) -> datetime:
        return failed_at(run, self.first_seen.get(run.id, self.now))

    def looked_before(self, run: Run, seen_until: datetime | None) -> datetime | None:
        """Since when the bot is known to have looked for `run` without seeing it."""
        return self.looked.get(run.id, seen_until)


def is_news(subscription: Subscription, run: Run, facts: PollFacts) -> bool:
    """Whether a failure is news to a subscription: it failed after the channel subscribed.

    The bot's own clock decides whenever it can, so a CDE clock that is off cannot hide a
    failure (polls scan failed runs even when no one subscribes, to know this). Let
    `seen_until` be the bot's last scan before the subscription, and `looked` the time
    since which the bot had looked where the API lists the run without seeing it, when it
    first saw it (`facts.looked`; a poll that reads the whole window has looked
    everywhere at its last scan):

    1. a failure the bot saw by `seen_until` is never news;
    2. one it had looked for since the subscription was made, or since `seen_until`
       when that scan was recent (within `RECENT_SCAN`), failed after it: news;
    3. otherwise the CDE's failure time is compared with the subscription's, from the
       second it was made (the API's times have whole seconds). That is a subscription
       made before the bot's first scan or after an API down for long, a run first seen
       by an earlier process, and a run that failed late far from the head of the window:
       each poll reads the head, but the rest of the window over several polls (a sweep,
       see `bot.cde.window`), so such a run may have failed at any time since the sweep
       last passed it; for a subscription made since then, only the CDE's time can tell
       an old failure from a new one.
    """
    seen_until = subscription.seen_until
    if seen_until is not None and facts.first_seen.get(run.id, facts.now) <= seen_until:
        return False
    looked = facts.looked_before(run, seen_until)
    if looked is not None and looked >= subscription.created_at:
        return True
    if looked is not None and seen_until is not None and \
            looked >= seen_until >= subscription.created_at - RECENT_SCAN:
        return True
    return facts.when(run) >= subscription.created_at.replace(microsecond=0)


class FilterIndex:
    """Filters by the site and connector they follow (None: any), so that a run meets only
    the filters that could match it: with thousands of subscriptions, each on its own site,
    a poll's cost follows its failed runs rather than runs times subscriptions.
    """

    def __init__(self, filters: Iterable[NoticeFilter]) -> None:
        self._by_key: dict[IncidentKey, list[NoticeFilter]] = defaultdict(list)
        for notice_filter in filters:
            self._by_key[(notice_filter.site_id, notice_filter.connector_id)].append(notice_filter)

    def candidates(self, run: Run) -> list[NoticeFilter]:
        """The filters that may match `run` (each once); `NoticeFilter.matches` decides."""
        keys = dict.fromkeys([(run.site_id, run.connector_id), (run.site_id, None),
                              (None, run.connector_id), (None, None)])
        return [f for key in keys for f in self._by_key.get(key, ())]


def new_failures(facts: PollFacts) -> dict[str, list[Run]]:
    """Per channel, the failed runs to tell there, oldest failure first."""
    cutoff = facts.now - facts.window
    # Channels that follow the same filter share one match per run.
    followers: dict[NoticeFilter, list[Subscription]] = defaultdict(list)
    for sub in facts.subscriptions:
        # A subscription made before CDE_ALLOWED_CHANNELS left its channel out is not told.
        if not facts.allowed_channels or sub.channel_id in facts.allowed_channels:
            followers[sub.notice_filter].append(sub)
    index = FilterIndex(followers)
    by_channel: dict[str, dict[str, Run]] = defaultdict(dict)
    for run in facts.failed_runs:
        when = facts.when(run)
        # The window is on creation; a run without a creation time is judged by its failure.
        if not run.failed or (run.created_at or when) < cutoff:
            continue
        # Outside CDE_ALLOWED_SITES a failure is not told, whatever the subscription (one
        # made before the list was set, or one following every site).
        if facts.allowed_sites and run.site_id not in facts.allowed_sites:
            continue
        for notice_filter in index.candidates(run):
            if not notice_filter.matches(run):
                continue
            subs = followers[notice_filter]
            for sub in subs:
                channel = sub.channel_id
                if (channel, run.id) not in facts.announced and is_news(sub, run, facts):
                    by_channel[channel][run.id] = run
    return {
        channel: sorted(runs.values(), key=lambda r: (facts.when(r), r.id))
        for channel, runs in by_channel.items()
    }


def plan_failures(facts: PollFacts) -> list[Action]:
    """What to post for the poll's new failures, channel by channel.

    Failures of a connector whose incident is open go into that incident's thread, all of
    a poll's in one reply. First failures become notices, or one digest when there are
    more than `digest_threshold` of them in the channel.
    """
    open_by = {(i.channel_id, key_of(i)): i for i in facts.open_incidents}
    muted = {(m.channel_id, m.site_id, m.connector_id) for m in facts.mutes if m.until > facts.now}
    actions: list[Action] = []
    for channel, runs in new_failures(facts).items():
        repeats: dict[IncidentKey, list[Run]] = defaultdict(list)
        fresh: dict[IncidentKey, list[Run]] = defaultdict(list)
        for run in runs:
            key = incident_key(run)
            incident = open_by.get((channel, key))
            if (channel, *key) in muted:
                if incident is not None:
                    incident = with_failures(incident, [run], facts.when, muted=True)
                    open_by[(channel, key)] = incident
                actions.append(Suppress(channel, run, incident))
            elif incident is not None:
                repeats[key].append(run)
            else:
                fresh[key].append(run)
        for key, group in repeats.items():
            incident = with_failures(open_by[(channel, key)], group, facts.when)
            actions.append(Repeat(incident, tuple(group)))
        first_failures = sorted((run for group in fresh.values() for run in group),
                                key=lambda r: (facts.when(r), r.id))
        if len(first_failures) > facts.digest_threshold:
            new = tuple(replace(_new_incident(channel, group, facts.when), in_digest=True)
                        for group in fresh.values())
            actions.append(Digest(channel, tuple(first_failures), new))
        else:
            actions.extend(OpenIncident(_new_incident(channel, group, facts.when), tuple(group))
                           for group in fresh.values())
    return actions


def _new_incident(channel: str, runs: list[Run], when: When) -> Incident:
    first, last = runs[0], runs[-1]
    return Incident(
        id=0, channel_id=channel, site_id=last.site_id, connector_id=last.connector_id,
        message_ts="", run=_raw(last), failures=len(runs), muted_failures=0,
        first_failed_at=when(first), last_failed_at=when(last),
    )


def with_failures(incident: Incident, runs: Sequence[Run], when: When, *,
                  muted: bool = False) -> Incident:
    """The incident after `runs` failed too: counted, and the latest failure kept."""
    for run in runs:
        failed = when(run)
        newest = failed >= incident.last_failed_at
        incident = replace(
            incident,
            failures=incident.failures + 1,
            muted_failures=incident.muted_failures + (1 if muted else 0),
            run=_raw(run) if newest else incident.run,
            last_failed_at=max(failed, incident.last_failed_at),
        )
    return incident


def _raw(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json", by_alias=True)


def incident_run(incident: Incident) -> Run:
    """The latest failed run of an incident, as a model."""
    return Run.model_validate(incident.run)


def plan_recoveries(
    incidents: Iterable[Incident], finished: dict[IncidentKey, list[Run]], now: datetime
) -> list[Recover]:
    """Open incidents whose connector has since finished a run on that site."""
    actions = []
    for incident in incidents:
        if not incident.is_open:
            continue
        failed_run = incident_run(incident)
        later = [run for run in finished.get(key_of(incident), []) if _is_after(run, failed_run)]
        if later:
            run = min(later, key=lambda r: r.created_at or now)
            actions.append(Recover(replace(incident, resolved_at=now, resolved_by_run=run.id), run))
    return actions


def _is_after(run: Run, failed_run: Run) -> bool:
    """Did `run` succeed after `failed_run` failed? It must have started after the failed
    run did and finished after it failed: a short run that ended while a long one was
    still going says nothing about the long one's failure.
    """
    if run.state != "finished" or run.id == failed_run.id:
        return False
    if run.created_at is not None and failed_run.created_at is not None:
        started_later = run.created_at > failed_run.created_at
    else:
        # Without creation times, fall back on the ids: UUIDv7 sort by creation time.
        started_later = run.id > failed_run.id
    if run.finished_at is not None and failed_run.finished_at is not None:
        return started_later and run.finished_at > failed_run.finished_at
    return started_later


def plan_expiries(incidents: Iterable[Incident], now: datetime, window: timedelta) -> list[Expire]:
    return [
        Expire(replace(incident, resolved_at=now))
        for incident in incidents
        if incident.is_open and incident.last_failed_at < now - window
    ]


def recovery_keys(incidents: Iterable[Incident]) -> set[IncidentKey]:
    """The (site, connector) pairs whose recovery the next poll must look for."""
    return {
        key_of(i) for i in incidents
        if i.is_open and i.site_id is not None and i.connector_id is not None
    }


def announced_pairs(action: Action) -> list[tuple[str, str]]:
    """The (channel, run) pairs an action tells, to be recorded once it succeeded."""
    if isinstance(action, OpenIncident):
        return [(action.incident.channel_id, run.id) for run in action.runs]
    if isinstance(action, Repeat):
        return [(action.incident.channel_id, run.id) for run in action.runs]
    if isinstance(action, Suppress):
        return [(action.channel_id, action.run.id)]
    if isinstance(action, Digest):
        return [(action.channel_id, run.id) for run in action.runs]
    return []
