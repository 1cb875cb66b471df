"""Slack as the console sees it: a tiny Web API and `response_url` on loopback.

The console runs the real Bolt app; its Web API client and its `respond()` calls reach
this server instead of Slack, which hands every message to the console to show. Only the
methods the bot calls are here.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

BOT_USER = "U0CDEBOT"


@dataclass
class Posted:
    """A message as the console shows it: where it went and how it got there."""

    channel: str
    ts: str
    message: dict[str, Any]
    how: str  # post | reply | update | ephemeral | replace | delete
    thread_ts: str | None = None


@dataclass
class LocalSlack:
    on_message: Callable[[Posted], None]
    team: str = "console"
    port: int = 0
    _runner: web.AppRunner | None = None
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _urls: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        # Short keep-alive: the bot's Slack clients open a session per call, so an idle
        # connection is a leftover, not one about to be used again.
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=0.2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, channel: str, message_ts: str | None = None) -> str:
        key = uuid.uuid4().hex
        self._urls[key] = (channel, message_ts)
        return f"http://127.0.0.1:{self.port}/respond/{key}"

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    async def _api(self, request: web.Request) -> web.Response:
        params = await _params(request)
        method = request.match_info["method"]
        if method == "auth.test":
            return web.json_response({"ok": True, "team": self.team, "user": "cde-bot",
                                      "team_id": "T0CONSOLE", "user_id": BOT_USER, "bot_id": "B0CONSOLE"})
        if method == "chat.postMessage":
            ts = self.next_ts()
            thread = params.get("thread_ts") or None
            self.on_message(Posted(params["channel"], ts, _content(params),
                                   "reply" if thread else "post", thread))
            return web.json_response({"ok": True, "channel": params["channel"], "ts": ts})
        if method == "chat.update":
            self.on_message(Posted(params["channel"], params["ts"], _content(params), "update"))
            return web.json_response({"ok": True, "channel": params["channel"], "ts": params["ts"]})
        return web.json_response({"ok": False, "error": "unknown_method"})

    async def _respond(self, request: web.Request) -> web.Response:
        channel, message_ts = self._urls.get(request.match_info["key"], ("console", None))
        body = await request.json()
        if body.get("delete_original"):
            how = "delete"
        elif body.get("replace_original"):
            how = "replace"
        elif body.get("response_type") == "in_channel":
            how = "post"
        else:
            how = "ephemeral"
        self.on_message(Posted(channel, message_ts or self.next_ts(), _content(body), how))
        return web.Response(text="ok")


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    return dict(parse_qsl(await request.text()))


def _content(params: dict[str, Any]) -> dict[str, Any]:
    blocks = params.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return {"text": params.get("text", ""), "blocks": blocks}
