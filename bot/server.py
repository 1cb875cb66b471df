"""Running the bot: wiring its parts, start-up checks, the transport and clean shutdown.

Socket Mode when `SLACK_APP_TOKEN` is set, otherwise Slack POSTs to `/slack/events`.
Both modes serve `bot.ops.http`'s endpoints on `PORT`: `GET /healthz` (alive), `GET /readyz`
(Slack connected, store answering, polls not stale) and `GET /metrics` (Prometheus text).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import (
    AsyncSingleTeamAuthorization,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.access import Access, AccessPolicy
from bot.cde.client import DEFAULT_RETRY, CdeClient
from bot.config import Settings
from bot.logs import public_url
from bot.lookups.runs import web_links
from bot.lookups.service import Lookups
from bot.notices.leadership import Leadership, lease_ttl
from bot.notices.oncall import OnCall
from bot.notices.poller import Poller, PollerConfig, PollReport
from bot.notices.scheduler import PollScheduler
from bot.notices.subscriptions import Subscriptions
from bot.ops.http import Health, http_app
from bot.ops.metrics import Metrics
from bot.ops.probe import CdeProbe, probe_cde
from bot.ops.readiness import Readiness, stale_after
from bot.services import Services
from bot.slack.app import build_app, register
from bot.slack.client import RedactingWebClient, TokenCheckFailed, verify_tokens, web_client
from bot.slack.poster import SlackPoster
from bot.slack.socket_mode import AckingSocketModeHandler
from bot.slack.usergroups import SlackGroups
from bot.store.base import Store, StoreError
from bot.store.sql import store_from_url

log = logging.getLogger(__name__)

# How long shutdown waits for listeners that are still answering: longer than a lookup's
# retry deadline (bot.cde.client.DEFAULT_RETRY), so an answer under way is not cut off.
DRAIN_SECONDS = DEFAULT_RETRY.deadline + 5
# Start-up asks Slack again after 1 s, then twice as long each time, at most every 30 s.
SLACK_RETRY_FIRST = 1.0
SLACK_RETRY_MAX = 30.0
# The state key of the last successful poll (Unix seconds), written by the leader.
LAST_POLL_KEY = "poll.last_success"


class StartupError(Exception):
    """The bot cannot start; the message says why and what to do."""


@dataclass
class Bot:
    """Everything `serve` builds, so that tests and other front ends can reuse it."""

    settings: Settings
    client: AsyncWebClient
    cde: CdeClient
    store: Store
    app: AsyncApp
    poller: Poller
    health: Health = field(default_factory=Health)
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness | None = None
    leadership: Leadership | None = None

    def __post_init__(self) -> None:
        if self.readiness is None:
            self.readiness = Readiness(
                stale_after(self.settings.cde_poll_interval, self.settings.cde_poll_stale_seconds))
        if self.leadership is None:
            self.leadership = Leadership(self.store, ttl=lease_ttl(self.settings.cde_poll_interval))
        # Any replica tells the truth about polling: the leader's last success is shared.
        self.readiness.shared_last_poll = self._shared_last_poll

    async def _shared_last_poll(self) -> float | None:
        stored = await self.store.get_state(LAST_POLL_KEY)
        return float(stored) if stored else None

    @classmethod
    def build(cls, settings: Settings) -> Bot:
        metrics = Metrics()
        client = web_client(settings, on_rate_limited=metrics.slack_rate_limited)
        cde = CdeClient(str(settings.cde_api_url), settings.cde_api_token, observer=metrics)
        store = store_from_url(settings.database_url)
        links = web_links(settings.cde_web_url_template)
        poster = SlackPoster(client)
        oncall = OnCall(store, poster, links)
        poller = Poller(cde, store, oncall, PollerConfig(
            window=timedelta(hours=settings.cde_lookback_hours),
            digest_threshold=settings.notice_digest_threshold,
            outage_alert_after=timedelta(minutes=settings.cde_outage_alert_minutes),
            admin_channel=settings.slack_admin_channel,
            poll_max_requests=settings.cde_poll_max_requests,
            scan_max_pages=settings.cde_scan_max_pages,
            recovery_max_requests=settings.cde_recovery_max_requests,
            allowed_sites=frozenset(settings.cde_allowed_sites),
            allowed_channels=frozenset(settings.cde_allowed_channels),
        ))
        access = Access(AccessPolicy.from_settings(settings), SlackGroups(client))
        app = build_app(settings, client)
        register(app, Services(Lookups(cde, links, sites=access.policy),
                               Subscriptions(store, poster, access.policy), oncall,
                               metrics=metrics, access=access))
        return cls(settings, client, cde, store, app, poller, metrics=metrics)

    async def poll_once(self) -> PollReport:
        """One poll, when this replica holds the poller's lease, with every write fenced by
        it; recorded for `/metrics` and `/readyz`. A crash is counted, then raised.
        """
        leadership = self.leadership
        assert leadership is not None
        try:
            report = await leadership.poll(self._poll_and_share)
        except StoreError as exc:
            # The database, not a bug: what the poll had not recorded is planned again at
            # the next one, so a warning says it all.
            log.warning("poll stopped: %s; the next poll tries again", exc)
            self.metrics.poll_finished("store_error")
            return PollReport(outcome="store_error", error=str(exc))
        except Exception:
            self.metrics.poll_finished("crashed")
            raise
        self.metrics.leads(leadership.leads)
        if report is None:
            # What it read of the window while it led is stale by the time it leads again.
            self.poller.start_over()
            outcome = "lease_lost" if leadership.lost_mid_poll else "standby"
            self.metrics.poll_finished(outcome)
            return PollReport(outcome=outcome)
        now = time.time()
        assert self.readiness is not None
        if report.outcome in ("idle", "ok"):
            self.readiness.last_poll_success = now
            self.readiness.scans_cut_short = tuple(report.cut_short)
        self.metrics.poll_finished(report.outcome, report.notices, at=now,
                                   incomplete_scans=report.incomplete_scans, post_errors=report.post_errors)
        if report.outcome in ("idle", "ok"):
            self.metrics.odd_runs_seen(report.odd_runs)
            if report.sweep_polls is not None and report.sweep_seconds is not None:
                self.metrics.window_swept(report.sweep_polls, report.sweep_seconds)
        return report

    async def _poll_and_share(self) -> PollReport:
        """A poll, and its success recorded for every replica's `/readyz` (fenced too)."""
        report = await self.poller.poll_once()
        if report.outcome in ("idle", "ok"):
            await self.store.set_state(LAST_POLL_KEY, repr(time.time()))
        return report

    async def aclose(self) -> None:
        await self.cde.aclose()
        if isinstance(self.client, RedactingWebClient):
            await self.client.aclose()
        await self.store.close()


