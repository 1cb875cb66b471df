"""Running the poll on a schedule with APScheduler.

The next poll is scheduled when the previous one ends, so a slow poll delays the next and
polls never overlap or stack up. A poll that raises is logged and the schedule goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.logs import new_reference, request_id
from bot.notices.poller import PollReport

log = logging.getLogger(__name__)

JOB_ID = "poll"


class PollScheduler:
    """Runs `poll` every `interval` seconds, counted from the end of the previous poll,
    until stopped; a poll under way when it stops may finish."""

    def __init__(self, poll: Callable[[], Awaitable[PollReport]], interval: float) -> None:
        self._poll = poll
        self._interval = interval
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._current: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self, *, first_in: float = 0.0) -> None:
        """Start polling: the first poll after `first_in` seconds."""
        self._scheduler.start()
        self._schedule(first_in)

    def _schedule(self, delay: float) -> None:
        if self._stopping:
            return
        self._scheduler.add_job(
            self._run, "date", run_date=datetime.now(UTC) + timedelta(seconds=delay),
            id=JOB_ID, replace_existing=True, misfire_grace_time=None,
        )

    def poll_now(self) -> None:
        """Poll at once, unless a poll is under way (the next follows it as usual)."""
        if self._current is None and self._scheduler.running:
            self._schedule(0.0)

    async def _run(self) -> None:
        if self._stopping:
            return  # fired just as the bot began to stop
        self._current = asyncio.current_task()
        request_id.set(f"poll-{new_reference()[:6]}")
        delay = self._interval
        try:
            report = await self._poll()
            if report.retry_after is not None and report.retry_after > delay:
                # The API asked for a pause (429 Retry-After): polling sooner only asks again.
                log.info("the CDE API asked for %.0fs without requests; next poll then",
                         report.retry_after)
                delay = report.retry_after
        except Exception:
            # The schedule must outlive any one poll's bug; the traceback goes to the log.
            log.exception("poll crashed; the next one runs as scheduled")
        finally:
            self._current = None
            self._schedule(delay)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop scheduling and let a poll under way finish (cancelled after `grace` s)."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.remove_all_jobs()
        # A poll the scheduler fired a moment ago starts now, sees that we stop, and ends:
        # otherwise shutting the scheduler down would cancel it half-way.
        await asyncio.sleep(0)
        current = self._current
        # Wait before shutting the scheduler down: its executor cancels jobs still running.
        if current is not None and not current.done():
            try:
                await asyncio.wait_for(asyncio.shield(current), grace)
            except TimeoutError:
                log.warning("a poll still running after %.0fs is cancelled", grace)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
