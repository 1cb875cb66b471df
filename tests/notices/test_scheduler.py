"""The poll schedule: polls never overlap, a crash does not end the schedule, and stopping
never cuts a poll off half-way, even one that fires as the bot stops.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from bot.notices.poller import PollReport
from bot.notices.scheduler import JOB_ID, PollScheduler


async def test_polls_run_back_to_back_and_a_crash_does_not_stop_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    running, overlaps, calls = 0, 0, 0
    four = asyncio.Event()

    async def poll() -> PollReport:
        nonlocal running, overlaps, calls
        calls += 1
        if calls == 4:
            four.set()
        running += 1
        overlaps += running > 1
        await asyncio.sleep(0.05)
        running -= 1
        if calls == 2:
            raise RuntimeError("a bug in one poll")
        return PollReport()

    scheduler = PollScheduler(poll, interval=0.01)
    scheduler.start()
    await asyncio.wait_for(four.wait(), 10)
    await scheduler.stop()
    assert overlaps == 0
    assert "poll crashed" in caplog.text


@pytest.mark.parametrize("spins", range(6))
async def test_stopping_never_cancels_a_poll_half_way(spins: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    finished, started = [], []

    async def poll() -> PollReport:
        started.append(1)
        await asyncio.sleep(0.02)
        finished.append(1)
        return PollReport()

    scheduler = PollScheduler(poll, interval=0.001)
    scheduler.start()
    for _ in range(spins):  # stop at different points of the scheduler's own cycle
        await asyncio.sleep(0)
    await scheduler.stop()
    # Straight after stop(): every poll that started has finished, none runs on unawaited.
    assert len(finished) == len(started)
    # A job the scheduler cancelled as it shut down is logged when its task ends: wait for
    # the loop's other tasks (the scheduler's) to end before reading the log.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 5)
    assert len(finished) == len(started)
    assert "raised an exception" not in caplog.text and "CancelledError" not in caplog.text


async def test_the_next_poll_waits_out_the_apis_retry_after() -> None:
    polled = asyncio.Event()

    async def poll() -> PollReport:
        polled.set()
        return PollReport(outcome="api_error", retry_after=30.0)

    scheduler = PollScheduler(poll, interval=1.0)
    scheduler.start()
    await asyncio.wait_for(polled.wait(), 10)
    for _ in range(20):  # the next poll is scheduled as the first one ends
        await asyncio.sleep(0)
    job = scheduler._scheduler.get_job(JOB_ID)
    try:
        assert job is not None
        waits = (job.next_run_time - datetime.now(UTC)).total_seconds()
        assert 25 < waits <= 30  # not the 1 s interval
    finally:
        await scheduler.stop()
