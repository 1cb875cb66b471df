"""Who may do what: the bounds set by `CDE_ADMINS`, `CDE_ALLOWED_CHANNELS` and
`CDE_ALLOWED_SITES`, and the answers that explain a refusal.

The decisions are pure (`AccessPolicy`, `decide_change`); `Access` adds the one piece of
I/O they need, the members of the user groups in `CDE_ADMINS`, read through a
`GroupResolver` (Slack's `usergroups.users.list`, see `bot.slack.usergroups`) and cached.
Unset settings bound nothing: every user may change, every channel is answered, every site
is shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from bot.config import Settings
from bot.slack.mrkdwn import escape

log = logging.getLogger(__name__)

# How long the members of a user group are trusted before Slack is asked again: a person
# removed from the group loses their say within this time.
GROUP_TTL_SECONDS = 300.0


class GroupLookupFailed(Exception):
    """Slack could not say who is in a user group; the message is Slack's error code or the
    transport's failure, for the log."""


class GroupResolver(Protocol):
    """The members (user ids) of a Slack user group."""

    async def members(self, group_id: str) -> frozenset[str]:
        """Raises `GroupLookupFailed` when they cannot be read."""
        ...


def is_user_group(admin_id: str) -> bool:
    """A user-group id (`S…`), as opposed to a user id (`U…`/`W…`)."""
    return admin_id.startswith("S")


@dataclass(frozen=True)
class AccessPolicy:
    """The configured bounds; an empty one bounds nothing."""

    admins: tuple[str, ...] = ()
    channels: frozenset[str] = frozenset()
    sites: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        return cls(settings.cde_admins, frozenset(settings.cde_allowed_channels),
                   frozenset(settings.cde_allowed_sites))

    @property
    def admin_users(self) -> frozenset[str]:
        return frozenset(a for a in self.admins if not is_user_group(a))

    @property
    def admin_groups(self) -> tuple[str, ...]:
        return tuple(a for a in self.admins if is_user_group(a))

    def may_answer_in(self, channel_id: str | None) -> bool:
        """Whether the bot answers in this channel. A request naming no channel is outside
        every list, so it is answered only when no list is set."""
        return not self.channels or channel_id in self.channels

    def may_see_site(self, site_id: int | None) -> bool:
        """Whether a site is shown and followed. A run that names no site cannot be shown to
        be within the list, so with a list set it is left out."""
        return not self.sites or site_id in self.sites

    def who_may_change(self) -> str:
        """The admins as Slack mentions (users `<@U…>`, groups `<!subteam^S…>`)."""
        return ", ".join(f"<!subteam^{escape(a)}>" if is_user_group(a) else f"<@{escape(a)}>"
                         for a in self.admins)


# Bounds nothing: what every part uses when no policy is given.
UNBOUNDED = AccessPolicy()


class Verdict(Enum):
    """The answer to "may this user change subscriptions and mutes?"."""

    ALLOWED = "allowed"
    NOT_ADMIN = "not_admin"
    # The user is no admin by id, and a group they may be in could not be read: refused
    # (a Slack outage must not open the door), with a message saying so.
    UNRESOLVED = "unresolved"


def decide_change(policy: AccessPolicy, user: str | None,
                  groups: Mapping[str, frozenset[str] | None]) -> Verdict:
    """Whether `user` may change, given the members of each admin group as far as they are
    known (`None`: could not be read). Pure."""
    if not policy.admins:
        return Verdict.ALLOWED
    if not user:
        return Verdict.NOT_ADMIN
    if user in policy.admin_users:
        return Verdict.ALLOWED
    members = [groups.get(group) for group in policy.admin_groups]
    if any(found is not None and user in found for found in members):
        return Verdict.ALLOWED
    return Verdict.UNRESOLVED if any(found is None for found in members) else Verdict.NOT_ADMIN


def refusal(policy: AccessPolicy, verdict: Verdict, what: str) -> str:
    """The mrkdwn answer to a refused change; `what` is the thing asked, e.g. "subscribe"."""
    if verdict is Verdict.UNRESOLVED:
        return (f":no_entry: Only {policy.who_may_change()} may {what} here, and Slack could not "
                "tell me who is in that user group just now, so I did nothing. Try again in a "
                "minute; if this persists, an admin should check the app's `usergroups:read` scope.")
    return f":no_entry: Only {policy.who_may_change()} may {what} here. Ask one of them."


def not_enabled_here() -> str:
    """The one answer in a channel outside `CDE_ALLOWED_CHANNELS`."""
    return (":no_entry: cde-bot is not enabled in this channel. Ask an admin to add it to "
            "`CDE_ALLOWED_CHANNELS`, or use a channel where it is enabled.")


@dataclass
class _Cached:
    members: frozenset[str]
    at: float


@dataclass
class Access:
    """The policy with user groups resolved: what listeners ask before acting."""

    policy: AccessPolicy = field(default_factory=AccessPolicy)
    resolver: GroupResolver | None = None
    ttl: float = GROUP_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, _Cached] = field(default_factory=dict, init=False, repr=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)

    def may_answer_in(self, channel_id: str | None) -> bool:
        return self.policy.may_answer_in(channel_id)

    def may_see_site(self, site_id: int | None) -> bool:
        return self.policy.may_see_site(site_id)

    @property
    def admins_only(self) -> bool:
        """Whether changes are bounded to `CDE_ADMINS`."""
        return bool(self.policy.admins)

    async def may_change(self, user: str | None) -> Verdict:
        """Whether `user` may subscribe, unsubscribe, mute or unmute; groups are read only
        when the user is no admin by id. Never raises: a group that cannot be read counts
        as not containing the user (see `Verdict.UNRESOLVED`)."""
        if not self.policy.admins or (user and user in self.policy.admin_users):
            return decide_change(self.policy, user, {})
        groups = {group: await self._members(group) for group in self.policy.admin_groups}
        return decide_change(self.policy, user, groups)

    async def _members(self, group: str) -> frozenset[str] | None:
        """The group's members, from the cache while fresh; None when they cannot be read.
        One lookup per group at a time, so a burst of clicks asks Slack once."""
        async with self._locks.setdefault(group, asyncio.Lock()):
            cached = self._cache.get(group)
            if cached is not None and self.clock() - cached.at < self.ttl:
                return cached.members
            if self.resolver is None:
                return None
            try:
                members = await self.resolver.members(group)
            except GroupLookupFailed as exc:
                # Not cached: the next request asks again, so access returns with Slack.
                log.warning("cannot read the members of user group %s (%s): changes by users "
                            "not named in CDE_ADMINS are refused meanwhile", group, exc)
                return None
            self._cache[group] = _Cached(members, self.clock())
            return members
