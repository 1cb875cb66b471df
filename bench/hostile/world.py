"""What a case runs against: the real bot's code paths over loopback, and stand-ins that
misbehave on demand.

`World` starts the Slack stand-in (Web API, response_urls, Socket Mode), a CDE API
stand-in that can be made hostile (pages capped below the asked limit, a 400 for a large
limit, the oldest first), and the bot as `cde-bot serve` builds it (`Bot.build` and its
HTTP application on 127.0.0.1), with its log configured as `serve` configures it and kept.
Polls are run by the case, one after the other, where the scheduler would wait. Everything
that leaves the bot (Web API calls, response_url answers, HTTP answers, log records) can be
searched for the configured secrets.

Only what merely takes time is shortened: the first retry of a failed post comes after
50 ms instead of 2 s, posts to one channel are not spaced a second apart (the stand-in has
no such limit), and start-up's checks of the tokens are skipped (the stand-ins know them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bench.hostile.census import Observation
from bot import logs
from bot.demo.api import SampleCdeApi, _matches
from bot.notices import outbox
from bot.notices.posts import DIGEST_LIST, NOTICE
from bot.server import _verified
from bot.slack.client import EVENTS_PATH
from tests.helpers.bot_in_process import InProcessBot
from tests.helpers.bot_process import APP_TOKEN, BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET
from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)
from tests.standins.slack.records import ApiCall, Fault

SECRETS = {"the bot token": BOT_TOKEN, "the app token": APP_TOKEN,
           "the signing secret": SIGNING_SECRET, "the CDE token": CDE_TOKEN}
OPS, OTHER, ADMIN = "C0001", "C0002", "C0ADMIN"
# How long a case waits for something that should happen at once (a reply, a notice).
PROMPT = 10.0
RETRY_FIRST = 0.05
NOTICE_TAG = "cde_bot_notice"
# The kinds of post (the first word of their tag's key) that first tell a failure.
TELLING = (NOTICE, DIGEST_LIST)


class HostileSlack(SlackStandIn):
    """The Slack stand-in, able to answer with a text/plain page (a load balancer's)."""

    def __init__(self) -> None:
        super().__init__(bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SIGNING_SECRET)
        self._plain: set[int] = set()

    def fail_next_plain(self, method: str, times: int = 1, status: int = 503,
                        body: str = "upstream connect error or disconnect/reset before headers") -> None:
        for _ in range(times):
            fault = Fault(status, None, "", body)
            self._plain.add(id(fault))
            self._faults.setdefault(method, []).append(fault)

    def _faulty(self, call: ApiCall, fault: Fault) -> web.Response:
        if id(fault) not in self._plain or fault.html is None:
            return super()._faulty(call, fault)
        call.status, call.injected, call.response = fault.status, True, fault.html
        self._record(call)
        return web.Response(status=fault.status, text=fault.html, content_type="text/plain")


class HostileCde(SampleCdeApi):
    """The sample CDE API, with the listing's quirks settable: `page_cap` (pages no longer
    than this, whatever `limit` asked), `with_total` (whether `metadata.total` is sent),
    `max_limit` (a 400 naming `limit` above it), `oldest_first`.
    """

    def __init__(self) -> None:
        super().__init__([], token=CDE_TOKEN)
        self.page_cap: int | None = None
        self.with_total = True
        self.max_limit: int | None = None
        self.oldest_first = False

    async def _list(self, request: web.Request) -> web.Response:
        if self.page_cap is None and self.with_total and self.max_limit is None and not self.oldest_first:
            return await super()._list(request)
        refused = await self._gate(request)
        if refused is not None:
            return refused
        try:
            offset, limit = int(request.query.get("from", "0")), int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response({"message": "Bad request.", "errors": {"limit": "not an int"}},
                                     status=400)
        if self.max_limit is not None and limit > self.max_limit:
            return web.json_response({"message": "Bad request.", "errors": {
                "limit": f"This value should be between 1 and {self.max_limit}."}}, status=400)
        ordered = self._newest_first()
        if self.oldest_first:
            ordered = list(reversed(ordered))
        matching = [run for run in ordered if _matches(run, request.query)]
        size = min(limit, self.page_cap) if self.page_cap is not None else limit
        page = matching[offset: offset + size]
        metadata: dict[str, Any] = {"from": offset, "limit": size, "count": len(page)}
        if self.with_total:
            metadata["total"] = len(matching)
        return web.json_response({"data": page, "metadata": metadata, "message": "successful operation"})


@dataclass(frozen=True)
class Record:
    level: int
    text: str
    at: float
    traceback: bool


class LogCapture(logging.Handler):
    """Every log record as the bot's configured handler would write it (same filters,
    the secrets redacted as there), with its level."""

    def __init__(self, configured: logging.Handler) -> None:
        super().__init__()
        self.records: list[Record] = []
        self.setFormatter(configured.formatter)
        for log_filter in configured.filters:
            self.addFilter(log_filter)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.records.append(Record(record.levelno, text, time.monotonic(), "Traceback" in text))

    def text(self) -> str:
        return "\n".join(record.text for record in self.records)

    def since(self, moment: float) -> list[Record]:
        return [record for record in self.records if record.at >= moment]


@dataclass(frozen=True)
class Answer:
    """What the bot answered one HTTP request."""

    status: int
    body: str


class World:
    """Stand-ins and a bot in this event loop; see the module."""

    def __init__(self, seen: Observation, runs: list[dict[str, Any]] | None = None, *,
                 in_process: bool = True, **settings: object) -> None:
        """`in_process=False`: the stand-ins only, for a case that runs the bot as a process."""
        self.seen = seen
        self.in_process = in_process
        self.settings = {"notice_digest_threshold": 100, "slack_admin_channel": ADMIN,
                         "log_level": "DEBUG", **settings}
        self.slack = HostileSlack()
        self.cde = HostileCde()
        for run in runs or []:
            self.cde.add_run(run)
        self.answers: list[Answer] = []
        # Other output that leaves the bot (a report printed), by what it is.
        self.printed: dict[str, str] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="hostile-")
        self.database = Path(self._tmp.name) / "bot.db"
        self.bot: InProcessBot | None = None
        self.log: LogCapture | None = None
        self._root_handlers: list[logging.Handler] = []
        self._root_level = logging.WARNING
        self._stack = contextlib.AsyncExitStack()

    # -- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> World:
        await self._stack.__aenter__()
        # Small windows: the outbox tries a failed post again after 50 ms, not 2 s, as the
        # polls of a case follow each other without the minute between them.
        patch = self._stack.enter_context(pytest.MonkeyPatch.context())
        patch.setattr(outbox, "RETRY_FIRST", RETRY_FIRST)
        await self._stack.enter_async_context(self.slack)
        await self._stack.enter_async_context(self.cde)
        for channel, name in ((OPS, "ops"), (OTHER, "other"), (ADMIN, "cde-admin")):
            self.slack.add_channel(channel, name)
        root = logging.getLogger()
        self._root_handlers, self._root_level = list(root.handlers), root.level
        if self.in_process:
            await self.start_bot()
        return self

    async def start_bot(self) -> InProcessBot:
        """Build and start the bot (again, after `stop_bot`), on the same database."""
        bot = InProcessBot(self.slack, self.cde, self.database, **self.settings)
        logs.configure(str(self.settings["log_level"]), bot.bot.settings.secrets(), "text")
        root = logging.getLogger()
        self.log = self.log or LogCapture(root.handlers[0])
        root.handlers[:] = [self.log]
        # aiosqlite logs every statement with its arguments at DEBUG (thousands of records a
        # poll, the ids of every run seen): its own chatter, not the bot's, and the time
        # spent redacting it would be the census's slowest step.
        logging.getLogger("aiosqlite").setLevel(logging.INFO)
        await bot.start()
        assert bot.bot.readiness is not None
        # HTTP mode: Slack is reachable once start-up verified it (this world skips that step).
        bot.bot.readiness.slack_connected = _verified
        self.bot = bot
        # The real bot polls as soon as it is ready, subscribed to or not: what it has seen
        # by the time a channel subscribes is what is old news there.
        await self.poll()
        return bot

    async def stop_bot(self) -> None:
        if self.bot is not None:
            bot, self.bot = self.bot, None
            await bot.stop()

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            try:
                await self.stop_bot()
            except Exception as exc:  # noqa: BLE001 - what the census counts
                self.seen.crashes.append(f"stopping the bot raised {type(exc).__name__}: {exc}")
            await self._stack.__aexit__(None, None, None)
        finally:
            root = logging.getLogger()
            root.handlers[:] = self._root_handlers
            root.setLevel(self._root_level)
            self._tmp.cleanup()

    @property
    def directory(self) -> Path:
        return Path(self._tmp.name)

    @property
    def url(self) -> str:
        assert self.bot is not None
        return self.bot.url

    # -- requests to the bot ----------------------------------------------------------

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> Answer:
        """One HTTP request to the bot; its answer is kept (it left the bot), a 5xx with a
        traceback in it is a crash."""
        async with aiohttp.ClientSession() as session, session.request(
                method, f"{self.url}{path}", data=body, headers=dict(headers or {})) as response:
            answer = Answer(response.status, await response.text(errors="replace"))
        self.answers.append(answer)
        if answer.status >= 500 and "Traceback" in answer.body:
            self.seen.crashes.append(f"{path} answered {answer.status} with a traceback")
        return answer

    async def post_event(self, body: bytes, *, secret: str | None = SIGNING_SECRET,
                         timestamp: int | str | None = None,
                         content_type: str = "application/x-www-form-urlencoded") -> Answer:
        """POST `body` to `/slack/events`, signed with `secret` (unsigned when None)."""
        headers = {"Content-Type": content_type}
        if secret is not None:
            stamp = int(time.time()) if timestamp is None or isinstance(timestamp, str) else timestamp
            headers.update(sign_request(secret, body, stamp))
            if isinstance(timestamp, str):
                headers["X-Slack-Request-Timestamp"] = timestamp
        return await self.request("POST", EVENTS_PATH, body, headers)

    async def command(self, text: str, *, channel: str = OPS, user: str = "U0001",
                      secret: str = SIGNING_SECRET) -> tuple[Answer, str]:
        """`/cde text` typed by `user` in `channel`: the ack, and the command's response_url."""
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = slash_command_payload(text, response_url=url, channel_id=channel, user_id=user)
        return await self.post_event(encode_slash_command(payload), secret=secret), url

    async def click(self, action_id: str, message: dict[str, Any], *, channel: str = OPS,
                    user: str = "U0002") -> tuple[Answer, str]:
        url = self.slack.new_response_url(channel_id=channel, user_id=user)
        payload = block_actions_payload(action_id, response_url=url, message=message,
                                        channel_id=channel, user_id=user)
        return await self.post_event(encode_interaction(payload)), url

    async def subscribe(self, filters: str, channel: str = OPS) -> bool:
        """`/cde subscribe filters` in `channel`; True once its confirmation is posted."""
        before = len(self.slack.messages(channel))
        answer, _ = await self.command(f"subscribe {filters}", channel=channel)
        if answer.status != 200:
            return False
        return await self.wait(lambda: len(self.slack.messages(channel)) > before)

    # -- polls and waiting ------------------------------------------------------------

    async def poll(self, times: int = 1) -> None:
        """Poll `times` times; an exception escaping a poll is a crash, counted, not raised."""
        assert self.bot is not None
        for _ in range(times):
            try:
                await self.bot.bot.poll_once()
            except Exception as exc:  # noqa: BLE001 - what the census counts
                self.seen.crashes.append(f"a poll raised {type(exc).__name__}: {str(exc)[:200]}")
                return

    async def poll_until(self, condition: Callable[[], bool], polls: int = 8, timeout: float = 0.0) -> bool:
        """Poll until `condition()` holds, at least `polls` times or for `timeout` seconds
        (a Retry-After to sit out), whichever is longer; whether it held."""
        deadline = time.monotonic() + timeout
        done = 0
        while done < polls or time.monotonic() < deadline:
            await asyncio.sleep(0 if done < polls else 0.1)  # answers under way come first
            if condition():
                return True
            await self.poll()
            done += 1
        return condition()

    async def wait(self, condition: Callable[[], bool | Awaitable[bool]], timeout: float = PROMPT) -> bool:
        """Until `condition()` holds (without polling); whether it did within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if await value if isinstance(value, Awaitable) else value:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)

    # -- what left the bot ------------------------------------------------------------

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        return self.slack.messages(channel)

    def tagged(self, channel: str = OPS) -> list[dict[str, Any]]:
        """Every message of `channel`, threads too, that tells news: tagged by the bot."""
        found = []
        for message in self.slack.messages(channel):
            found.extend(m for m in [message, *self.slack.replies(channel, message["ts"])]
                         if (m.get("metadata") or {}).get("event_type") == NOTICE_TAG)
        return found

    def told(self, ids: list[str], channel: str = OPS) -> list[str]:
        """Each of `ids` once per message of `channel` that first tells it: a notice, or the
        thread list of a digest (the digest itself only sums up)."""
        found = []
        for message in self.tagged(channel):
            kind = str(message["metadata"]["event_payload"].get("key", "")).split(":")[0]
            if kind not in TELLING:
                continue
            text = json.dumps(message, ensure_ascii=False)
            found.extend(item for item in ids if item in text)
        return found

    def count_told(self, ids: list[str], channel: str = OPS) -> None:
        self.seen.posted.extend(self.told(ids, channel))

    def outgoing(self) -> dict[str, str]:
        """Everything that left the bot, by where it went."""
        calls = [{"method": call.method, "params": call.params} for call in self.slack.calls]
        responses = [post.body for state in self.slack._response_urls.values() for post in state.posts]
        return {
            "a Slack Web API call": json.dumps(calls, ensure_ascii=False, default=str),
            "a response_url answer": json.dumps(responses, ensure_ascii=False, default=str),
            "an HTTP answer": "\n".join(answer.body for answer in self.answers),
            "the log": self.log.text() if self.log else "",
            **self.printed,
        }

    def scan_leaks(self, extra: Mapping[str, str] | None = None) -> None:
        """Record every place a configured secret (or one of `extra`) was found."""
        wanted = {**SECRETS, **(extra or {})}
        for where, text in self.outgoing().items():
            for name, secret in wanted.items():
                if secret and secret in text:
                    self.seen.leaks.append(f"{where} ({name})")

    def scan_tracebacks(self) -> None:
        """A traceback in the log is an exception that escaped somewhere: a crash."""
        if self.log is None:
            return
        for record in self.log.records:
            if record.traceback:
                self.seen.crashes.append("traceback logged: " + record.text.splitlines()[0][-160:])
                return

    def finish(self) -> None:
        """The checks every case ends with: secrets and tracebacks."""
        self.scan_leaks()
        self.scan_tracebacks()

