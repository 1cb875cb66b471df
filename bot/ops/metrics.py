"""Prometheus metrics: what the bot did, counted where it happens, served at `/metrics`.

Each `Metrics` owns its own `CollectorRegistry` rather than prometheus-client's global one,
so that tests (and anything else) can build as many bots in one process as they like.
Every label takes its value from a small fixed set (never a run id, a channel or a user),
so the number of series stays bounded; a value outside the set is a bug and raises.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

COMMANDS = ("runs", "run", "help", "subscribe", "subscriptions", "unsubscribe", "audit", "button")
COMMAND_OUTCOMES = ("ok", "user_error", "api_error", "store_error", "internal_error")
CDE_ENDPOINTS = ("runs", "run")
# partial: an ok poll with a scan cut short by its page budget (runs beyond it unseen).
# standby: another replica holds the poller's lease; lease_lost: it was taken mid-poll;
# store_error: the database failed the poll.
POLL_OUTCOMES = ("idle", "ok", "partial", "api_error", "store_error", "crashed", "standby",
                 "lease_lost")
# Outcomes that mean the poll did its job (idle: nothing to watch, which is not a failure).
POLL_SUCCESSES = ("idle", "ok", "partial")
NOTICE_KINDS = ("notice", "repeat", "recovery", "digest", "digest_list", "admin")
NO_STATUS = "none"  # the status label of a CDE request that got no HTTP answer

# Lookups must answer within seconds; polls may page for longer. Up to the retry deadline.
CDE_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class Metrics:
    """The bot's counters, histogram and gauge, in a registry of their own.

    It is also a CDE request observer (`on_request`), so `CdeClient` can report to it
    without knowing about Prometheus.
    """

    CONTENT_TYPE = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._commands = Counter(
            "cde_bot_commands", "Slash commands and button clicks answered, by outcome.",
            ["command", "outcome"], registry=self.registry,
        )
        self._cde_seconds = Histogram(
            "cde_bot_cde_request_seconds", "CDE API request latency, one observation per attempt.",
            ["endpoint", "status"], buckets=CDE_LATENCY_BUCKETS, registry=self.registry,
        )
        self._cde_errors = Counter(
            "cde_bot_cde_errors", "CDE API request attempts that failed, by error class.",
            ["kind"], registry=self.registry,
        )
        self._polls = Counter(
            "cde_bot_polls", "Polls of the CDE API for failed runs, by outcome.",
            ["outcome"], registry=self.registry,
        )
        self._last_poll = Gauge(
            "cde_bot_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that succeeded (0 before the first).",
            registry=self.registry,
        )
        self._notices = Counter(
            "cde_bot_notices_posted", "Messages the poller posted to Slack, by kind.",
            ["kind"], registry=self.registry,
        )
        self._post_errors = Counter(
            "cde_bot_poll_action_failures",
            "Notice actions a poll could not carry out (Slack or the store); most are tried again "
            "next poll.",
            registry=self.registry,
        )
        self._scans_cut_short = Gauge(
            "cde_bot_scans_cut_short",
            "Scans of the last poll short of the window: a sweep cut short by CDE_SCAN_MAX_PAGES "
            "(until one fits), runs beyond unseen.",
            registry=self.registry,
        )
        self._odd_runs = Gauge(
            "cde_bot_odd_runs",
            "Runs in the last poll's failure scan that did not fully fit the API's documented "
            "shape (each logged once).",
            registry=self.registry,
        )
        self._sweep_polls = Gauge(
            "cde_bot_window_sweep_polls",
            "Polls the last full sweep of the look-back window took (0 before the first): a "
            "failure of a run created before the last poll is told within that many polls.",
            registry=self.registry,
        )
        self._sweep_seconds = Gauge(
            "cde_bot_window_sweep_seconds",
            "Seconds from the first poll of the last full sweep of the look-back window to its "
            "last: a late failure is told within that and one poll interval.",
            registry=self.registry,
        )
        self._leader = Gauge(
            "cde_bot_poller_leader",
            "1 while this replica holds the poller's lease (it polls), 0 while another does.",
            registry=self.registry,
        )
        self._rate_limited = Counter(
            "cde_bot_slack_rate_limited", "Slack Web API calls answered with HTTP 429, by method.",
            ["method"], registry=self.registry,
        )
        # Series that exist from the start read 0 rather than missing, so rate() and
        # alerts work from the first scrape.
        for outcome in POLL_OUTCOMES:
            self._polls.labels(outcome)
        for kind in NOTICE_KINDS:
            self._notices.labels(kind)
        for command in COMMANDS:
            for outcome in COMMAND_OUTCOMES:
                self._commands.labels(command, outcome)

    def command_answered(self, command: str, outcome: str) -> None:
        """Count one command or click answered with `outcome`."""
        _check("command", command, COMMANDS)
        _check("outcome", outcome, COMMAND_OUTCOMES)
        self._commands.labels(command, outcome).inc()

    def on_request(self, endpoint: str, status: int | None, seconds: float, error: str | None) -> None:
        """One CDE API attempt: its latency, and its error class when it failed."""
        _check("endpoint", endpoint, CDE_ENDPOINTS)
        self._cde_seconds.labels(endpoint, NO_STATUS if status is None else str(status)).observe(seconds)
        if error is not None:
            self._cde_errors.labels(error).inc()

    def poll_finished(self, outcome: str, notices: Mapping[str, int] | None = None, *,
                      at: float | None = None, incomplete_scans: int = 0, post_errors: int = 0) -> None:
        """One poll ended with `outcome`, having posted `notices` (kind -> count); `at` is
        the Unix time it ended, recorded as the last success when it succeeded. An ok poll
        with `incomplete_scans` is counted as `partial`; `post_errors` counts the actions it
        could not carry out.
        """
        if outcome in POLL_SUCCESSES:
            self._scans_cut_short.set(incomplete_scans)
        if outcome == "ok" and incomplete_scans:
            outcome = "partial"
        _check("poll outcome", outcome, POLL_OUTCOMES)
        if post_errors:
            self._post_errors.inc(post_errors)
        self._polls.labels(outcome).inc()
        for kind, count in (notices or {}).items():
            _check("notice kind", kind, NOTICE_KINDS)
            if count:
                self._notices.labels(kind).inc(count)
        if outcome in POLL_SUCCESSES and at is not None:
            self._last_poll.set(at)

    def leads(self, leading: bool) -> None:
        """Whether this replica holds the poller's lease."""
        self._leader.set(1 if leading else 0)

    def odd_runs_seen(self, count: int) -> None:
        """The last failure scan read `count` runs that did not fully fit."""
        self._odd_runs.set(count)

    def window_swept(self, polls: int, seconds: float) -> None:
        """The last full sweep of the look-back window took `polls` polls, `seconds` seconds."""
        self._sweep_polls.set(polls)
        self._sweep_seconds.set(seconds)

    def slack_rate_limited(self, method: str) -> None:
        """Slack answered a call of `method` (e.g. `chat.postMessage`) with HTTP 429."""
        self._rate_limited.labels(method).inc()

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


def _check(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
