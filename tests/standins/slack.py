"""A local stand-in for Slack: Web API, response_url, Socket Mode and request signing.

It is a real aiohttp server on 127.0.0.1 (random free port), so the real slack_sdk
clients (``AsyncWebClient``, ``AsyncWebhookClient``, ``SocketModeClient``) and Bolt talk
to it over loopback exactly as they would talk to slack.com.

Typical use::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
        await client.chat_postMessage(channel="C0001", text="hi")
        assert slack.messages("C0001")[0]["text"] == "hi"
"""

# Waiting helpers take a ``timeout`` argument on purpose: tests read better that way.

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

TEAM_ID = "T0001"
TEAM_DOMAIN = "test"
APP_ID = "A0001"
BOT_ID = "B0001"
BOT_USER_ID = "U0BOT"
BOT_USER_NAME = "cde-bot"
VERIFICATION_TOKEN = "verification-token"
WORKSPACE_URL = f"https://{TEAM_DOMAIN}.slack.com"

DEFAULT_HTML_ERROR = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)

# Slack's own response_url budget: 5 posts within 30 minutes.
RESPONSE_URL_MAX_POSTS = 5
RESPONSE_URL_WINDOW_SECONDS = 30 * 60

JsonDict = dict[str, Any]


# --------------------------------------------------------------------------- records


@dataclass
class ApiCall:
    """One Web API request as the stand-in received and answered it."""

    method: str
    params: JsonDict
    headers: dict[str, str]
    time: float  # time.monotonic() at arrival
    status: int = 200
    response: JsonDict | str = field(default_factory=dict)
    injected: bool = False  # answered by fail_next()/fail_next_html()

    @property
    def ok(self) -> bool:
        """True when Slack would have accepted the call."""
        return isinstance(self.response, dict) and self.response.get("ok") is True


@dataclass
class ResponsePost:
    """One POST to a response_url."""

    url: str
    body: JsonDict
    time: float  # time.monotonic()
    status: int
    accepted: bool
    answer: str


@dataclass(frozen=True)
class EnvelopeResult:
    """What came back for one Socket Mode envelope."""

    envelope_id: str
    type: str
    payload: JsonDict
    ack: JsonDict
    ack_payload: JsonDict | None
    ack_seconds: float


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    error: str
    html: str | None


@dataclass
class _ResponseUrl:
    url: str
    channel_id: str | None
    message_ts: str | None
    user_id: str | None
    posts: list[ResponsePost] = field(default_factory=list)


# ------------------------------------------------------------------ module helpers


