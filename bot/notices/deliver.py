"""Carrying out what triage decided: post, record, draw again.

One handler per kind of action, chosen from a table. What happens when Slack says no is
decided here, once, for every action:

- An action's first post is the one that matters: once Slack took it, the incident and
  the runs it told are recorded in one transaction. What follows it (listing runs in the
  thread, drawing the parent again) is best effort.
- When Slack refuses the first post for good (no access to the channel, a message it will
  never take), the runs are recorded as told rather than failed on for ever.
- Anything else that stops an action (Slack unavailable, the database) leaves it
  unrecorded, so it is tried again next poll; the poll goes on with the other actions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.cde.models import Run
from bot.notices import render as render_notices
from bot.notices import triage
from bot.notices.best_effort import best_effort
from bot.notices.models import Incident, Mute
from bot.notices.oncall import OnCall
from bot.slack.poster import ChannelUnavailable, MessageRefused, SlackError
from bot.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What carrying out one action did, for the poll's report and its later steps."""

    posts: list[str] = field(default_factory=list)  # kinds of the messages Slack accepted
    redrawn: int = 0
    suppressed: int = 0
    failed: bool = False
    # Incidents as the action left them in the store, by id (None: no longer there).
    stored: dict[int, Incident | None] = field(default_factory=dict)


Handler = Callable[[Any, triage.PollFacts, Outcome], Awaitable[None]]


