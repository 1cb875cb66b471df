"""Carrying out what triage decided: record it, with what is to be posted, in one go.

Every action is one store transaction holding both the state it changes (incidents, runs
told, mutes) and the posts that tell it (outbox entries, `bot.notices.posts`); nothing is
posted here. `bot.notices.outbox` then delivers the entries, so a crash at any instant
leaves either nothing recorded (the action is planned again next poll) or the posts
recorded and delivered later: never a post without its state, nor state without its posts.

A notice not posted yet has no ts: its incidents record the entry's ref as their message,
and the replies and redraws that follow name that ref as their thread. Anything that stops
an action (the database, a bug) leaves it unrecorded, so it is tried again next poll; the
poll goes on with the other actions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.cde.models import Run
from bot.notices import posts, triage
from bot.notices import render as render_notices
from bot.notices.best_effort import best_effort
from bot.notices.models import Incident, Mute
from bot.notices.oncall import OnCall
from bot.notices.posts import OutboxEntry
from bot.store.base import ClaimedElsewhere, LeaseLost, Store

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What carrying out one action did, for the poll's report and its later steps."""

    posts: list[str] = field(default_factory=list)  # kinds of the messages recorded to post
    redrawn: int = 0  # redraws recorded
    suppressed: int = 0
    failed: bool = False
    # Incidents as the action left them in the store, by id (None: no longer there).
    stored: dict[int, Incident | None] = field(default_factory=dict)


Handler = Callable[[Any, triage.PollFacts, Outcome], Awaitable[None]]


