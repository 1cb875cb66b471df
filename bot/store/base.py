"""The store's interface: the state notices need, behind a small async API.

Callers see only this module. `bot.store.sql` implements it with SQLAlchemy Core, so
SQLite (the default) and PostgreSQL work behind the same calls.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.cde.models import MAX_ID as CDE_MAX_ID
from bot.notices.models import AuditEntry, Incident, Mute, NoticeFilter, Subscription
from bot.notices.posts import OutboxEntry


class StoreError(Exception):
    """The database could not be used; the message says what went wrong and how to fix it."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer cde-bot than this one."""


class LeaseLost(StoreError):
    """A write fenced by a lease found another holder's token: this replica no longer
    leads, and must stop at once (nothing of the write was kept).
    """


class ClaimedElsewhere(StoreError):
    """Another poller recorded this news first (a run told, an incident opened): the
    action is rolled back, and must not be posted again.
    """


@dataclass(frozen=True)
class Lease:
    """A named lease held by `holder` until `expires_at`. `token` (the fencing token) grows
    by one with each new holder, so a write checked against it fails once another holds it.
    """

    name: str
    holder: str
    token: int
    expires_at: datetime


# Every id the store keeps (site ids, subscription and incident ids) is a signed 64-bit
# integer, the widest both SQLite and PostgreSQL store; anything larger is refused (the CDE
# client already refuses larger ids in what the API sends).
MAX_ID = CDE_MAX_ID


class IdOutOfRangeError(StoreError):
    """A number too large (or too small) for the store's 64-bit id columns."""


def fits_id(value: int) -> bool:
    """Whether `value` fits the store's signed 64-bit id columns."""
    return -MAX_ID - 1 <= value <= MAX_ID


def check_id(name: str, value: int | None) -> None:
    """Refuse, before any SQL, a `name` the store's 64-bit columns cannot hold."""
    if value is not None and not fits_id(value):
        shown = str(value)
        if len(shown) > 40:  # a number from outside may have thousands of digits
            shown = f"{shown[:20]}…({len(shown)} digits)"
        raise IdOutOfRangeError(
            f"{name} {shown} is out of range: the store keeps ids from {-MAX_ID - 1} to {MAX_ID}")


