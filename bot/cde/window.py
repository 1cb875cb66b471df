"""Which pages of the look-back window to read this poll, within a request budget (pure).

A listing newest first holds the window's runs by creation time. Runs created since the
last poll are at its head; a run created long ago that fails late is listed at its
creation time, anywhere in the window. So each poll reads, in this order of priority:

- the **head**: from the newest end until a page reaches past the newest run the last
  poll saw (at least one page);
- the **backlog**, when an earlier head needed more than its share of the budget (a
  burst): it goes on where that head stopped, until it reaches what the head before had
  read;
- the **margin**: on from the head until a page reaches `HEAD_MARGIN` before that newest
  run. A run that fails minutes after its creation is listed behind runs created after
  it, which the last poll saw; the margin tells it at the next poll all the same;
- the **sweep**: the rest of the window, a few pages a poll, from a cursor kept between
  polls, until it reaches past the window's old end; the next poll starts a new cycle
  right after its head.

Positions are distances from the newest end. New runs arriving there push what was
already read further on, so a sweep resumed at its old distance reads some runs again and
never skips one. Runs taken out of the listing nearer the newest end would pull unread
runs before that distance: the sweep goes on at the last run it read, and when an older
one stands there, it steps back a page at a time until it finds its place. The head, the
backlog and the margin never take the last request of a poll: the sweep always moves on,
however long a burst lasts. A sweep is bounded by `max_pages`: one that needs more is cut
short (and says so) and starts over.

Every run of the window is read at least once a cycle, so a late failure is read within
one cycle of polls; a failure of a run created since the last poll (or within
`HEAD_MARGIN` before the newest one it saw) at the next poll.

`PollPlan` says which page to ask next and takes in what each page held; it does no I/O
(`bot.cde.scan.WindowScan` asks the API). `SweepState.looked` says, for each run, since
when the bot is known to have looked where the listing shows it: a run not seen then
failed after that, which is what `bot.notices.triage.is_news` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum

from bot.cde.models import Run

HEAD_MARGIN = timedelta(minutes=10)
# Requests one poll may spend on the scan of failed runs (CDE_POLL_MAX_REQUESTS).
POLL_MAX_REQUESTS = 10
# Pages one sweep of the window may read before it is cut short (CDE_SCAN_MAX_PAGES).
SWEEP_MAX_PAGES = 200
# Older than any run: a head that reached the listing's end covered everything below.
BEGINNING = datetime.min.replace(tzinfo=UTC)


class Part(Enum):
    HEAD = "head"
    BACKLOG = "backlog"
    MARGIN = "margin"
    SWEEP = "sweep"


@dataclass(frozen=True)
class Backlog:
    """What a head cut short by the budget left: read from `start` on until a page
    reaches past `floor`; what lies above `floor` was looked at by the poll at `looked_at`.
    """

    start: int
    floor: datetime
    looked_at: datetime | None


@dataclass(frozen=True)
class CycleEnd:
    """A sweep cycle ended this poll: `complete` when it reached the window's old end
    (`listed`: every run it read, so what is still listed), else cut short by its pages.
    """

    complete: bool
    polls: int
    seconds: float
    pages: int
    listed: frozenset[str]


@dataclass(frozen=True)
class SweepState:
    """What earlier polls read, kept between polls (in memory: a new process, or a new
    leader, starts a new cycle and knows nothing of what was looked at before).
    """

    last_poll: datetime | None = None  # the last poll that read the head
    head_mark: datetime | None = None  # the newest `created_at` it saw
    head_floor: datetime | None = None  # it read every run created after this
    backlog: Backlog | None = None
    cursor: int | None = None  # where the sweep goes on; None: a new cycle starts
    # The oldest `created_at` the sweep has read: what it reads next is no newer, unless
    # runs it had not reached were taken out of the listing (then it steps back).
    anchor: datetime | None = None
    cycle_started: datetime | None = None
    cycle_polls: int = 0
    cycle_pages: int = 0
    listed: frozenset[str] = frozenset()  # runs read in the window during this cycle
    # Every place in the window has been looked at since then: the start of the last
    # cycle that reached the window's old end (None: none has yet in this process).
    looked_since: datetime | None = None
    # The last cycle ended cut short by its pages (so the coverage is short until one
    # ends complete).
    short: bool = False
    last_cycle: CycleEnd | None = None
    # The listing's order as the last poll found it: "newest" or "oldest" first, or
    # "unordered" (read in full from then on); None: not known yet. An oldest-first
    # listing's `total` as it was, to find its end again with one request.
    order: str | None = None
    total: int | None = None

    def looked(self, run: Run) -> datetime | None:
        """Since when the bot is known to have looked where `run` is listed, as of the
        start of this poll: a run not seen then failed later. The head's region is the
        last poll's, a backlog's the poll before its burst; anywhere else in the window,
        the start of the last complete cycle. Borders are excluded (ties may lie unread
        on either side), and a run without `created_at` may be anywhere.
        """
        created = run.created_at
        if created is not None:
            if self.head_floor is not None and created > self.head_floor:
                return self.last_poll
            if self.backlog is not None and created > self.backlog.floor:
                return self.backlog.looked_at
        return self.looked_since


@dataclass
class _Reach:
    """How far one part of the plan has read this poll."""

    part: Part
    start: int
    end: int
    floor: datetime | None  # stop once a page reaches past it (None: after one page)
    requests: int = 0
    done: bool = False
    newest: datetime | None = None
    oldest: datetime | None = None  # the oldest `created_at` read, in listing order
    at_end: bool = False
    ordered: bool = True
    cut: bool = False  # stopped by the budget before its floor

    def take(self, runs: Sequence[Run], size: int, at_end: bool) -> None:
        self.requests += 1
        self.end += size
        for run in runs:
            created = run.created_at
            if created is None:
                continue
            if self.oldest is not None and created > self.oldest:
                self.ordered = False
            if self.newest is None:
                self.newest = created
            self.oldest = created if self.oldest is None else min(self.oldest, created)
        self.at_end = at_end or size == 0

    def past(self, moment: datetime | None) -> bool:
        return moment is not None and self.oldest is not None and self.oldest < moment


@dataclass(frozen=True)
class Step:
    """One page to ask: `size` runs from `start` (distance from the newest end)."""

    part: Part
    start: int
    size: int


@dataclass
class PollPlan:
    """The reading of one poll: `next()` says which page to ask, `take()` what it held;
    `finish()` gives the state for the next poll. `budget` is at least 2.

    The parts, in the order they get the budget: the head (runs created since the last
    poll's newest), the backlog, the margin (runs created up to `HEAD_MARGIN` before that
    newest: the head read them last poll, and a run that failed since is listed there),
    and the sweep. All but the sweep leave it the poll's last request. In the poll that
    starts a cycle there is no backlog or margin: the sweep starts right after the head.
    """

    state: SweepState
    now: datetime
    since: datetime
    budget: int
    max_pages: int
    page_size: int
    requests: int = 0
    unordered: bool = False
    window_read: bool = False  # the head reached the window's old end: all read this poll
    cut_short: bool = False
    seen: dict[str, Run] = field(default_factory=dict)
    _head: _Reach = field(init=False)
    _backlog: _Reach | None = field(init=False, default=None)
    _backlog_looked: datetime | None = field(init=False, default=None)
    _margin: _Reach | None = field(init=False, default=None)
    _sweep: _Reach | None = field(init=False, default=None)
    _sweep_pages: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # No newest run known (a new process): one page, and the sweep reads on from it.
        self._head = _Reach(Part.HEAD, 0, 0, self.state.head_mark)

    @property
    def new_cycle(self) -> bool:
        return self.state.cursor is None

    def next(self) -> Step | None:
        """The next page to ask, or None when this poll has read what it may."""
        if self.unordered or self.requests >= self.budget:
            return None
        head = self._head
        if not head.done:
            if self.requests < self.budget - 1:
                return Step(Part.HEAD, head.end, self.page_size)
            self._cut_head()
        if self.window_read:
            return None
        for reach in (self._backlog_reach(), self._margin_reach()):
            if reach is not None and not reach.done:
                if self.requests < self.budget - 1:
                    return Step(reach.part, reach.end, self.page_size)
                reach.done = reach.cut = True
        return self._sweep_step()

    def take(self, step: Step, runs: Sequence[Run], size: int, *, at_end: bool) -> None:
        """What the page asked by `step` held: its runs newest first, `size` entries in all
        (unreadable ones too), and whether the listing ends there.
        """
        self.requests += 1
        for run in runs:
            if run.created_at is None or run.created_at >= self.since:
                self.seen.setdefault(run.id, run)
        reach = {Part.HEAD: self._head, Part.BACKLOG: self._backlog, Part.MARGIN: self._margin,
                 Part.SWEEP: self._sweep}[step.part]
        assert reach is not None
        reach.take(runs, size, at_end)
        if not reach.ordered:
            self.unordered = True
            return
        if step.part is Part.SWEEP:
            self._sweep_pages += 1
            if reach.requests == 1 and self._slipped(reach) and self._step_back(reach):
                return
        if reach.at_end or reach.past(self.since):
            reach.done = True
            self.window_read = self.window_read or step.part is Part.HEAD
        elif reach.floor is None or reach.past(reach.floor):
            reach.done = True

    def _cut_head(self) -> None:
        """The head needs more than its share (a burst): what it did not read is left to
        the backlog, or, when a cycle starts this poll, to its sweep, which reads on from it.
        """
        head = self._head
        head.done = head.cut = True
        if self.new_cycle or head.floor is None:
            return
        old = self.state.backlog
        # A burst upon a burst: one backlog, down to the older floor.
        floor = head.floor if old is None else min(old.floor, head.floor)
        self._backlog = _Reach(Part.BACKLOG, head.end, head.end, floor, done=True)
        self._backlog_looked = self.state.last_poll if old is None else old.looked_at

    def _backlog_reach(self) -> _Reach | None:
        old = self.state.backlog
        if self._backlog is None and old is not None and not self.new_cycle:
            start = max(old.start, self._head.end)
            self._backlog = _Reach(Part.BACKLOG, start, start, old.floor)
            self._backlog_looked = old.looked_at
        return self._backlog

    def _margin_reach(self) -> _Reach | None:
        mark = self.state.head_mark
        if self._margin is None and mark is not None and not self.new_cycle and not self._head.cut:
            end = self._head.end
            self._margin = _Reach(Part.MARGIN, end, end, mark - HEAD_MARGIN)
            self._margin.done = self._head.past(mark - HEAD_MARGIN)
        return self._margin

    def _sweep_step(self) -> Step | None:
        sweep = self._sweep
        if sweep is None:
            start = self._head.end
            if not self.new_cycle:
                # One run again, the last it read: it shows whether the listing shrank.
                overlap = 1 if self.state.anchor is not None else 0
                start = max((self.state.cursor or 0) - overlap, start)
            for read in (self._margin, self._backlog):
                if read is not None and read.start <= start < read.end:
                    start = read.end  # read this poll already
            sweep = self._sweep = _Reach(Part.SWEEP, start, start, self.since)
        if sweep.done:
            return None
        if self._cycle_pages() >= self.max_pages:
            self.cut_short = sweep.done = True
            return None
        return Step(Part.SWEEP, sweep.end, self.page_size)

    def _slipped(self, sweep: _Reach) -> bool:
        """The sweep goes on at the last run it read; when that place holds an older run,
        runs were taken out of the listing nearer the newest end, and some it had not read
        moved to before where it goes on.
        """
        anchor = self.state.anchor
        return not self.new_cycle and anchor is not None and sweep.newest is not None \
            and sweep.newest < anchor

    def _step_back(self, sweep: _Reach) -> bool:
        """Go on a page nearer the newest end, never into what this poll read from it
        (False: the sweep starts right after that already, nothing lies between).
        """
        floor = max(read.end for read in (self._head, self._margin) if read is not None)
        back = max(floor, sweep.start - self.page_size)
        if back >= sweep.start:
            return False
        self._sweep = _Reach(Part.SWEEP, back, back, self.since)
        return True

    def _cycle_pages(self) -> int:
        first = self._head.requests if self.new_cycle else 0
        return self.state.cycle_pages + first + self._sweep_pages

    # -- the state for the next poll ------------------------------------------------------

    def finish(self) -> tuple[SweepState, CycleEnd | None]:
        """The state for the next poll, and the cycle that ended this poll, if one did."""
        state = self.state
        cycle_started = self.now if self.new_cycle else state.cycle_started or self.now
        listed = (frozenset() if self.new_cycle else state.listed) | frozenset(self.seen)
        pages = self._cycle_pages()
        polls = (0 if self.new_cycle else state.cycle_polls) + 1
        sweep = self._sweep
        complete = self.window_read or (sweep is not None and sweep.done and not self.cut_short)
        new = replace(
            state,
            last_poll=self.now,
            head_mark=self._head.newest or state.head_mark,
            head_floor=self._head_floor(),
            backlog=self._next_backlog(),
            cursor=sweep.end if sweep is not None else state.cursor,
            anchor=sweep.oldest if sweep is not None and sweep.oldest else state.anchor,
            cycle_started=cycle_started,
            cycle_polls=polls,
            cycle_pages=pages,
            listed=listed,
        )
        if not (complete or self.cut_short):
            return new, None
        ended = CycleEnd(complete, polls, (self.now - cycle_started).total_seconds(), pages, listed)
        return replace(
            new, cursor=None, anchor=None, listed=frozenset(), cycle_polls=0, cycle_pages=0,
            looked_since=cycle_started if complete else state.looked_since,
            short=not complete, last_cycle=ended if complete else state.last_cycle,
        ), ended

    def _head_floor(self) -> datetime | None:
        """Every run created after this was read this poll, from the newest end on."""
        top = self._margin if self._margin is not None and self._margin.requests else self._head
        if top.at_end:
            return BEGINNING
        return top.oldest if top.oldest is not None else self._head.oldest

    def _next_backlog(self) -> Backlog | None:
        backlog = self._backlog
        if backlog is None or backlog.floor is None or self.window_read:
            return None
        if backlog.at_end or backlog.past(backlog.floor) or backlog.past(self.since):
            return None
        return Backlog(backlog.end, backlog.floor, self._backlog_looked)