class Delivery:
    """Carries out triage's actions: the state and the posts, recorded in the store."""

    def __init__(self, store: Store, oncall: OnCall) -> None:
        self.store = store
        self.oncall = oncall
        self._handlers: dict[type[triage.Action], Handler] = {
            triage.OpenIncident: self._open,
            triage.Repeat: self._repeat,
            triage.Suppress: self._suppress,
            triage.Digest: self._digest,
            triage.Recover: self._recover,
            triage.Expire: self._expire,
        }

    async def carry_out(self, action: triage.Action, facts: triage.PollFacts) -> Outcome:
        """Carry out one action. What stops it is logged and marked in the outcome, not
        raised (see the module).
        """
        outcome = Outcome()
        try:
            await self._handlers[type(action)](action, facts, outcome)
        except LeaseLost:
            raise  # another replica leads: this poll stops here
        except ClaimedElsewhere as exc:
            # Two pollers overlapped and the other recorded it first: nothing to do here.
            log.info("not carrying out %s in %s: %s", type(action).__name__, _channel(action), exc)
            outcome.stored = {}
        except Exception:
            # Whatever goes wrong with one action (the database, a bug), the poll goes on
            # with the others; nothing of it was recorded, so it is tried again next poll.
            outcome.failed = True
            log.exception("could not carry out %s in %s", type(action).__name__, _channel(action))
        return outcome

    # -- one handler per action ----------------------------------------------------------

    async def _open(self, action: triage.OpenIncident, facts: triage.PollFacts,
                    outcome: Outcome) -> None:
        channel, runs = action.incident.channel_id, action.runs
        notice = posts.entry(posts.NOTICE, channel, render_notices.notice(
            action.incident, links=self.oncall.links), _runs_key(runs), draw=True)
        # Several failures of one connector in one poll: one notice, every run in its thread.
        entries = [notice, *(_list_runs(runs, channel, notice.ref) if len(runs) > 1 else [])]
        incident = await self.store.save_incident(
            replace(action.incident, message_ts=notice.ref),
            announce=triage.announced_pairs(action), at=facts.now, outbox=entries)
        _queued(outcome, entries)
        outcome.stored[incident.id] = incident

    async def _repeat(self, action: triage.Repeat, facts: triage.PollFacts, outcome: Outcome) -> None:
        incident, runs = action.incident, action.runs
        entries = [
            posts.entry(posts.REPEAT, incident.channel_id,
                        render_notices.repeat_reply(incident, runs), incident.id, _runs_key(runs),
                        thread=incident.message_ts),
            posts.redraw(incident.channel_id, incident.message_ts, facts.now),
        ]
        stored = await self.store.update_incident(
            incident.id, lambda current: triage.with_failures(current, runs, facts.when),
            announce=triage.announced_pairs(action), at=facts.now, outbox=entries)
        _queued(outcome, entries if stored is not None else [])
        outcome.stored[incident.id] = stored

    async def _suppress(self, action: triage.Suppress, facts: triage.PollFacts,
                        outcome: Outcome) -> None:
        outcome.suppressed += 1
        run = action.run
        # The mute counts what it holds back, to tell when it ends.
        await self.store.count_suppressed(action.channel_id, run.site_id, run.connector_id)
        told = triage.announced_pairs(action)
        if action.incident is None:
            await self.store.mark_announced(told, facts.now)
            return
        incident = action.incident
        entries = [posts.redraw(incident.channel_id, incident.message_ts, facts.now)]
        stored = await self.store.update_incident(
            incident.id, lambda current: triage.with_failures(current, [run], facts.when, muted=True),
            announce=told, at=facts.now, outbox=entries)
        _queued(outcome, entries if stored is not None else [])
        outcome.stored[incident.id] = stored

    async def _digest(self, action: triage.Digest, facts: triage.PollFacts, outcome: Outcome) -> None:
        channel = action.channel_id
        # Drawn from the store when sent, once its pairs have ids ("Mute a pair" names them).
        digest = posts.entry(posts.DIGEST, channel, render_notices.digest(action.new_incidents),
                             _runs_key(action.runs), draw=True)
        entries = [digest, *_list_runs(action.runs, channel, digest.ref)]
        saved = await self.store.save_incidents(
            [replace(incident, message_ts=digest.ref) for incident in action.new_incidents],
            announce=triage.announced_pairs(action), at=facts.now, outbox=entries)
        _queued(outcome, entries)
        outcome.stored.update((incident.id, incident) for incident in saved)

    async def _recover(self, action: triage.Recover, facts: triage.PollFacts, outcome: Outcome) -> None:
        incident, run, now = action.incident, action.run, facts.now
        entries = [
            posts.entry(posts.RECOVERY, incident.channel_id,
                        render_notices.recovered_reply(incident, run), incident.id, run.id,
                        thread=incident.message_ts),
            posts.redraw(incident.channel_id, incident.message_ts, now),
        ]
        stored = await self.store.update_incident(
            incident.id, lambda current: replace(_still_open(current), resolved_at=now,
                                                 resolved_by_run=run.id),
            outbox=entries)
        _queued(outcome, entries if stored is not None else [])
        outcome.stored[incident.id] = stored

    async def _expire(self, action: triage.Expire, facts: triage.PollFacts, outcome: Outcome) -> None:
        now, incident = facts.now, action.incident
        entries = [posts.redraw(incident.channel_id, incident.message_ts, now)]
        stored = await self.store.update_incident(
            incident.id, lambda current: replace(_still_open(current), resolved_at=now),
            outbox=entries)
        _queued(outcome, entries if stored is not None else [])
        outcome.stored[incident.id] = stored

    # -- mutes that ran out --------------------------------------------------------------

    async def end_mutes(self, now: datetime, open_incidents: list[Incident]) -> None:
        """Tell a notice's thread when its mute ran out, with what it held back."""
        open_by = {(i.channel_id, i.site_id, i.connector_id): i for i in open_incidents}
        for mute in await self.store.ended_mutes(now):
            await self._end_mute(mute, open_by.get((mute.channel_id, mute.site_id,
                                                    mute.connector_id)), now)

    async def _end_mute(self, mute: Mute, incident: Incident | None, now: datetime) -> None:
        """Forget one mute and record the post that tells its end, in one transaction."""
        entries: list[OutboxEntry] = []
        if incident is not None:
            entries = [
                posts.entry(posts.MUTE_ENDED, mute.channel_id,
                            render_notices.mute_ended(mute.suppressed), mute.site_id,
                            mute.connector_id, mute.until.isoformat(), thread=incident.message_ts),
                posts.redraw(incident.channel_id, incident.message_ts, now),
            ]
        # One mute must not keep the others (nor the rest of the poll) from ending; the one
        # that failed is tried again next poll.
        with best_effort(log, "tell that a mute in %s ended", mute.channel_id):
            await self.store.delete_mute(mute.channel_id, mute.site_id, mute.connector_id,
                                         outbox=entries)


def _still_open(incident: Incident) -> Incident:
    """The incident, when no other poller closed it meanwhile (a recovery or expiry is
    told once: the second to close it rolls back).
    """
    if incident.resolved_at is not None:
        raise ClaimedElsewhere(f"incident {incident.id} was closed already")
    return incident


def _queued(outcome: Outcome, entries: list[OutboxEntry]) -> None:
    for entry in entries:
        if entry.kind == posts.REDRAW:
            outcome.redrawn += 1
        else:
            outcome.posts.append(entry.kind)


def _runs_key(runs: tuple[Run, ...] | list[Run]) -> str:
    """What a post about these runs tells, for its key: the run, or a digest of them."""
    ids = [run.id for run in runs]
    return ids[0] if len(ids) == 1 else posts.digest_of(ids)


def _list_runs(runs: tuple[Run, ...], channel: str, parent: str) -> list[OutboxEntry]:
    """Thread replies listing `runs` under the parent (a ts or a ref)."""
    return [
        posts.entry(posts.DIGEST_LIST, channel, reply, parent, index, thread=parent)
        for index, reply in enumerate(render_notices.digest_list(runs))
    ]


def _channel(action: triage.Action) -> str:
    if isinstance(action, triage.Suppress | triage.Digest):
        return action.channel_id
    return action.incident.channel_id
