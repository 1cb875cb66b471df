"""On-call actions on posted notices: draw a parent again, acknowledge, mute.

Shared by the poller (after a repeat, recovery or expiry) and the button listeners, so a
notice looks the same whichever path last changed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.lookups.runs import LinkBuilder, no_links
from bot.notices import audit
from bot.notices import render as render_notices
from bot.notices.best_effort import best_effort
from bot.notices.models import Incident, Mute, NoticeRef
from bot.slack.message import Message
from bot.slack.poster import SlackError, SlackPoster
from bot.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Acknowledged:
    """The incidents of the message clicked, as they are afterwards (empty when the message
    is not a tracked notice), and whether the message could be drawn again to show it."""

    incidents: list[Incident]
    redrawn: bool = True


@dataclass(frozen=True)
class Muted:
    """The mute set (or lifted), and whether the notice could be drawn again to show it."""

    mute: Mute
    redrawn: bool = True


class OnCall:
    """What on-call people (and the poller) do to a posted notice: draw it, take it, mute it."""

    def __init__(self, store: Store, poster: SlackPoster, links: LinkBuilder = no_links) -> None:
        self.store = store
        self.poster = poster
        self.links = links
        # Per message: its lock and how many redraws hold or wait for it. An entry lives
        # only while one does, so the map stays as small as the redraws under way.
        self._redraw_locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def draw(self, incident: Incident, now: datetime) -> Message:
        """The parent message as it should look now."""
        if incident.in_digest:
            siblings = await self.store.incidents_of_message(incident.channel_id, incident.message_ts)
            return render_notices.digest(siblings)
        return render_notices.notice(incident, mute=await self._mute_of(incident, now), links=self.links)

    @contextlib.asynccontextmanager
    async def redraw_turn(self, channel_id: str, message_ts: str) -> AsyncIterator[None]:
        """Redraws of one message take turns (see `refresh`): this one's turn."""
        key = (channel_id, message_ts)
        lock, users = self._redraw_locks.get(key, (asyncio.Lock(), 0))
        self._redraw_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._redraw_locks[key]
            if users == 1:
                del self._redraw_locks[key]
            else:
                self._redraw_locks[key] = (lock, users - 1)

    @property
    def redraws_under_way(self) -> int:
        """Messages with a redraw holding or waiting for its turn."""
        return len(self._redraw_locks)

    async def refresh(self, incident: Incident, now: datetime) -> bool:
        """Draw the parent again with `chat.update`, from the incident as stored now (a
        click may have changed it since the caller read it). Redraws of one message take
        turns, so the last one sent is drawn from the latest state. A failure is logged,
        not raised: the state is saved and the next change draws it again. Whether it was
        drawn (a click tells the clicker when it was not).
        """
        async with self.redraw_turn(incident.channel_id, incident.message_ts):
            # The state is saved and the next change draws it again, so a redraw never fails
            # the poll or the click.
            with best_effort(log, "update notice %s in %s", incident.message_ts,
                             incident.channel_id) as attempt:
                incident = await self.store.incident(incident.id) or incident
                await self.poster.update(incident.channel_id, incident.message_ts,
                                         await self.draw(incident, now))
        return not attempt.failed

    async def acknowledge(self, notice: NoticeRef, user: str, now: datetime) -> Acknowledged:
        """Mark every open incident of this message as taken by `user`; the message's
        incidents as they are afterwards (empty when the message is not a tracked notice).
        """
        incidents = await self.store.incidents_of_message(notice.channel_id, notice.message_ts)
        changed = False
        for incident in incidents:
            if incident.is_open and not incident.acknowledged_by:
                entry = audit.acknowledged(incident, user, now)
                stored = await self.store.acknowledge_incident(incident.id, user, now, audit=entry)
                taken = stored is not None and stored.acknowledged_by == user
                if taken:
                    audit.logged(entry)
                changed = changed or taken
        redrawn = await self.refresh(incidents[0], now) if changed else True
        return Acknowledged(await self.store.incidents_of_message(notice.channel_id, notice.message_ts),
                            redrawn)

    async def mute(self, notice: NoticeRef, user: str, hours: int, now: datetime, *,
                   incident_id: int | None = None) -> Muted | None:
        """Mute (or with 0 hours, unmute) a connector on a site in this channel: the one of
        this notice, or the digest's pair `incident_id`. None when there is nothing to mute.
        """
        channel_id = notice.channel_id
        incidents = await self.store.incidents_of_message(channel_id, notice.message_ts)
        if incident_id is not None:
            incidents = [i for i in incidents if i.id == incident_id]
        if not incidents:
            return None
        incident = incidents[0]
        current = await self._mute_of(incident, now)
        until = now + timedelta(hours=hours)
        # Muting again keeps the count of what the mute already held back.
        mute = Mute(channel_id, incident.site_id, incident.connector_id, until, user,
                    suppressed=current.suppressed if current else 0)
        entry = audit.muted(incident, user, now, hours, until)
        if hours:
            await self.store.set_mute(mute, audit=entry)
        else:
            await self.store.delete_mute(channel_id, incident.site_id, incident.connector_id, audit=entry)
        audit.logged(entry)
        redrawn = await self.refresh(incident, now)
        try:
            await self.poster.post(channel_id, render_notices.muted_notice_reply(hours, user, until),
                                   thread_ts=notice.message_ts)
        except SlackError as exc:
            log.warning("could not reply in %s: %s", channel_id, exc.code)
        return Muted(mute, redrawn)

    async def _mute_of(self, incident: Incident, now: datetime) -> Mute | None:
        for mute in await self.store.active_mutes(now):
            if (mute.channel_id, mute.site_id, mute.connector_id) == (
                incident.channel_id, incident.site_id, incident.connector_id
            ):
                return mute
        return None