class Delivery:
    """Carries out triage's actions through the poster, recording each in the store."""

    def __init__(self, store: Store, oncall: OnCall) -> None:
        self.store = store
        self.oncall = oncall
        self.poster = oncall.poster
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
        raised (see the module); only recording a refusal for good as told can raise.
        """
        outcome = Outcome()
        name, channel = type(action).__name__, _channel(action)
        try:
            await self._handlers[type(action)](action, facts, outcome)
        except (ChannelUnavailable, MessageRefused) as exc:
            # The first post failed, so nothing of the action was recorded; trying again
            # cannot help: record the runs as told rather than failing on them for ever.
            outcome.failed = True
            log.error("cannot post %s in %s (%s); the failure is recorded as told", name, channel,
                      exc.code)
            await self.store.mark_announced(triage.announced_pairs(action), facts.now)
        except SlackError as exc:
            outcome.failed = True
            log.warning("Slack refused %s in %s (%s); will retry next poll", name, channel, exc.code)
        except Exception:
            # Whatever else goes wrong with one action (the database, a bug), the poll goes
            # on with the others; what was not recorded is tried again next poll.
            outcome.failed = True
            log.exception("could not carry out %s in %s", name, channel)
        return outcome

    # -- one handler per action ----------------------------------------------------------

    async def _open(self, action: triage.OpenIncident, facts: triage.PollFacts,
                    outcome: Outcome) -> None:
        incident = action.incident
        ts = await self.poster.post(incident.channel_id, render_notices.notice(
            incident, links=self.oncall.links))
        outcome.posts.append("notice")
        incident = await self.store.save_incident(replace(incident, message_ts=ts),
                                                  announce=triage.announced_pairs(action), at=facts.now)
        outcome.stored[incident.id] = incident
        if len(action.runs) > 1:
            # Several failures of one connector in one poll: one notice, every run in its thread.
            await self._list_runs(action.runs, incident.channel_id, ts, outcome, "a notice")

    async def _repeat(self, action: triage.Repeat, facts: triage.PollFacts, outcome: Outcome) -> None:
        incident, runs = action.incident, action.runs
        await self.poster.post(incident.channel_id, render_notices.repeat_reply(incident, runs),
                               thread_ts=incident.message_ts)
        outcome.posts.append("repeat")
        stored = await self.store.update_incident(
            incident.id, lambda current: triage.with_failures(current, runs, facts.when),
            announce=triage.announced_pairs(action), at=facts.now)
        await self._recorded(incident.id, stored, facts.now, outcome)

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
        stored = await self.store.update_incident(
            action.incident.id,
            lambda current: triage.with_failures(current, [run], facts.when, muted=True),
            announce=told, at=facts.now)
        await self._recorded(action.incident.id, stored, facts.now, outcome)

    async def _digest(self, action: triage.Digest, facts: triage.PollFacts, outcome: Outcome) -> None:
        channel = action.channel_id
        ts = await self.poster.post(channel, render_notices.digest(action.new_incidents))
        outcome.posts.append("digest")
        saved = await self.store.save_incidents(
            [replace(incident, message_ts=ts) for incident in action.new_incidents],
            announce=triage.announced_pairs(action), at=facts.now)
        outcome.stored.update((incident.id, incident) for incident in saved)
        if saved:
            # Drawn again now that its pairs have ids, so that "Mute a pair" can name them.
            await self._redraw(saved[0], facts.now, outcome)
        await self._list_runs(action.runs, channel, ts, outcome, "a digest")

    async def _recover(self, action: triage.Recover, facts: triage.PollFacts, outcome: Outcome) -> None:
        incident, run, now = action.incident, action.run, facts.now
        await self.poster.post(incident.channel_id, render_notices.recovered_reply(incident, run),
                               thread_ts=incident.message_ts)
        outcome.posts.append("recovery")
        stored = await self.store.update_incident(
            incident.id, lambda current: replace(current, resolved_at=now, resolved_by_run=run.id))
        await self._recorded(incident.id, stored, now, outcome)

    async def _expire(self, action: triage.Expire, facts: triage.PollFacts, outcome: Outcome) -> None:
        now = facts.now
        stored = await self.store.update_incident(
            action.incident.id, lambda current: replace(current, resolved_at=now))
        await self._recorded(action.incident.id, stored, now, outcome)

    # -- what follows a first post -------------------------------------------------------

    async def _recorded(self, incident_id: int, stored: Incident | None, now: datetime,
                        outcome: Outcome) -> None:
        outcome.stored[incident_id] = stored
        if stored is not None:
            await self._redraw(stored, now, outcome)

    async def _redraw(self, incident: Incident, now: datetime, outcome: Outcome) -> None:
        await self.oncall.refresh(incident, now)
        outcome.redrawn += 1

    async def _list_runs(self, runs: tuple[Run, ...], channel: str, ts: str,
                         outcome: Outcome, parent: str) -> None:
        """List `runs` in the parent's thread, best effort: the parent told the news."""
        for reply in render_notices.digest_list(runs):
            try:
                await self.poster.post(channel, reply, thread_ts=ts)
            except SlackError as exc:
                log.warning("could not list the runs of %s: %s", parent, exc.code)
                continue
            outcome.posts.append("digest_list")

    # -- mutes that ran out --------------------------------------------------------------

    async def end_mutes(self, now: datetime, open_incidents: list[Incident]) -> None:
        """Tell a notice's thread when its mute ran out, with what it held back."""
        open_by = {(i.channel_id, i.site_id, i.connector_id): i for i in open_incidents}
        for mute in await self.store.ended_mutes(now):
            incident = open_by.get((mute.channel_id, mute.site_id, mute.connector_id))
            if await self._end_mute(mute, incident) and incident is not None:
                await self.oncall.refresh(incident, now)

    async def _end_mute(self, mute: Mute, incident: Incident | None) -> bool:
        """Tell the end of one mute, then forget it (so that it is told once)."""
        # One mute must not keep the others (nor the rest of the poll) from ending; the one
        # that failed is tried again next poll.
        with best_effort(log, "tell that a mute in %s ended", mute.channel_id) as attempt:
            if incident is not None:
                await self.poster.post(mute.channel_id, render_notices.mute_ended(mute.suppressed),
                                       thread_ts=incident.message_ts)
            await self.store.delete_mute(mute.channel_id, mute.site_id, mute.connector_id)
        return not attempt.failed


def _channel(action: triage.Action) -> str:
    if isinstance(action, triage.Suppress | triage.Digest):
        return action.channel_id
    return action.incident.channel_id