def prime_authorization(app: AsyncApp, identity: AsyncSlackResponse) -> None:
    """Give Bolt the `auth.test` answer start-up already has. Bolt would otherwise call
    `auth.test` again before the first listener, inside the 3-second ack budget.
    """
    for middleware in app._async_middleware_list:  # no public hook for this cache
        if isinstance(middleware, AsyncSingleTeamAuthorization):
            middleware.auth_test_result = identity


async def serve(settings: Settings, *, stop: asyncio.Event | None = None,
                host: str = "0.0.0.0") -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    # From the start: a stop must also end the wait for Slack to become reachable.
    _on_signals(stop.set)
    bot = Bot.build(settings)
    runner: web.AppRunner | None = None
    socket: AckingSocketModeHandler | None = None
    keeper: asyncio.Task[None] | None = None
    scheduler = PollScheduler(bot.poll_once, settings.cde_poll_interval)
    try:
        try:
            await bot.store.open()
        except StoreError as exc:
            raise StartupError(str(exc)) from None
        # Listening first: `/healthz` answers 503 while start-up waits for Slack.
        runner = await _listen(bot, host)
        auth = await _checked_tokens(bot, stop)
        if auth is None:
            return  # stopped while Slack could not be reached
        prime_authorization(bot.app, auth)
        identity = {"team": str(auth.get("team", "")), "bot_user": str(auth.get("user", ""))}
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            socket = AckingSocketModeHandler(
                bot.app, settings.slack_app_token.get_secret_value(), web_client=bot.client
            )
            await _connect(socket)
        bot.health.details = {"transport": "socket" if socket else "http", **identity}
        bot.health.ready = True
        assert bot.readiness is not None
        # HTTP mode has no connection to watch: Slack is reachable once start-up verified it.
        bot.readiness.slack_connected = socket.client.is_connected if socket else _verified
        bot.readiness.started_at = time.time()
        # Polling starts only once Slack is connected, so notices have somewhere to go.
        scheduler.start()
        keeper = asyncio.create_task(_keep_lease(bot, scheduler, stop), name="poller-lease")
        log.info(
            "cde-bot ready as %s in %s (%s mode; port %d)",
            identity["bot_user"], identity["team"], bot.health.details["transport"], settings.port,
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        await _shut_down(bot, scheduler, socket, runner, keeper)


async def _listen(bot: Bot, host: str) -> web.AppRunner:
    """Serve the HTTP endpoints on PORT; a port in use is a start-up error."""
    runner = web.AppRunner(http_app(bot), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, bot.settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"cannot listen on {host}:{bot.settings.port} ({exc.strerror or exc}): another "
            "process may be using it; stop it, or set PORT to a free port"
        ) from None
    return runner


async def _verified_identity(bot: Bot, stop: asyncio.Event) -> AsyncSlackResponse | None:
    """The `auth.test` answer once Slack accepted the tokens; None when stopped first.

    A token Slack rejected is a `StartupError` at once. When Slack cannot be reached (a DNS
    blip, a network still coming up, a 5xx, a rate limit), start-up says so and tries again
    with backoff for as long as it takes, as Socket Mode does once connected: exiting would
    only make the orchestrator restart the bot in a loop, and `/healthz` tells it meanwhile.
    """
    settings = bot.settings
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    shown = public_url(str(settings.slack_api_url))
    delay = SLACK_RETRY_FIRST
    while not stop.is_set():
        try:
            return await verify_tokens(bot.client, app_token)
        except TokenCheckFailed as exc:
            if exc.transient is None:
                raise StartupError(str(exc)) from None
            log.warning("cannot reach Slack's Web API at %s (%s); trying again in %.0f s "
                        "(/healthz answers 503 until then)", shown, exc.transient, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, SLACK_RETRY_MAX)
    return None


async def _checked_tokens(bot: Bot, stop: asyncio.Event) -> AsyncSlackResponse | None:
    """Slack's `auth.test` answer once it accepted the tokens, and the CDE API checked as
    `cde-bot check` does; None when stopped while Slack could not be reached.

    The CDE API is asked while Slack is: neither answer depends on the other, and over a
    real network each takes a round trip or more. What it answered is reported once Slack
    accepted the tokens, as when they were asked one after the other; when waiting for Slack
    took longer than its first retry, the CDE API is asked again, so that the report is of
    the moment start-up goes on rather than of minutes before.
    """
    asked = time.monotonic()
    early = asyncio.create_task(probe_cde(bot.settings), name="cde-check")
    try:
        auth = await _verified_identity(bot, stop)
    except BaseException:
        await _cancelled(early)
        raise
    if auth is None:
        await _cancelled(early)
        return None
    probe = await early
    if time.monotonic() - asked > SLACK_RETRY_FIRST:
        probe = await probe_cde(bot.settings)
    _report_cde(probe)
    return auth


async def _cancelled(task: asyncio.Task[CdeProbe]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _report_cde(probe: CdeProbe) -> None:
    """A rejected CDE token stops start-up; an API that cannot be asked now is only a
    warning, as every poll tries again."""
    if probe.ok:
        log.info("CDE API: %s", probe.detail)
    elif probe.token_rejected:
        raise StartupError(f"the CDE API refused CDE_API_TOKEN: {probe.detail}: {probe.fix}")
    else:
        log.warning("CDE API not checked at start: %s (%s); starting anyway, polls will retry",
                    probe.detail, probe.fix)


async def _keep_lease(bot: Bot, scheduler: PollScheduler, stop: asyncio.Event) -> None:
    """Renew the poller's lease (or wait for it) until stopped; a replica that becomes the
    leader polls at once rather than at its next turn.
    """
    assert bot.leadership is not None
    await bot.leadership.keep(stop, on_lead=scheduler.poll_now, on_change=bot.metrics.leads)


async def _shut_down(bot: Bot, scheduler: PollScheduler, socket: AckingSocketModeHandler | None,
                     runner: web.AppRunner | None, keeper: asyncio.Task[None] | None) -> None:
    # One budget for the whole shutdown, so the orchestrator's stop timeout holds.
    deadline = time.monotonic() + DRAIN_SECONDS
    bot.health.ready = False
    await scheduler.stop(grace=DRAIN_SECONDS)
    if keeper is not None:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    assert bot.leadership is not None
    await bot.leadership.release()  # another replica takes over at once
    if socket is not None:
        await _close(socket)
    if runner is not None:
        await runner.cleanup()
    await _drain(max(0.0, deadline - time.monotonic()))
    await bot.aclose()
    log.info("stopped")


async def _connect(socket: AckingSocketModeHandler) -> None:
    # slack_bolt leaves connect_async and close_async unannotated; both return None.
    connect = cast(Callable[[], Awaitable[None]], socket.connect_async)
    await connect()


async def _close(socket: AckingSocketModeHandler) -> None:
    close = cast(Callable[[], Awaitable[None]], socket.close_async)
    await close()


async def _verified() -> bool:
    return True


def _on_signals(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback)


async def _drain(grace: float) -> None:
    """Let listeners that acked but have not answered yet finish, within `grace` seconds."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=grace)
    for task in still:
        task.cancel()
    if still:
        log.warning("cancelled %d task(s) still running after %.0fs", len(still), grace)
