"""What `/readyz` reports: whether this process can do its work right now.

Three checks: Slack is connected, the store answers, and polling is not stale. The
decisions are pure functions of what `serve` and each poll record in `Readiness`; the
only I/O is the store's `problem()` (a write read back) and the Socket Mode client's own connection check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.store.base import Store, StoreError

# Polling counts as stale after this many intervals without a success, and never sooner
# than STALE_FLOOR seconds: a poll that retries through a short API blip is not an outage.
STALE_INTERVALS = 3
STALE_FLOOR = 120.0
STORE_PING_TIMEOUT = 2.0  # seconds; a store slower than this is not ready to serve


def stale_after(poll_interval: float, override: float | None = None) -> float:
    """Seconds without a successful poll after which polling is stale."""
    if override is not None:
        return override
    return max(STALE_INTERVALS * poll_interval, STALE_FLOOR)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


# Checks that report a degraded service without taking it out of rotation: scans cut
# short miss some runs, yet lookups and every other notice still work, and a replica
# taken out of a load balancer would answer nothing at all.
ADVISORY = frozenset({"coverage"})


def is_ready(checks: dict[str, Check]) -> bool:
    """Ready when every check but the advisory ones passes."""
    return all(check.ok for name, check in checks.items() if name not in ADVISORY)


def coverage_check(cut_short: tuple[str, ...]) -> Check:
    """Whether the last poll's scans reached the end of the look-back window."""
    if not cut_short:
        return Check(True, "scans cover the look-back window")
    return Check(False, f"{len(cut_short)} scan(s) cut short by CDE_SCAN_MAX_PAGES, runs beyond "
                        f"unseen: {'; '.join(cut_short[:3])}")


def poll_check(now: float, started_at: float, last_success: float | None, stale_after: float) -> Check:
    """Polling is fresh when the last success (or, before the first, the start) is recent."""
    if last_success is None:
        waited = now - started_at
        if waited < stale_after:
            return Check(True, f"first poll pending ({waited:.0f}s since start)")
        return Check(False, f"no successful poll in {waited:.0f}s since start "
                            f"(stale after {stale_after:.0f}s)")
    age = now - last_success
    if age > stale_after:
        return Check(False, f"last successful poll {age:.0f}s ago (stale after {stale_after:.0f}s)")
    return Check(True, f"last successful poll {age:.0f}s ago")


@dataclass
class Readiness:
    """The live facts the checks read; `serve` and each poll keep them up to date.

    Times are Unix seconds. `slack_connected` is None until Slack is connected.
    """

    stale_after: float
    started_at: float = field(default_factory=time.time)
    last_poll_success: float | None = None
    slack_connected: Callable[[], Awaitable[bool]] | None = None
    # The leader's last successful poll as the store records it (any replica's, so that
    # a replica that does not poll tells the truth about polling), in Unix seconds.
    shared_last_poll: Callable[[], Awaitable[float | None]] | None = None
    # What the last successful poll's scans could not cover (see `coverage_check`).
    scans_cut_short: tuple[str, ...] = ()
    # The store probe under way: one at a time, however often /readyz is asked.
    _store_probe: asyncio.Future[str | None] | None = field(default=None, repr=False)

    async def checks(self, store: Store, *, now: float | None = None) -> dict[str, Check]:
        """Every check, by name."""
        return {
            "slack": await self._slack(),
            "store": await self._store(store),
            "poll": poll_check(time.time() if now is None else now, self.started_at,
                               await self._last_poll(), self.stale_after),
            "coverage": coverage_check(self.scans_cut_short),
        }

    async def _last_poll(self) -> float | None:
        """The latest of this replica's and the shared last successful poll."""
        shared = None
        if self.shared_last_poll is not None:
            try:
                shared = await asyncio.wait_for(self.shared_last_poll(), STORE_PING_TIMEOUT)
            except (TimeoutError, StoreError, ValueError):
                shared = None  # the store check says what is wrong with the store
        known = [t for t in (self.last_poll_success, shared) if t is not None]
        return max(known) if known else None

    async def _slack(self) -> Check:
        if self.slack_connected is None:
            return Check(False, "not connected")
        if await self.slack_connected():
            return Check(True, "connected")
        return Check(False, "disconnected")


    async def _store(self, store: Store) -> Check:
        """The store writes and reads back a row in time (and on SQLite, its file is the one
        opened and still a database): a store that only answers `SELECT 1` may be losing state.

        A probe stuck in the database (SQLite waiting out its busy timeout in a thread, where
        no cancellation reaches) is not waited for: `/readyz` answers after
        STORE_PING_TIMEOUT, and the next request waits on that same probe rather than
        starting another.
        """
        if self._store_probe is None or self._store_probe.done():
            self._store_probe = asyncio.ensure_future(store.problem())
        probe = self._store_probe
        done, _ = await asyncio.wait({probe}, timeout=STORE_PING_TIMEOUT)
        if not done:
            return Check(False, f"no answer within {STORE_PING_TIMEOUT:g}s")
        problem = probe.result()
        return Check(True, "reads and writes") if problem is None else Check(False, problem)