class Store(abc.ABC):
    """Persistence for subscriptions and notice state. Every method is one transaction."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema to the version this cde-bot writes."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- the poller's lease ------------------------------------------------------------------

    @abc.abstractmethod
    async def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Hold lease `name` until `now + ttl`: renewed when `holder` holds it, taken (with a
        new token) when it is free or expired; None while another holder's is current.
        """

    @abc.abstractmethod
    async def current_lease(self, name: str) -> Lease | None:
        """Lease `name` as recorded (expired or not), or None when never taken."""

    @abc.abstractmethod
    async def release_lease(self, lease: Lease) -> None:
        """Give up `lease` (if still held), so another may take it at once."""

    @abc.abstractmethod
    async def confirm_lease(self) -> None:
        """Raise `LeaseLost` when this context's writes are fenced by a lease no longer
        held: for what a poll does outside the store (a post straight to Slack).
        """

    @abc.abstractmethod
    def fenced(self, lease: Lease) -> contextlib.AbstractContextManager[None]:
        """Within this context (and the tasks started in it), every write transaction first
        checks that `lease` still holds, in the same transaction, else raises `LeaseLost`.
        """

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database reads and writes (see `problem`)."""

    @abc.abstractmethod
    async def problem(self) -> str | None:
        """Why the store cannot keep the bot's state right now (for readiness checks), or
        None when a write and a read in the store succeed.
        """

    # -- subscriptions -----------------------------------------------------------------

    @abc.abstractmethod
    async def add_subscription(
        self, channel_id: str, notice_filter: NoticeFilter, created_by: str, now: datetime, *,
        audit: Callable[[Subscription], AuditEntry] | None = None,
    ) -> Subscription | None:
        """The new subscription, or None when the channel already has this same filter.
        `audit` gives the entry recording it, stored in the same transaction."""

    @abc.abstractmethod
    async def subscriptions(self, channel_id: str | None = None) -> list[Subscription]:
        """A channel's subscriptions (every channel's when None), oldest first."""

    @abc.abstractmethod
    async def remove_subscription(self, channel_id: str, subscription_id: int, *,
                                  audit: AuditEntry | None = None) -> bool:
        """False when the channel has no subscription with that id; `audit` is stored with
        the removal (only when there was one)."""

    @abc.abstractmethod
    async def remove_all_subscriptions(self, channel_id: str, *,
                                       audit: Callable[[int], AuditEntry] | None = None) -> int:
        """How many were removed; `audit` gives the entry for that many, stored with the
        removal (only when there were any)."""

    # -- announced runs ----------------------------------------------------------------

    @abc.abstractmethod
    async def announced(self, run_ids: Iterable[str]) -> set[tuple[str, str]]:
        """Of these runs, the (channel_id, run_id) pairs already told."""

    @abc.abstractmethod
    async def mark_announced(self, pairs: Iterable[tuple[str, str]], at: datetime) -> None:
        """Record (channel_id, run_id) pairs as told; recording one twice is harmless."""

    @abc.abstractmethod
    async def prune_announced(self, before: datetime, keep: Iterable[str] = ()) -> int:
        """Forget records older than `before`, except those of the runs in `keep` (still
        listed by the API, so still able to come back as news); how many were dropped.
        """

    @abc.abstractmethod
    async def first_seen(self, run_ids: Iterable[str], now: datetime) -> dict[str, datetime]:
        """When the bot first saw each failed run, recording `now` for runs it never saw,
        and `now` as what the bot has seen: a subscription made from here on counts as news
        only failures first seen after `now` (see `Subscription.seen_until`). A failed run
        whose `finished-at` is null failed, as far as anyone can tell, when first seen.
        """

    @abc.abstractmethod
    async def prune(self, before: datetime, keep: Iterable[str] = ()) -> None:
        """Drop first sightings older than `before` (but those of `keep`), incidents
        resolved, mutes ended and outbox entries settled before it.
        """

    # -- incidents ---------------------------------------------------------------------

    @abc.abstractmethod
    async def open_incidents(self, channel_id: str | None = None) -> list[Incident]: ...

    @abc.abstractmethod
    async def incident(self, incident_id: int) -> Incident | None: ...

    @abc.abstractmethod
    async def incidents_of_message(self, channel_id: str, message_ts: str) -> list[Incident]:
        """Every incident whose parent is this message (one for a notice, more for a digest)."""

    @abc.abstractmethod
    async def save_incident(self, incident: Incident, *, announce: Iterable[tuple[str, str]] = (),
                            at: datetime | None = None,
                            outbox: Sequence[OutboxEntry] = ()) -> Incident:
        """Insert when `incident.id == 0` (returning it with its new id), else update; and
        record the `announce` pairs as told at `at` and the `outbox` entries to post, in the
        same transaction.
        """

    @abc.abstractmethod
    async def save_incidents(self, incidents: Sequence[Incident], *,
                             announce: Iterable[tuple[str, str]] = (),
                             at: datetime | None = None,
                             outbox: Sequence[OutboxEntry] = ()) -> list[Incident]:
        """`save_incident` for several incidents (a digest's), all in one transaction."""

    @abc.abstractmethod
    async def update_incident(
        self, incident_id: int, change: Callable[[Incident], Incident], *,
        announce: Iterable[tuple[str, str]] = (), at: datetime | None = None,
        outbox: Sequence[OutboxEntry] = (),
    ) -> Incident | None:
        """Apply `change` to the incident as stored now, atomically (None when it is gone),
        recording `announce` and the `outbox` entries in the same transaction (the entries
        only when the incident is there).
        """

    @abc.abstractmethod
    async def acknowledge_incident(self, incident_id: int, user: str, at: datetime, *,
                                   audit: AuditEntry | None = None) -> Incident | None:
        """Mark the incident taken by `user` at `at` unless someone has taken it already,
        atomically, with `audit` when it was marked; the incident as stored afterwards
        (None when it is gone).
        """

    # -- mutes ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def set_mute(self, mute: Mute, *, audit: AuditEntry | None = None) -> None:
        """Create or replace the mute for (channel, site, connector), with `audit`."""

    @abc.abstractmethod
    async def active_mutes(self, now: datetime) -> list[Mute]:
        """Mutes still in force at `now`."""

    @abc.abstractmethod
    async def ended_mutes(self, now: datetime) -> list[Mute]:
        """Mutes that have run out but are still stored."""

    @abc.abstractmethod
    async def delete_mute(self, channel_id: str, site_id: int | None, connector_id: str | None,
                          *, outbox: Sequence[OutboxEntry] = (), audit: AuditEntry | None = None) -> None:
        """Forget a mute, recording the `outbox` entries that tell its end and `audit` in
        the same transaction.
        """

    @abc.abstractmethod
    async def count_suppressed(self, channel_id: str, site_id: int | None,
                               connector_id: str | None) -> None:
        """Add one to the mute's count of failures not posted."""

    # -- the outbox: posts recorded before they are made ------------------------------------

    @abc.abstractmethod
    async def enqueue(self, entries: Sequence[OutboxEntry], at: datetime) -> None:
        """Record posts to make; an entry whose key is already stored is left out (the
        first one recorded stands).
        """

    @abc.abstractmethod
    async def pending_posts(self) -> list[OutboxEntry]:
        """Entries not settled yet (pending, or sent with an unknown fate), in the order
        they were recorded.
        """

    @abc.abstractmethod
    async def post_of_ref(self, ref: str) -> OutboxEntry | None:
        """The entry whose message `ref` stands for."""

    @abc.abstractmethod
    async def start_post(self, entry_id: int, at: datetime, *, attempts: int | None = None) -> bool:
        """An attempt begins: from now on its fate is unknown until settled. With
        `attempts` (as the entry was read), a claim: False when another poller began an
        attempt since, and this one must not post.
        """

    @abc.abstractmethod
    async def finish_post(self, entry_id: int, ts: str, at: datetime) -> None:
        """Slack took it as `ts`: settled, and every incident recorded with the entry's ref
        as its message now names `ts` (one transaction).
        """

    @abc.abstractmethod
    async def fail_post(self, entry_id: int, error: str, at: datetime) -> None:
        """Slack refused it for good: settled as failed, and the incidents whose message it
        was are resolved (their notice can never be posted).
        """

    @abc.abstractmethod
    async def defer_post(self, entry_id: int, error: str, retry_at: datetime, *,
                         fate_unknown: bool) -> None:
        """Try again from `retry_at`; `fate_unknown` when Slack may have taken it."""

    # -- the audit trail ---------------------------------------------------------------------

    @abc.abstractmethod
    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Store an entry of its own (one transaction); it, with its id."""

    @abc.abstractmethod
    async def audit_log(self, limit: int, channel_id: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries of a channel (of every channel when None), newest first."""

    # -- poller state --------------------------------------------------------------------

    @abc.abstractmethod
    async def get_state(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def set_state(self, key: str, value: str | None) -> None:
        """Set (or with None, delete) a small named value, such as the last poll time."""
