"""Delivering the outbox: every post was recorded before it is made (`bot.notices.posts`);
this sends them, one task per channel, and records what became of each.

- Channels are independent: each has its own task, keeping the order of its entries, so a
  channel that is rate limited (429, Retry-After) or down waits alone.
- An attempt is recorded as started before Slack sees it. When the bot dies or times out
  during it, its fate is unknown: the next attempt first looks for the post's metadata tag
  in the channel's history (or the thread's replies) since the attempt began, and records
  what it finds instead of posting again. Without the history scopes it posts again (and
  says so once in the log); `cde-bot check` says so too.
- Slack took a post but the database would not record it (locked): recording is retried
  with a bounded backoff; until it lands, the ts is kept in memory so no later pass posts
  it again.
- Refusals for good (no access to the channel, a message Slack will never take) settle an
  entry as failed, logged; transient failures are retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.notices import posts
from bot.notices.oncall import OnCall
from bot.notices.posts import OutboxEntry
from bot.slack.message import Message
from bot.slack.poster import (
    NO_HISTORY,
    ChannelUnavailable,
    MessageRefused,
    PostRefused,
    RateLimited,
    SlackError,
    SlackUnavailable,
)
from bot.store.base import LeaseLost, StoreError

log = logging.getLogger(__name__)

# How far before an attempt's start its post is looked for (clocks differ, Slack's ts is
# its own).
HISTORY_MARGIN = timedelta(seconds=120)
# Backoff of transient failures: doubling from the first, up to the last.
RETRY_FIRST, RETRY_MAX = 2.0, 300.0
# A Retry-After up to this is waited for within the pass; longer ones end the channel's pass.
WAIT_WITHIN_PASS = 5.0
SHORT_WAITS = 3  # at most this many attempts of one entry wait within a pass
# Recording what Slack took: attempts and the longest wait between two.
RECORD_ATTEMPTS, RECORD_MAX_WAIT = 12, 5.0
# Refusals of an update that cannot get better by trying again.
UPDATE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class _Blocked(Exception):
    """The entry cannot be sent yet (its thread's parent is not posted)."""


class _ParentFailed(Exception):
    """The message this entry replies to or redraws will never be posted."""


@dataclass
class PassReport:
    """What one pass over the outbox did."""

    delivered: Counter[str] = field(default_factory=Counter)  # by kind
    found_in_history: int = 0
    failed: int = 0
    deferred: int = 0
    # Longest time between Slack taking a post and the store recording it, in seconds.
    longest_unrecorded: float = 0.0


class Outbox:
    """Sends what the outbox holds, channel by channel; see the module."""

    def __init__(self, oncall: OnCall, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """`clock` times retries (the poll's clock); attempts are dated by the wall clock,
        which is what Slack's ts are compared with.
        """
        self.store = oncall.store
        self.poster = oncall.poster
        self.oncall = oncall
        self.clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        # Posts Slack took that the store has not recorded yet, by entry id: their ts.
        self._taken: dict[int, str] = {}
        self._said_no_history = False
        self.record_failures = 0  # failed attempts to record a post Slack took

    async def deliver(self) -> PassReport:
        """Send every pending entry whose time has come; one task per channel."""
        async with self._lock:
            report = PassReport()
            by_channel: dict[str, list[OutboxEntry]] = {}
            for entry in await self.store.pending_posts():
                by_channel.setdefault(entry.channel_id, []).append(entry)
            tasks = [asyncio.create_task(self._channel(entries, report))
                     for entries in by_channel.values()]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                # One channel's `LeaseLost` (another replica leads) stops them all, now.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            return report

    async def _channel(self, entries: list[OutboxEntry], report: PassReport) -> None:
        """One channel's entries, in order; the first that must wait ends the pass here."""
        for entry in entries:
            if entry.next_attempt_at is not None and entry.next_attempt_at > self.clock():
                return
            try:
                if not await self._one(entry, report):
                    report.deferred += 1
                    return
            except _Blocked:
                return
            except LeaseLost:
                raise  # another replica leads now: it delivers this
            except Exception:
                # A bug or the database: this channel waits for the next pass, the others go on.
                report.deferred += 1
                log.exception("could not deliver %s %s in %s", entry.kind, entry.key, entry.channel_id)
                return

    async def _one(self, entry: OutboxEntry, report: PassReport) -> bool:
        """Deliver one entry; False when it is to be tried again later."""
        taken = self._taken.get(entry.id)
        if taken is not None:
            return await self._record(entry, taken, report, accepted_at=None)
        try:
            target = await self._target(entry)
        except _ParentFailed:
            await self.store.fail_post(entry.id, "parent_failed", self.clock())
            report.failed += 1
            log.error("%s %s in %s not sent: the message it belongs to was never posted",
                      entry.kind, entry.key, entry.channel_id)
            return True
        if entry.fate_unknown and entry.kind != posts.REDRAW:
            found = await self._look_for(entry, target)
            if found is not None:
                report.found_in_history += 1
                return await self._record(entry, found, report, accepted_at=None)
        return await self._send(entry, target, report)

    async def _target(self, entry: OutboxEntry) -> str | None:
        """The ts of the entry's thread parent (or of the message it redraws)."""
        if not posts.is_ref(entry.thread):
            return entry.thread
        parent = await self.store.post_of_ref(str(entry.thread))
        if parent is None or parent.state == posts.FAILED:
            raise _ParentFailed
        if parent.state != posts.DELIVERED or parent.ts is None:
            raise _Blocked
        return parent.ts

    async def _look_for(self, entry: OutboxEntry, thread: str | None) -> str | None:
        """The ts of this entry's post when Slack's history has it (see the module)."""
        started = entry.attempt_started_at or datetime.now(UTC)
        oldest = (started - HISTORY_MARGIN).timestamp()
        try:
            return await self.poster.find_tagged(entry.channel_id, entry.key, oldest=oldest,
                                                 thread_ts=thread)
        except PostRefused as exc:
            if exc.code not in NO_HISTORY:
                raise
            if not self._said_no_history:
                self._said_no_history = True
                log.warning("cannot read the history of %s (%s): a post whose fate is unknown "
                            "is posted again, so it may appear twice; grant channels:history "
                            "and groups:history", entry.channel_id, exc.code)
            return None

    async def _send(self, entry: OutboxEntry, target: str | None, report: PassReport) -> bool:
        if not await self.store.start_post(entry.id, datetime.now(UTC), attempts=entry.attempts):
            # Another poller (an overlapping replica) took this attempt: it posts, not us.
            log.info("%s %s in %s is being sent by another poller", entry.kind, entry.key,
                     entry.channel_id)
            return True
        try:
            ts = await self._call(entry, target)
        except SlackError as exc:
            return await self._not_taken(entry, exc, report)
        return await self._record(entry, ts, report, accepted_at=time.monotonic())

    async def _not_taken(self, entry: OutboxEntry, exc: SlackError, report: PassReport) -> bool:
        """What follows an attempt Slack did not (or may not have) taken."""
        if isinstance(exc, ChannelUnavailable | MessageRefused) or (
                entry.kind == posts.REDRAW and exc.code in UPDATE_GONE):
            return await self._refused(entry, exc.code, report)
        if isinstance(exc, RateLimited):
            if exc.retry_after <= WAIT_WITHIN_PASS and entry.attempts < SHORT_WAITS:
                # Only this channel waits; the others' tasks go on meanwhile.
                await self.store.defer_post(entry.id, exc.code, self.clock(), fate_unknown=False)
                await self._sleep(exc.retry_after)
                again = await self.store.post_of_ref(entry.ref)
                return again is not None and await self._one(again, report)
            return await self._defer(entry, exc.code, exc.retry_after, fate_unknown=False)
        # A refusal Slack answered took nothing; no usable answer may hide a post it took.
        maybe_taken = isinstance(exc, SlackUnavailable) and exc.maybe_taken
        return await self._defer(entry, exc.code, None, fate_unknown=maybe_taken)

    async def _call(self, entry: OutboxEntry, target: str | None) -> str:
        """Post (or redraw) the entry; the ts Slack gave it."""
        if entry.kind == posts.REDRAW:
            if target is None:
                raise MessageRefused("message_not_found")
            # Drawn and sent in turn with the clicks' redraws, so the last sent is the latest.
            async with self.oncall.redraw_turn(entry.channel_id, target):
                message = await self._drawn(entry.channel_id, target)
                if message is not None:
                    await self.poster.update(entry.channel_id, target, message)
            return target
        message = entry.message
        if entry.draw:
            message = await self._drawn(entry.channel_id, entry.ref) or message
        return await self.poster.post(entry.channel_id, message, thread_ts=target, key=entry.key)

    async def _drawn(self, channel: str, message_ts: str) -> Message | None:
        """The message as the store's incidents of it say it looks now (None: no incidents)."""
        incidents = await self.store.incidents_of_message(channel, message_ts)
        if not incidents:
            return None
        return await self.oncall.draw(incidents[0], self.clock())

    async def _refused(self, entry: OutboxEntry, code: str, report: PassReport) -> bool:
        log.error("Slack refused %s %s in %s for good (%s); not tried again", entry.kind,
                  entry.key, entry.channel_id, code)
        await self.store.fail_post(entry.id, code, self.clock())
        report.failed += 1
        return True

    async def _defer(self, entry: OutboxEntry, code: str, retry_after: float | None, *,
                     fate_unknown: bool) -> bool:
        wait = retry_after if retry_after is not None else min(
            RETRY_MAX, RETRY_FIRST * 2 ** max(0, entry.attempts))
        log.warning("could not send %s %s in %s (%s); trying again in %.0f s%s", entry.kind,
                    entry.key, entry.channel_id, code, wait,
                    " (Slack may have it: its history is looked at first)" if fate_unknown else "")
        await self.store.defer_post(entry.id, code, self.clock() + timedelta(seconds=wait),
                                    fate_unknown=fate_unknown)
        return False

    async def _record(self, entry: OutboxEntry, ts: str, report: PassReport, *,
                      accepted_at: float | None) -> bool:
        """Record that Slack took `entry` as `ts`, retrying while the database refuses."""
        self._taken[entry.id] = ts
        wait = 0.1
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self.store.finish_post(entry.id, ts, self.clock())
                break
            except LeaseLost:
                raise  # the new leader finds the post by its tag (see `_look_for`)
            except StoreError as exc:
                self.record_failures += 1
                if attempt == RECORD_ATTEMPTS - 1:
                    log.error("could not record that %s %s was posted (%s); kept in memory and "
                              "recorded on the next pass", entry.kind, entry.key, exc)
                    return False
                log.warning("could not record that %s %s was posted, trying again: %s",
                            entry.kind, entry.key, exc)
                await self._sleep(wait)
                wait = min(RECORD_MAX_WAIT, wait * 2)
        del self._taken[entry.id]
        if accepted_at is not None:
            # The window a crash would leave unrecorded (closed by the history lookup).
            unrecorded = time.monotonic() - accepted_at
            report.longest_unrecorded = max(report.longest_unrecorded, unrecorded)
            log.debug("%s %s recorded %.1f ms after Slack took it", entry.kind, entry.key,
                      unrecorded * 1000)
        report.delivered[entry.kind] += 1
        return True