def sign_request(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to an HTTP-mode request: ``v0=`` HMAC-SHA256 of ``v0:{ts}:{body}``."""
    ts = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def new_trigger_id() -> str:
    """A trigger_id shaped like Slack's."""
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def slash_command_payload(
    text: str,
    *,
    response_url: str,
    user_id: str = "U0001",
    user_name: str = "alice",
    channel_id: str = "C0001",
    channel_name: str = "general",
    command: str = "/cde",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """A slash command payload; every value is a string, as in Slack's form post."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }


def _find_element(blocks: list[JsonDict], action_id: str) -> tuple[JsonDict, JsonDict] | None:
    """(block, element) in ``blocks`` whose element has ``action_id``."""
    for block in blocks:
        candidates: list[JsonDict] = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
    return None


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    response_url: str,
    user_id: str = "U0001",
    user_name: str = "alice",
    channel_id: str = "C0001",
    channel_name: str = "general",
    message: JsonDict | None = None,
    container: JsonDict | None = None,
    block_id: str | None = None,
    button_text: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
    trigger_id: str | None = None,
) -> JsonDict:
    """A ``block_actions`` payload for a button click.

    If ``message`` has blocks containing a button with ``action_id``, its block_id, text
    and (unless given) value are taken from there, as Slack would.
    """
    now = time.time()
    msg = copy.deepcopy(message) if message is not None else None
    element: JsonDict = {}
    if msg is not None:
        msg.setdefault("type", "message")
        msg.setdefault("ts", f"{now:.6f}")
        found = _find_element(msg.get("blocks") or [], action_id)
        if found is not None:
            block, element = found
            block_id = block_id or block.get("block_id")
    if value is None:
        value = element.get("value")
    text = button_text or (element.get("text") or {}).get("text") or "Button"
    action: JsonDict = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_urlsafe(4)[:5],
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "type": element.get("type", "button"),
        "action_ts": f"{now:.6f}",
    }
    if value is not None:
        action["value"] = value
    if "style" in element:
        action["style"] = element["style"]
    if container is None:
        container = {
            "type": "message",
            "message_ts": msg["ts"] if msg is not None else f"{now:.6f}",
            "channel_id": channel_id,
            "is_ephemeral": msg is None,
        }
    payload: JsonDict = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": container,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if msg is not None:
        payload["message"] = msg
    return payload


def event_callback_payload(
    event: JsonDict,
    *,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
) -> JsonDict:
    """An Events API ``event_callback`` wrapping ``event``."""
    return {
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def encode_slash_command(payload: dict[str, str]) -> bytes:
    """HTTP-mode body of a slash command (form-encoded fields)."""
    return urlencode(payload).encode()


def encode_interaction(payload: JsonDict) -> bytes:
    """HTTP-mode body of an interaction (form field ``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def block_kit_errors(blocks: Any, *, max_blocks: int = 50) -> list[str]:
    """The Block Kit limits Slack enforces (a subset), as ``invalid_blocks`` messages."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"must be less than {max_blocks + 1} items [json-pointer:/blocks]")
    seen_block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"invalid block {where}]")
            continue
        bid = block.get("block_id")
        if bid is not None:
            if len(bid) > 255:
                errors.append(f"must be less than 256 characters {where}/block_id]")
            if bid in seen_block_ids:
                errors.append(f"duplicate block_id {where}/block_id]")
            seen_block_ids.add(bid)
        kind = block["type"]
        if kind == "section":
            text = _text_of(block.get("text"))
            fields = block.get("fields") or []
            if "text" in block and not 1 <= len(text) <= 3000:
                errors.append(f"must be between 1 and 3000 characters {where}/text]")
            if "text" not in block and not fields:
                errors.append(f"must provide either text or fields {where}]")
            if len(fields) > 10:
                errors.append(f"must be less than 11 items {where}/fields]")
            for j, f in enumerate(fields):
                if len(_text_of(f)) > 2000:
                    errors.append(f"must be less than 2001 characters {where}/fields/{j}/text]")
        elif kind == "header":
            if len(_text_of(block.get("text"))) > 150:
                errors.append(f"must be less than 151 characters {where}/text/text]")
        elif kind == "actions" and len(block.get("elements") or []) > 25:
            errors.append(f"must be less than 26 items {where}/elements]")
        elif kind == "context" and len(block.get("elements") or []) > 10:
            errors.append(f"must be less than 11 items {where}/elements]")
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if not isinstance(el, dict) or el.get("type") != "button":
                continue
            if len(_text_of(el.get("text"))) > 75:
                errors.append(f"button text must be less than 76 characters {where}]")
            if len(el.get("value", "")) > 2000:
                errors.append(f"button value must be less than 2001 characters {where}]")
            if len(el.get("url", "")) > 3000:
                errors.append(f"button url must be less than 3001 characters {where}]")
            if len(el.get("action_id", "")) > 255:
                errors.append(f"action_id must be less than 256 characters {where}]")
    return errors


def _maybe_json(value: Any) -> Any:
    """Form-encoded calls carry blocks/attachments as JSON strings."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ------------------------------------------------------------------------ stand-in


class SlackStandIn:
    """Slack on 127.0.0.1: Web API under /api/, response_urls, Socket Mode at /socket."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        signing_secret: str = "test-secret",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.scopes = ["commands", "chat:write", "chat:write.public"]

        self.calls: list[ApiCall] = []
        self.channels: dict[str, JsonDict] = {}
        self.users: dict[str, JsonDict] = {}
        self.add_channel("C0001", "general")
        self.add_channel("C0002", "random")
        self.add_user("U0001", "alice", tz="Europe/Berlin")
        self.add_user("U0002", "bob", tz="America/New_York")
        self.add_user(BOT_USER_ID, BOT_USER_NAME, is_bot=True)

        self.response_delay: float = 0.0  # seconds before a response_url answers
        self.socket_connections = 0  # WebSocket connections accepted so far
        self.socket_received: list[JsonDict] = []  # every JSON message from the app

        self._messages: dict[str, list[JsonDict]] = {}
        self._replies: dict[tuple[str, str], list[JsonDict]] = {}
        self._ephemeral: dict[str, list[JsonDict]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._ts_counter = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[JsonDict]] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start listening on a free port on 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/respond/{rid}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close WebSockets and stop the server."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")
        for fut in self._pending_acks.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

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

    # ----------------------------------------------------------- world set-up

    def add_channel(self, channel_id: str, name: str, **extra: Any) -> None:
        """Make ``conversations.info`` know a channel."""
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
            "created": 1600000000,
            "creator": "U0001",
            **extra,
        }

    def add_user(self, user_id: str, name: str, *, tz: str = "UTC", **extra: Any) -> None:
        """Make ``users.info`` know a user."""
        offset = ZoneInfo(tz).utcoffset(datetime.now())
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": name.title(),
            "deleted": False,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": name.title()},
            **extra,
        }

    # -------------------------------------------------------------- Web API

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int | None = 1,
        error: str = "ratelimited",
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` and ``{"ok": false}``."""
        self._faults.setdefault(method, []).extend(
            _Fault(status, retry_after, error, None) for _ in range(times)
        )

    def fail_next_html(
        self, method: str, times: int = 1, status: int = 500, body: str = DEFAULT_HTML_ERROR
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an HTML error page."""
        self._faults.setdefault(method, []).extend(_Fault(status, None, "", body) for _ in range(times))

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[ApiCall]:
        """Recorded calls of ``method``; ``ok`` filters on Slack's answer."""
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    async def wait_for_call(
        self, method: str, count: int = 1, timeout: float = 5.0, *, ok: bool | None = None
    ) -> list[ApiCall]:
        """Wait until ``count`` calls of ``method`` arrived; return them."""
        await self._wait_until(
            lambda: len(self.calls_to(method, ok=ok)) >= count,
            timeout,
            lambda: (
                f"expected {count} call(s) to {method}"
                f"{'' if ok is None else f' with ok={ok}'}, got "
                f"{len(self.calls_to(method, ok=ok))}; received: {self._calls_summary()}"
            ),
        )
        return self.calls_to(method, ok=ok)

    def messages(self, channel: str) -> list[JsonDict]:
        """Top-level messages in ``channel`` (current content, oldest first)."""
        return copy.deepcopy(self._messages.get(channel, []))

    def replies(self, channel: str, thread_ts: str) -> list[JsonDict]:
        """Thread replies to ``thread_ts`` in ``channel``."""
        return copy.deepcopy(self._replies.get((channel, thread_ts), []))

    def ephemeral_messages(self, channel: str) -> list[JsonDict]:
        """Ephemeral messages posted in ``channel`` (each has the recipient in ``user``)."""
        return copy.deepcopy(self._ephemeral.get(channel, []))

    def message(self, channel: str, ts: str) -> JsonDict | None:
        """One message (top-level or reply) by ts."""
        found = self._find_message(channel, ts)
        return copy.deepcopy(found) if found is not None else None

    # ---------------------------------------------------------- response_url

    def new_response_url(
        self,
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """A fresh response_url; with ``message_ts`` it can replace/delete that message."""
        url = f"{self.url}respond/{uuid.uuid4()}"
        self._response_urls[url] = _ResponseUrl(url, channel_id, message_ts, user_id)
        return url

    def response_posts(self, url: str) -> list[ResponsePost]:
        """Every POST to ``url``, accepted or rejected, in order."""
        state = self._response_urls.get(url)
        return list(state.posts) if state is not None else []

    def responses(self, url: str) -> list[JsonDict]:
        """Bodies Slack accepted on ``url``, in order."""
        return [p.body for p in self.response_posts(url) if p.accepted]

    def rejected_responses(self, url: str) -> list[ResponsePost]:
        """POSTs to ``url`` Slack refused (e.g. ``used_url``)."""
        return [p for p in self.response_posts(url) if not p.accepted]

    async def wait_for_response(self, url: str, count: int = 1, timeout: float = 5.0) -> list[JsonDict]:
        """Wait until ``count`` posts to ``url`` were accepted; return their bodies."""
        await self._wait_until(
            lambda: len(self.responses(url)) >= count,
            timeout,
            lambda: (
                f"expected {count} accepted post(s) to {url}, got {len(self.responses(url))}; "
                f"posts: {[(p.status, p.body) for p in self.response_posts(url)]}"
            ),
        )
        return self.responses(url)

    # ------------------------------------------------------------ Socket Mode

    @property
    def socket_open(self) -> bool:
        """True while at least one app WebSocket is open."""
        return any(not ws.closed for ws in self._sockets)

    async def wait_connected(self, timeout: float = 10.0, *, connections: int = 1) -> None:
        """Wait until an app WebSocket is open and ``connections`` were made in total."""
        await self._wait_until(
            lambda: self.socket_open and self.socket_connections >= connections,
            timeout,
            lambda: (
                f"expected an open Socket Mode connection (#{connections}); "
                f"connections so far: {self.socket_connections}, open: {self.socket_open}; "
                f"apps.connections.open answers: {self._statuses('apps.connections.open')}"
            ),
        )

    async def send_envelope(
        self,
        type_: str,
        payload: JsonDict,
        accepts_response_payload: bool = True,
        timeout: float = 5.0,
    ) -> EnvelopeResult:
        """Send an envelope over the current WebSocket and wait for the app's ack."""
        ws = self._current_socket()
        envelope_id = str(uuid.uuid4())
        envelope: JsonDict = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type_ == "events_api":
            envelope["retry_attempt"] = 0
            envelope["retry_reason"] = ""
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = fut
        started = time.monotonic()
        try:
            await ws.send_json(envelope)
            ack = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(
                f"no ack for {type_} envelope {envelope_id} within {timeout}s; "
                f"messages from the app so far: {self.socket_received}"
            ) from None
        finally:
            self._pending_acks.pop(envelope_id, None)
        return EnvelopeResult(
            envelope_id=envelope_id,
            type=type_,
            payload=payload,
            ack=ack,
            ack_payload=ack.get("payload"),
            ack_seconds=time.monotonic() - started,
        )

    async def send_slash_command(
        self,
        text: str,
        user_id: str = "U0001",
        channel_id: str = "C0001",
        command: str = "/cde",
        timeout: float = 5.0,
    ) -> tuple[EnvelopeResult, str]:
        """Send a slash command envelope; return the ack and the command's response_url."""
        response_url = self.new_response_url(channel_id=channel_id, user_id=user_id)
        payload = slash_command_payload(
            text,
            response_url=response_url,
            user_id=user_id,
            user_name=self._user_name(user_id),
            channel_id=channel_id,
            channel_name=self._channel_name(channel_id),
            command=command,
        )
        result = await self.send_envelope("slash_commands", payload, timeout=timeout)
        return result, response_url

    async def send_block_action(
        self,
        action_id: str,
        value: str | None = None,
        user_id: str = "U0001",
        channel_id: str = "C0001",
        message: JsonDict | None = None,
        response_url: str | None = None,
        container: JsonDict | None = None,
        timeout: float = 5.0,
    ) -> tuple[EnvelopeResult, str]:
        """Send a button click (``interactive`` envelope); return the ack and response_url."""
        if response_url is None:
            response_url = self.new_response_url(
                channel_id=channel_id,
                message_ts=message.get("ts") if message is not None else None,
                user_id=user_id,
            )
        payload = block_actions_payload(
            action_id,
            value,
            response_url=response_url,
            user_id=user_id,
            user_name=self._user_name(user_id),
            channel_id=channel_id,
            channel_name=self._channel_name(channel_id),
            message=message,
            container=container,
        )
        result = await self.send_envelope("interactive", payload, timeout=timeout)
        return result, response_url

    async def send_event(self, event: JsonDict, timeout: float = 5.0) -> EnvelopeResult:
        """Send an Events API envelope wrapping ``event``."""
        return await self.send_envelope(
            "events_api",
            event_callback_payload(event),
            accepts_response_payload=False,
            timeout=timeout,
        )

    async def disconnect_socket(self, reason: str | None = None) -> None:
        """Close the current WebSocket; with ``reason`` send Slack's disconnect message first."""
        ws = self._current_socket()
        if reason is not None:
            await ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}}
            )
        await ws.close(code=1000)

    # ---------------------------------------------------------------- internals

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

    def _statuses(self, method: str) -> list[int]:
        return [c.status for c in self.calls_to(method)]

    def _calls_summary(self) -> str:
        if not self.calls:
            return "no Web API calls"
        return ", ".join(f"{c.method}[{c.status}{'' if c.ok else ' not ok'}]" for c in self.calls)

    def _next_ts(self) -> str:
        self._ts_counter += 1
        micros = self._ts_counter * 100
        return f"{1700000000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _user_name(self, user_id: str) -> str:
        return self.users.get(user_id, {}).get("name", user_id.lower())

    def _channel_name(self, channel_id: str) -> str:
        return self.channels.get(channel_id, {}).get("name", channel_id.lower())

    def _current_socket(self) -> web.WebSocketResponse:
        for ws in reversed(self._sockets):
            if not ws.closed:
                return ws
        raise AssertionError(
            f"no open Socket Mode connection (connections so far: {self.socket_connections})"
        )

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

    async def _read_params(self, request: web.Request) -> JsonDict:
        params: JsonDict = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v if isinstance(v, str) else str(v) for k, v in form.items()})
        return params

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ValueError:
            params = {}
            call = ApiCall(method, params, dict(request.headers), time.monotonic())
            return self._answer(call, {"ok": False, "error": "invalid_json"})
        call = ApiCall(method, params, dict(request.headers), time.monotonic())

        faults = self._faults.get(method)
        if faults:
            fault = faults.pop(0)
            call.status, call.injected = fault.status, True
            if fault.html is not None:
                call.response = fault.html
                self._record(call)
                return web.Response(status=fault.status, text=fault.html, content_type="text/html")
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return self._answer(call, {"ok": False, "error": fault.error}, headers=headers)

        handler = self._api_methods().get(method)
        if handler is None:
            return self._answer(call, {"ok": False, "error": "unknown_method", "req_method": method})

        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.get("token")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            # Real Slack tells a known-but-wrong token type apart from garbage.
            error = "not_allowed_token_type" if token in (self.bot_token, self.app_token) else "invalid_auth"
            return self._answer(call, {"ok": False, "error": error})
        return self._answer(call, handler(params))

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._notify()

    def _answer(self, call: ApiCall, body: JsonDict, headers: dict[str, str] | None = None) -> web.Response:
        call.response = body
        self._record(call)
        # Slack names the token's scopes on every Web API answer.
        headers = {"x-oauth-scopes": ",".join(self.scopes), **(headers or {})}
        return web.json_response(body, status=call.status, headers=headers)

    def _api_methods(self) -> dict[str, Callable[[JsonDict], JsonDict]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "apps.connections.open": self._apps_connections_open,
        }

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": f"{WORKSPACE_URL}/",
            "team": "Test",
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _content_error(self, params: JsonDict) -> JsonDict | None:
        """Slack's checks on message content; None when fine."""
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        blocks = _maybe_json(params.get("blocks"))
        if blocks is not None:
            errors = block_kit_errors(blocks)
            if errors:
                return {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": errors,
                    "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
                }
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
                value = copy.deepcopy(_maybe_json(params[key]))
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

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        error = self._content_error(params)
        if error is not None:
            return error
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        channel = str(params["channel"])
        msg = self._build_message(params, self._next_ts())
        self._store_message(channel, msg, params.get("thread_ts"))
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _chat_update(self, params: JsonDict) -> JsonDict:
        error = self._content_error(params)
        if error is not None:
            return error
        channel, ts = str(params["channel"]), params.get("ts")
        msg = self._find_message(channel, ts) if ts else None
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        self._apply_content(msg, params)
        msg["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": msg["text"],
            "message": copy.deepcopy(msg),
        }

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        error = self._content_error(params)
        if error is not None:
            return error
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        channel = str(params["channel"])
        msg = self._build_message(params, self._next_ts())
        msg["recipient"] = params["user"]
        self._ephemeral.setdefault(channel, []).append(msg)
        return {"ok": True, "message_ts": msg["ts"]}

    def _chat_get_permalink(self, params: JsonDict) -> JsonDict:
        channel, ts = params.get("channel"), params.get("message_ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not ts or self._find_message(str(channel), ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"{WORKSPACE_URL}/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _conversations_info(self, params: JsonDict) -> JsonDict:
        channel = self.channels.get(str(params.get("channel")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": copy.deepcopy(channel)}

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": copy.deepcopy(user)}

    def _apps_connections_open(self, params: JsonDict) -> JsonDict:
        ticket = uuid.uuid4()
        return {
            "ok": True,
            "url": f"ws://127.0.0.1:{self._port}/socket?ticket={ticket}&app_id={APP_ID}",
        }

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url = f"{self.url}respond/{request.match_info['rid']}"
        state = self._response_urls.setdefault(url, _ResponseUrl(url, None, None, None))
        now = time.monotonic()
        raw = await request.read()
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        recent = [p for p in state.posts if p.accepted and now - p.time < RESPONSE_URL_WINDOW_SECONDS]
        status, answer = 200, "ok"
        if not isinstance(body, dict) or "_raw" in body:
            status, answer = 400, "invalid_payload"
        elif len(recent) >= RESPONSE_URL_MAX_POSTS:
            status, answer = 404, "used_url"
        elif body.get("blocks") is not None and block_kit_errors(body["blocks"]):
            status, answer = 400, "invalid_blocks"
        elif not (body.get("text") or body.get("blocks") or body.get("delete_original")):
            status, answer = 400, "no_text"
        if not isinstance(body, dict):
            body = {"_raw": body}
        post = ResponsePost(url, body, now, status, status == 200, answer)
        state.posts.append(post)
        if post.accepted:
            self._apply_response(state, body)
        self._notify()
        return web.Response(status=status, text=answer, content_type="text/html")

    def _apply_response(self, state: _ResponseUrl, body: JsonDict) -> None:
        """What Slack does with an accepted response_url post."""
        channel = state.channel_id
        if channel is None:
            return
        original = self._find_message(channel, state.message_ts) if state.message_ts else None
        if body.get("delete_original") and original is not None:
            self._messages[channel] = [m for m in self._messages.get(channel, []) if m is not original]
        elif body.get("replace_original") and original is not None:
            # Slack swaps the whole message, so parts the new body leaves out disappear.
            for key in ("blocks", "attachments"):
                original.pop(key, None)
            self._apply_content(original, body)
            original["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        elif body.get("response_type") == "in_channel":
            msg = self._build_message(body, self._next_ts())
            self._store_message(channel, msg, body.get("thread_ts"))
        else:
            msg = self._build_message(body, self._next_ts())
            msg["recipient"] = state.user_id
            self._ephemeral.setdefault(channel, []).append(msg)

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        # autoping answers the client's "sdk-ping-pong:<t>" pings with the same data,
        # which is how slack_sdk's SocketModeClient decides the link is alive.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": sum(1 for s in self._sockets if not s.closed),
                "debug_info": {
                    "host": "applink-standin",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        self._notify()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    data = {"_raw": msg.data}
                self.socket_received.append(data)
                fut = self._pending_acks.get(data.get("envelope_id", "")) if isinstance(data, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(data)
                self._notify()
        finally:
            self._sockets.remove(ws)
            self._notify()
        return ws
