"""On-call actions on posted notices: draw a parent again, acknowledge, mute.

Shared by the poller (after a repeat, recovery or expiry) and the button listeners, so a
notice looks the same whichever path last changed it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError

from bot import render_notices
from bot.render import LinkBuilder, Message, no_links
from bot.slack import SlackPoster, slack_error
from bot.store.base import Incident, Mute, Store

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, store: Store, poster: SlackPoster, links: LinkBuilder = no_links) -> None:
        self.store = store
        self.poster = poster
        self.links = links

    async def draw(self, incident: Incident, now: datetime) -> Message:
        """The parent message as it should look now."""
        if incident.in_digest:
            siblings = await self.store.incidents_of_message(incident.channel_id, incident.message_ts)
            return render_notices.digest(siblings)
        return render_notices.notice(incident, mute=await self._mute_of(incident, now), links=self.links)

    async def refresh(self, incident: Incident, now: datetime) -> None:
        """Draw the parent again with `chat.update`; a failure is logged, not raised: the
        state is saved and the next change draws it again.
        """
        try:
            await self.poster.update(incident.channel_id, incident.message_ts,
                                     await self.draw(incident, now))
        except SlackApiError as exc:
            log.warning("could not update notice %s in %s: %s", incident.message_ts,
                        incident.channel_id, slack_error(exc))

    async def acknowledge(self, channel_id: str, message_ts: str, user: str,
                          now: datetime) -> list[Incident]:
        """Mark every open incident of this message as taken by `user`."""
        changed = []
        for incident in await self.store.incidents_of_message(channel_id, message_ts):
            if incident.is_open and not incident.acknowledged_by:
                changed.append(await self.store.save_incident(
                    replace(incident, acknowledged_by=user, acknowledged_at=now)))
        if changed:
            await self.refresh(changed[0], now)
        return changed

    async def mute(self, channel_id: str, message_ts: str, user: str, hours: int,
                   now: datetime) -> Mute | None:
        """Mute (or with 0 hours, unmute) the message's connector on its site in this channel."""
        incidents = await self.store.incidents_of_message(channel_id, message_ts)
        if not incidents:
            return None
        incident = incidents[0]
        until = now + timedelta(hours=hours)
        mute = Mute(channel_id, incident.site_id, incident.connector_id, until, user)
        await self.store.set_mute(mute)
        await self.refresh(incident, now)
        try:
            await self.poster.post(channel_id, render_notices.muted_notice_reply(hours, user, until),
                                   thread_ts=message_ts)
        except SlackApiError as exc:
            log.warning("could not reply in %s: %s", channel_id, slack_error(exc))
        return mute

    async def _mute_of(self, incident: Incident, now: datetime) -> Mute | None:
        for mute in await self.store.active_mutes(now):
            if (mute.channel_id, mute.site_id, mute.connector_id) == (
                incident.channel_id, incident.site_id, incident.connector_id
            ):
                return mute
        return None
