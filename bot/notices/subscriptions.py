"""Channel subscriptions: `/cde subscribe`, `/cde subscriptions`, `/cde unsubscribe`.

A new subscription is announced in the channel itself with `chat.postMessage`: everyone
there sees who subscribed to what, and the post proves the bot can write there. When it
cannot (a private channel it was not invited to), the subscription is taken back and the
person is told how to fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.access import UNBOUNDED, AccessPolicy
from bot.notices import audit
from bot.notices import render as render_notices
from bot.query import COMMAND, Audit, ListSubscriptions, Subscribe, Unsubscribe, subscription_words
from bot.slack.message import Message
from bot.slack.mrkdwn import code, escape
from bot.slack.poster import ChannelUnavailable, SlackError, SlackPoster
from bot.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conversation:
    """Where a subscription command was given, as far as its answers need to know: the
    channel's name as Slack sends it (`directmessage` in a DM, `mpdm-...` in a group DM)
    and the bot's own user id (from `auth.test`), to name the bot as Slack shows it.
    """

    name: str = ""
    bot_user_id: str | None = None

    def is_direct(self, channel_id: str) -> bool:
        """A direct or group message, where no one can invite an app."""
        return (channel_id.startswith("D") or self.name == "directmessage"
                or self.name.startswith("mpdm-"))

    def bot(self) -> str:
        return f"<@{escape(self.bot_user_id)}>" if self.bot_user_id else "me"


class Subscriptions:
    """The subscription sub-commands: follow, list and stop following failed runs in a
    channel. A subscription holds only once its confirmation is posted in the channel, so
    one the bot cannot post in is taken back at once.
    """

    def __init__(self, store: Store, poster: SlackPoster, policy: AccessPolicy = UNBOUNDED) -> None:
        self.store = store
        self.poster = poster
        self.policy = policy

    async def answer(
        self, command: Subscribe | ListSubscriptions | Unsubscribe, *, channel_id: str, user_id: str,
        now: datetime, where: Conversation | None = None,
    ) -> Message | None:
        """The ephemeral answer, or None when the answer was posted in the channel."""
        if isinstance(command, ListSubscriptions):
            return render_notices.subscription_list(
                await self.store.subscriptions(channel_id),
                await self.store.audit_log(render_notices.RECENT_CHANGES, channel_id))
        if isinstance(command, Unsubscribe):
            return await self._unsubscribe(command, channel_id, user_id, now)
        return await self._subscribe(command, channel_id, user_id, now, where or Conversation())

    async def _subscribe(self, command: Subscribe, channel_id: str, user_id: str,
                         now: datetime, where: Conversation) -> Message | None:
        site = command.notice_filter.site_id
        if site is not None and not self.policy.may_see_site(site):
            return render_notices.plain_answer(
                f":warning: Site {code(site)} is not one cde-bot follows here (see "
                "`CDE_ALLOWED_SITES`), so I did not subscribe this channel.", error=True)
        if command.notice_filter.is_empty and not command.everything:
            return render_notices.confirm_subscribe_all()
        subscription = await self.store.add_subscription(
            channel_id, command.notice_filter, user_id, now,
            audit=lambda made: audit.subscribed(made, user_id))
        if subscription is None:
            return render_notices.plain_answer(
                ":information_source: This channel already follows "
                f"{render_notices.describe(command.notice_filter)}. See `/cde subscriptions`.", error=True)
        try:
            await self.poster.post(channel_id, render_notices.subscribed(subscription))
        except SlackError as exc:
            audit.logged(audit.subscribed(subscription, user_id))
            back = audit.taken_back(subscription, user_id, now, exc.code)
            await self.store.remove_subscription(channel_id, subscription.id, audit=back)
            audit.logged(back)
            log.warning("subscription in %s taken back: cannot post there (%s)", channel_id, exc.code)
            if isinstance(exc, ChannelUnavailable):
                return _cannot_post(command, channel_id, where)
            return render_notices.plain_answer(
                f":warning: Slack refused the confirmation post ({code(exc.code)}), so I did not "
                "subscribe this channel. Try again in a minute.", error=True)
        audit.logged(audit.subscribed(subscription, user_id))
        log.info("channel %s subscribed (#%d) by %s: %s", channel_id, subscription.id, user_id,
                 subscription.notice_filter.as_dict())
        return None

    async def _unsubscribe(self, command: Unsubscribe, channel_id: str, user_id: str,
                           now: datetime) -> Message | None:
        """The ephemeral answer when the removal cannot be (or was not) announced in the
        channel; None when it was.
        """
        if command.subscription_id is None:
            count = await self.store.remove_all_subscriptions(
                channel_id, audit=lambda removed: audit.unsubscribed_all(channel_id, user_id, now, removed))
            if not count:
                return render_notices.plain_answer("This channel has no subscriptions to remove.", error=True)
            audit.logged(audit.unsubscribed_all(channel_id, user_id, now, count))
        else:
            entry = audit.unsubscribed(channel_id, user_id, now, command.subscription_id)
            if not await self.store.remove_subscription(channel_id, command.subscription_id, audit=entry):
                return render_notices.plain_answer(
                    f":warning: This channel has no subscription {code(command.subscription_id)}. "
                    "See `/cde subscriptions` for the ids.", error=True)
            audit.logged(entry)
            count = 1
        answer = render_notices.unsubscribed(user_id, count, command.subscription_id)
        try:
            await self.poster.post(channel_id, answer)
        except SlackError as exc:
            log.warning("could not announce unsubscribe in %s: %s", channel_id, exc.code)
            return answer
        return None


async def audit_answer(store: Store, command: Audit, channel_id: str, *, every_channel: bool) -> Message:
    """`/cde audit [N]`: the last N changes of this channel, or of every channel."""
    entries = await store.audit_log(command.limit, None if every_channel else channel_id)
    return render_notices.audit_trail(entries, every_channel=every_channel)


def _cannot_post(command: Subscribe, channel_id: str, where: Conversation) -> Message:
    """Why a subscription was taken back when the bot cannot post, and what would work."""
    if where.is_direct(channel_id):
        # Slack lets no one add an app to a DM between people or to a group DM; only the
        # app's own DM with a person is open to it (and there the post succeeds).
        again = " ".join(["subscribe", *subscription_words(command.notice_filter)]) \
            if not command.notice_filter.is_empty else "subscribe all"
        return render_notices.plain_answer(
            ":warning: Notices need a channel: Slack does not let apps into a direct message "
            "between people or a group DM, so I cannot post here and did not "
            f"subscribe it. Run `{COMMAND} {escape(again)}` in a channel instead.", error=True)
    return render_notices.plain_answer(
        f":warning: I cannot post in this channel, so I did not subscribe it. Invite {where.bot()} "
        "to this channel first (`/invite`), then subscribe again.",
        error=True)
