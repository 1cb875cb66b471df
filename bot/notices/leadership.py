"""Which replica polls: one lease in the store, held by the leader and renewed often, taken
over by another replica once it expires.

Every replica serves Slack; only the lease holder polls, and every write of its polls is
fenced by the lease's token (`Store.fenced`): a leader that lost the lease (paused, cut off)
has its next write refused and stops at once, and nothing it would have posted is
recorded. The lease lives `ttl` (half a poll interval, at least `MIN_TTL`) and is renewed
every third of that, by a task of its own rather than by the polls, so that a long poll
keeps it and a dead leader is replaced well within one poll interval.

A lease row rather than a PostgreSQL advisory lock: it works on SQLite as on PostgreSQL
(two replicas on one SQLite file are as safe as on PostgreSQL), it survives connection
poolers, and its token is what fencing needs; an advisory lock has no token and ends only
when its connection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from bot.store.base import Lease, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

LEASE = "poller"
MIN_TTL = timedelta(seconds=1.5)


def lease_ttl(poll_interval: float) -> timedelta:
    """How long the poller's lease lives without a renewal."""
    return max(timedelta(seconds=poll_interval / 2), MIN_TTL)


def replica_name() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat in containers)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class Leadership:
    """This replica's hold on the poller's lease."""

    def __init__(self, store: Store, *, ttl: timedelta, holder: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.ttl = ttl
        self.holder = holder or replica_name()
        self.clock = clock
        self.lease: Lease | None = None
        # Whether the last `poll` stopped because another replica took the lease meanwhile.
        self.lost_mid_poll = False

    @property
    def leads(self) -> bool:
        """Whether this replica holds an unexpired lease, as far as it knows."""
        return self.lease is not None and self.lease.expires_at > self.clock()

    @property
    def renew_every(self) -> float:
        return self.ttl.total_seconds() / 3

    async def renew(self) -> bool:
        """Renew the lease, or take it when it is free; True when this replica has just
        become the leader. A store error keeps what this replica knew (the lease expires
        by itself).
        """
        was = self.leads
        try:
            self.lease = await self.store.take_lease(LEASE, self.holder, self.clock(), self.ttl)
        except StoreError as exc:
            log.warning("could not renew the poller lease: %s", exc)
            return False
        if self.lease is not None and not was:
            log.info("this replica (%s) polls now: it holds the poller lease, token %d",
                     self.holder, self.lease.token)
            return True
        if self.lease is None and was:
            log.warning("another replica took the poller lease: this one stops polling")
        return False

    def lost(self) -> None:
        """A fenced write found another holder: stop leading at once."""
        if self.lease is not None:
            log.warning("the poller lease (token %d) is lost: this replica stops posting",
                        self.lease.token)
        self.lease = None

    async def release(self) -> None:
        """Let another replica take over at once (on shutdown)."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            await self.store.release_lease(lease)
        except StoreError as exc:
            log.warning("could not release the poller lease (it expires by itself): %s", exc)

    async def poll(self, poll: Callable[[], Awaitable[T]]) -> T | None:
        """Run `poll` when this replica leads (renewing or taking the lease first if need
        be), with every write fenced by the lease; None when another replica leads, or took
        the lease during the poll (which then stopped at its first write).
        """
        self.lost_mid_poll = False
        if not self.leads:
            await self.renew()
        lease = self.lease
        if lease is None or not self.leads:
            return None
        try:
            with self.store.fenced(lease):
                return await poll()
        except LeaseLost:
            self.lost()
            self.lost_mid_poll = True
            return None

    async def keep(self, stop: asyncio.Event, *, on_lead: Callable[[], None],
                   on_change: Callable[[bool], None]) -> None:
        """Renew (or try to take) the lease every `renew_every` seconds until `stop`;
        `on_lead` when this replica becomes the leader, `on_change` with every renewal's
        answer (for the metrics).
        """
        while not stop.is_set():
            try:
                if await self.renew():
                    on_lead()
                on_change(self.leads)
            except Exception:
                # The keeper must outlive any one renewal's bug: without it a leader's lease
                # would lapse in every long poll, and a standby would take over late.
                log.exception("renewing the poller lease failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_every)
