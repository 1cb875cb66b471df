"""What the poller keeps of the window of failed runs from one poll to the next.

Each poll reads only part of the window (`bot.cde.window`): the head, and the next part
of a sweep. What it must remember meanwhile is kept here, in memory: where the sweep
stands, since when the bot had looked where each run it first saw is listed (what
`triage.is_news` needs), and the runs whose telling the store refused, to decide again at
the next poll rather than when the sweep next passes them. A new process, or a replica
that leads again, starts over: a new sweep, told within that sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.cde.client import CdeClient
from bot.cde.models import FAILED, Run, RunFilter
from bot.cde.scan import WindowRead, WindowScan
from bot.cde.window import SweepState
from bot.notices import triage


class FailureWindow:
    """The failed runs of the look-back window, read `budget` requests a poll."""

    def __init__(self, cde: CdeClient, *, budget: int, max_pages: int) -> None:
        self.scan = WindowScan(cde, RunFilter(state=FAILED), budget=budget, max_pages=max_pages)
        self.sweep = SweepState()
        self.appeared_after: dict[str, datetime | None] = {}
        self.carried: dict[str, Run] = {}

    def start_over(self) -> None:
        """Forget what was read of the window: the next poll starts a new sweep."""
        self.sweep = SweepState()
        self.appeared_after = {}
        self.carried = {}

    async def read(self, since: datetime, now: datetime) -> WindowRead:
        """This poll's part of the window; `done` takes it in once the poll has used it."""
        return await self.scan.read(since, self.sweep, now)

    def done(self, read: WindowRead) -> None:
        """The poll has done with `read`: the next poll goes on from there. Until then
        (a poll stopped by the store or a lost lease) the next poll reads the same part.
        """
        self.sweep = read.state
        if read.cycle is not None and read.cycle.complete:
            listed = read.cycle.listed
            self.appeared_after = {run_id: looked for run_id, looked in self.appeared_after.items()
                                   if run_id in listed}

    def runs(self, read: WindowRead) -> list[Run]:
        """The runs to decide on this poll: those read, and those an earlier poll could
        not tell (each once).
        """
        carried, self.carried = self.carried, {}
        ids = {run.id for run in read.runs}
        return read.runs + [run for run_id, run in carried.items() if run_id not in ids]

    def seen(self, read: WindowRead, first_seen: dict[str, datetime], now: datetime) -> None:
        """Keep, for each run first seen this poll (at `now`), since when the bot had
        looked where it is listed without seeing it: it failed after that.
        """
        for run in read.runs:
            if first_seen.get(run.id) == now:
                self.appeared_after[run.id] = read.looked.get(run.id)

    def looked(self, runs: Iterable[Run]) -> dict[str, datetime | None]:
        """For `triage.PollFacts.looked` (None: the bot cannot tell, e.g. a run first seen
        by an earlier process).
        """
        return {run.id: self.appeared_after.get(run.id) for run in runs}

    def carry(self, action: triage.Action, facts: triage.PollFacts) -> None:
        """`action` could not be recorded: decide on its runs again at the next poll."""
        runs = {run.id: run for run in facts.failed_runs}
        for _, run_id in triage.announced_pairs(action):
            if run_id in runs:
                self.carried[run_id] = runs[run_id]
