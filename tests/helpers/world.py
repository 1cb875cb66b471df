"""The poller wired to real stand-ins over loopback (the CDE API's and Slack's), a SQLite
store on disk and a clock moved by hand: what the poller tests drive.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.cde.client import NO_WAIT_RETRY, CdeClient
from bot.demo.api import Fault, SampleCdeApi
from bot.demo.runs import make_run
from bot.notices.models import Incident, NoticeFilter, Subscription
from bot.notices.oncall import OnCall
from bot.notices.poller import Poller, PollerConfig, PollReport
from bot.slack.poster import SlackPoster
from bot.store.sql import SqlStore
from tests.standins.slack import SlackStandIn

OPS = "C0001"


class Clock:
    """The poller's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class WithoutTotal(httpx.AsyncBaseTransport):
    """Forwards to the CDE stand-in, dropping `metadata.total` from every answer."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = json.loads(await response.aread())
        await response.aclose()
        if isinstance(body.get("metadata"), dict):
            body["metadata"].pop("total", None)
        return httpx.Response(response.status_code, json=body)

    async def aclose(self) -> None:
        await self._inner.aclose()


class World:
    """The poller wired to the stand-ins, a tmp SQLite store and a fake clock."""

    cde: SampleCdeApi
    slack: SlackStandIn
    store: SqlStore
    api: CdeClient
    poster: Any  # SlackPoster; Any so tests may swap its methods
    oncall: OnCall
    clock: Clock
    poller: Poller

    async def start(self, database_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                    **config: Any) -> World:
        self.cde = SampleCdeApi()
        await self.cde.start()
        self.slack = SlackStandIn()
        await self.slack.start()
        self.store = SqlStore(database_url)
        await self.store.open()
        client = AsyncWebClient(token="xoxb-test", base_url=self.slack.base_url,
                                retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=5)])
        self.poster = SlackPoster(client, min_interval=0)
        self.oncall = OnCall(self.store, self.poster)
        self.api = CdeClient(self.cde.url, SecretStr("cde-test-token"), retry=NO_WAIT_RETRY,
                             transport=transport)
        self.clock = Clock()
        self.poller = Poller(self.api, self.store, self.oncall, PollerConfig(**config),
                             clock=self.clock)
        return self

    async def stop(self) -> None:
        await self.api.aclose()
        await self.store.close()
        await self.slack.stop()
        await self.cde.stop()

    async def subscribe(self, channel: str = OPS, **filters: Any) -> Subscription:
        """A subscription made an hour ago."""
        made = await self.store.add_subscription(channel, NoticeFilter(**filters), "U0001",
                                                 self.clock() - timedelta(hours=1))
        assert made is not None
        return made

    def fail(self, minutes_ago: float = 0, *, took: timedelta = timedelta(minutes=5),
             **fields: Any) -> dict[str, Any]:
        """Add a run that failed `minutes_ago`, having run for `took`."""
        fields.setdefault("site_id", 1001)
        run = make_run(state="failed", started_at=self.clock() - timedelta(minutes=minutes_ago) - took,
                       took=took, **fields)
        self.cde.add_run(run)
        return run

    async def poll(self, minutes: float = 1) -> PollReport:
        """Let `minutes` pass, then poll."""
        self.clock.advance(minutes=minutes)
        return await self.poller.poll_once()

    def top(self, channel: str = OPS) -> list[dict[str, Any]]:
        return self.slack.messages(channel)

    def thread(self, ts: str, channel: str = OPS) -> list[dict[str, Any]]:
        return self.slack.replies(channel, ts)

    def parent(self, ts: str, channel: str = OPS) -> dict[str, Any]:
        message = self.slack.message(channel, ts)
        assert message is not None
        return message

    async def incident(self, channel: str = OPS) -> Incident:
        [incident] = await self.store.open_incidents(channel)
        return incident

    def posts(self) -> int:
        return len(self.slack.calls_to("chat.postMessage"))

    def runs_requests(self) -> int:
        return len(self.cde.requests_to("/runs"))

    def api_down(self) -> None:
        """Every CDE request answers 503 until `api_up`."""
        self.cde.fail_next(*(Fault(status=503) for _ in range(10_000)))

    def api_up(self) -> None:
        self.cde.faults.clear()
