"""The Slack stand-in's world: channels, messages and threads, the calls it received, and
waiting for any of them to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.standins.slack.payloads import APP_ID, BOT_ID, BOT_USER_ID, BOT_USER_NAME, TEAM_ID
from tests.standins.slack.records import ApiCall, Fault, ResponseUrl

JsonDict = dict[str, Any]


def maybe_json(value: Any) -> Any:
    """Form-encoded calls carry blocks/attachments as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SlackState:
    """What the stand-in knows and has seen; the transports' handlers build on it."""

    def __init__(self, bot_token: str, app_token: str, signing_secret: str) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.scopes = ["commands", "chat:write", "chat:write.public", "channels:history",
                       "groups:history", "usergroups:read"]
        # User groups by id (S...), each with its members' user ids.
        self.usergroups: dict[str, list[str]] = {}

        self.calls: list[ApiCall] = []
        # Names shown in the payloads Slack sends, by channel and user id.
        self.channel_names: dict[str, str] = {"C0001": "general", "C0002": "random"}
        self.user_names: dict[str, str] = {"U0001": "alice", "U0002": "bob", BOT_USER_ID: BOT_USER_NAME}
        self.team_name = "Test"  # the workspace's name, as auth.test gives it

        self.socket_connections = 0  # WebSocket connections accepted so far
        self.socket_received: list[JsonDict] = []  # every JSON message from the app

        self._messages: dict[str, list[JsonDict]] = {}
        self._replies: dict[tuple[str, str], list[JsonDict]] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._faults: dict[str, list[Fault]] = {}
        # Called with each call of a method Slack took, before its answer is sent.
        self.on_accept: dict[str, Callable[[ApiCall], None]] = {}
        self._ts_counter = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[JsonDict]] = {}
        self._changed = asyncio.Event()
        self._port: int | None = None

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT/``."""
        if self._port is None:
            raise RuntimeError("SlackStandIn is not started")
        return f"http://127.0.0.1:{self._port}/"

    @property
    def base_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=...)``."""
        return self.url + "api/"

    def reset(self) -> None:
        """Forget what was seen (Web API calls, messages and threads, response_urls and
        their posts, Socket Mode messages) and every fault still queued, so a test sharing
        the stand-in sees only what happens during it. Open WebSockets stay open, and the
        count of connections made goes on.
        """
        self.calls.clear()
        self.socket_received.clear()
        self._messages.clear()
        self._replies.clear()
        self._response_urls.clear()
        self._faults.clear()
        self._notify()

    def add_channel(self, channel_id: str, name: str) -> None:
        """Name a channel, for the payloads Slack sends from it."""
        self.channel_names[channel_id] = name

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        """Recorded calls of ``method``; ``ok`` filters on Slack's answer."""
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def messages(self, channel: str) -> list[JsonDict]:
        """Top-level messages in ``channel`` (current content, oldest first)."""
        return copy.deepcopy(self._messages.get(channel, []))

    def replies(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """Thread replies to ``thread_ts`` in ``channel``."""
        return copy.deepcopy(self._replies.get((channel, thread_ts), []))

    def message(self, channel: str, ts: str) -> JsonDict | None:
        """One message (top-level or reply) by ts."""
        found = self._find_message(channel, ts)
        return copy.deepcopy(found) if found is not None else None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(
        self, predicate: Callable[[], bool], timeout: float, describe: Callable[[], str]
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s: {describe()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _next_ts(self) -> str:
        # Like Slack's: the time it took the message (so history's `oldest` works), unique.
        micros = max(int(time.time() * 1_000_000), self._ts_counter + 100)
        self._ts_counter = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _user_name(self, user_id: str) -> str:
        return self.user_names.get(user_id, user_id.lower())

    def _channel_name(self, channel_id: str) -> str:
        return self.channel_names.get(channel_id, channel_id.lower())

    def _find_message(self, channel: str, ts: str) -> JsonDict | None:
        for msg in self._messages.get(channel, []):
            if msg["ts"] == ts:
                return msg
        for (ch, _), replies in self._replies.items():
            if ch == channel:
                for msg in replies:
                    if msg["ts"] == ts:
                        return msg
        return None

    def _build_message(self, params: JsonDict, ts: str) -> JsonDict:
        msg: JsonDict = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": ts,
            "text": params.get("text") or "",
        }
        self._apply_content(msg, params)
        return msg

    def _apply_content(self, msg: JsonDict, params: JsonDict) -> None:
        if "text" in params:
            msg["text"] = params["text"] or ""
        for key in ("blocks", "attachments", "metadata"):
            if key in params and params[key] is not None:
                value = copy.deepcopy(maybe_json(params[key]))
                if key == "blocks" and isinstance(value, list):
                    # Slack fills in a block_id for every block that has none.
                    for block in value:
                        if isinstance(block, dict):
                            block.setdefault("block_id", secrets.token_urlsafe(4)[:5])
                msg[key] = value

    def _store_message(self, channel: str, msg: JsonDict, thread_ts: str | None) -> None:
        if thread_ts:
            msg["thread_ts"] = thread_ts
            self._replies.setdefault((channel, thread_ts), []).append(msg)
            parent = self._find_message(channel, thread_ts)
            if parent is not None:
                msg["parent_user_id"] = parent.get("user")
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = msg["ts"]
        else:
            self._messages.setdefault(channel, []).append(msg)
