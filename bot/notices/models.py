"""What a channel follows: a filter over failed runs, matched locally on the run's fields.

Matching happens in the bot, not in the API query, so that one poll serves every
subscription at the same cost however many there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property
from typing import Any

from bot.cde.models import Run


@dataclass(frozen=True)
class NoticeFilter:
    """Every field that is set must equal the run's; an empty filter matches every run."""

    site_id: int | None = None
    connector_id: str | None = None
    connector_version: str | None = None
    process_id: str | None = None
    project_id: int | None = None
    account_id: int | None = None

    def matches(self, run: Run) -> bool:
        return all(getattr(run, name) == value for name, value in self._conditions)

    @cached_property
    def _conditions(self) -> tuple[tuple[str, str | int], ...]:
        # Computed once: a poll matches every failed run against every subscription.
        return tuple(self.as_dict().items())

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def as_dict(self) -> dict[str, str | int]:
        """The fields that are set, by name; stored as JSON and compared for duplicates."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, str | int]) -> NoticeFilter:
        """The filter `as_dict` gave (names it does not know are left out)."""
        known = {f.name for f in fields(cls)}
        # Each value is of its field's type: written by `as_dict`, or checked by its query key.
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class Subscription:
    """A channel following failed runs that match `notice_filter`."""

    id: int
    channel_id: str
    notice_filter: NoticeFilter
    created_by: str
    created_at: datetime
    # What the bot had seen when the channel subscribed: the time (on the bot's clock) of the
    # last scan of failed runs before then. A failure first seen after it is news to the
    # channel. None when no scan had been recorded yet (a new database, or a subscription
    # older than this record): then the CDE's failure time is compared with `created_at`.
    seen_until: datetime | None = None


@dataclass(frozen=True)
class NoticeRef:
    """A posted notice (or digest): the channel it is in and its message's `ts`."""

    channel_id: str
    message_ts: str


@dataclass(frozen=True)
class Incident:
    """Failures of one connector on one site, told in one channel, until it recovers.

    `message_ts` is the parent message in the channel (a notice, or a digest shared by
    several incidents); repeats and the recovery go into its thread. `run` is the latest
    failed run as plain JSON (`Run.model_dump(mode="json", by_alias=True)`), so the parent
    can be drawn again after a click.
    """

    id: int
    channel_id: str
    site_id: int | None
    connector_id: str | None
    message_ts: str
    run: dict[str, Any]
    failures: int
    muted_failures: int
    first_failed_at: datetime
    last_failed_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by_run: str | None = None
    in_digest: bool = False

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class Mute:
    """No posts for this connector on this site in this channel until `until`."""

    channel_id: str
    site_id: int | None
    connector_id: str | None
    until: datetime
    muted_by: str
    suppressed: int = 0


# What an audit entry records (`AuditEntry.action`).
SUBSCRIBED, UNSUBSCRIBED, TAKEN_BACK = "subscribe", "unsubscribe", "subscription_taken_back"
MUTED, UNMUTED, ACKNOWLEDGED = "mute", "unmute", "acknowledge"
AUDIT_ACTIONS = (SUBSCRIBED, UNSUBSCRIBED, TAKEN_BACK, MUTED, UNMUTED, ACKNOWLEDGED)


@dataclass(frozen=True)
class AuditEntry:
    """One change to a subscription, a mute or an acknowledgement: who (`user_id`), when
    (`at`, UTC), what (`action`, its `target`, e.g. `subscription 3`, and `details`) and
    where (`channel_id`). `id` is 0 until stored.
    """

    at: datetime
    user_id: str
    channel_id: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    id: int = 0
