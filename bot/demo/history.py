"""A realistic, reproducible run history for the demo, and new runs as time goes by.

Several accounts, projects and sites; connectors in several versions; mostly finished runs,
some failures, one flaky connector that fails again and again and then recovers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.demo.runs import make_run


@dataclass(frozen=True)
class Pipeline:
    """One connector scheduled on one site."""

    site_id: int
    site_name: str
    project_id: int
    project_name: str
    account_id: int
    account_name: str
    connector_id: str
    version: str
    failure_rate: float
    minutes: int  # typical duration


PIPELINES = (
    Pipeline(1001, "Site 1", 300, "Project 1", 600, "Account 1",
             "019e16f3-bfa8-7390-9e63-3354f9aa2939", "2.0.0", 0.05, 5),
    Pipeline(1001, "Site 1", 635, "Project 1", 508, "Account 1",
             "019e16f3-bf9c-7485-b60b-ff3407921934", "1.1.0", 0.10, 5),
    Pipeline(1002, "Site 2", 650, "Project 2", 748, "Account 2",
             "019e16f3-bf9c-7485-b60b-ff3407921934", "1.0.1", 0.45, 6),
    Pipeline(1003, "Feeds DE", 701, "Retail DE", 910, "Acme Retail",
             "019e2a10-4c1e-7b2a-9f00-1c2d3e4f5a6b", "3.2.1", 0.08, 12),
    Pipeline(1004, "Feeds FR", 702, "Retail FR", 910, "Acme Retail",
             "019e2a10-4c1e-7b2a-9f00-1c2d3e4f5a6b", "3.1.0", 0.15, 14),
    Pipeline(1005, "Marketplace US", 820, "Marketplaces", 915, "Globex",
             "019e2b77-0d3f-7c11-8e22-6a7b8c9d0e1f", "0.9.4", 0.20, 25),
)


FLAKY = PIPELINES[2]
# What the flaky pipeline does on each tick ("random": another pipeline runs instead): it
# fails on the third tick, again on the fourth and recovers on the fifth, then the story
# starts over twelve ticks later. At the demo's pace (a run every 10 s, a poll every 5 s) that
# leaves half a minute to subscribe, and shows the notice, its repeat and the recovery
# within a minute.
STORY = ("random", "random", "failed", "failed", "finished", *("random",) * 7)


class DemoHistory:
    """Generates runs: `past()` for the history, `tick()` for what happens next."""

    def __init__(self, seed: int = 1001) -> None:
        self._random = random.Random(seed)
        self._step = 0

    def _took(self, pipeline: Pipeline) -> timedelta:
        return timedelta(minutes=pipeline.minutes * self._random.uniform(0.6, 1.6))

    def _run(self, pipeline: Pipeline, started: datetime, took: timedelta,
             state: str | None = None) -> dict[str, Any]:
        if state is None:
            state = "failed" if self._random.random() < pipeline.failure_rate else "finished"
        exit_code = None
        if state == "failed":
            exit_code = self._random.choice((1, 1, 2, 137, 255))
        return make_run(
            state=state, site_id=pipeline.site_id, site_name=pipeline.site_name,
            connector_id=pipeline.connector_id, connector_version=pipeline.version,
            project_id=pipeline.project_id, project_name=pipeline.project_name,
            account_id=pipeline.account_id, account_name=pipeline.account_name,
            started_at=started, took=took, exit_code=exit_code,
        )

    def past(self, now: datetime | None = None, hours: int = 48) -> list[dict[str, Any]]:
        """Runs of every pipeline about hourly over the last `hours` hours."""
        now = now or datetime.now(UTC)
        runs = []
        for pipeline in PIPELINES:
            start = now - timedelta(hours=hours)
            while start < now - timedelta(minutes=pipeline.minutes * 2):
                runs.append(self._run(pipeline, start, self._took(pipeline)))
                start += timedelta(minutes=self._random.randint(45, 75))
        return runs

    def tick(self, now: datetime | None = None) -> dict[str, Any]:
        """One new run that has just ended.

        The flaky pipeline follows a script (STORY), so that a demo shows a notice, a repeat
        in its thread and a recovery within its first minute; the others run at random.
        """
        now = now or datetime.now(UTC)
        step = STORY[self._step % len(STORY)]
        self._step += 1
        if step == "random":
            pipeline = self._random.choice([p for p in PIPELINES if p is not FLAKY])
            took = self._took(pipeline)
            return self._run(pipeline, now - took, took)
        # Always the same duration, so that each run of the story starts after the one
        # before: a recovery is a run that started after the failure.
        took = timedelta(minutes=FLAKY.minutes)
        return self._run(FLAKY, now - took, took, step)
