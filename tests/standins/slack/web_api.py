"""The stand-in's Web API under /api/: the methods the bot calls, token checks, and
faults injected on demand (rate limits, errors, HTML pages).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.standins.slack.blockkit import block_kit_errors
from tests.standins.slack.payloads import APP_ID, BOT_ID, BOT_USER_ID, BOT_USER_NAME, TEAM_ID, WORKSPACE_URL
from tests.standins.slack.records import ApiCall, Fault
from tests.standins.slack.state import SlackState, maybe_json

JsonDict = dict[str, Any]

DEFAULT_HTML_ERROR = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)


class WebApi(SlackState):
    """Web API methods, answered like Slack: ``auth.test``, ``chat.postMessage``,
    ``chat.update``, ``conversations.history``/``.replies`` (with message metadata, and
    ``missing_scope`` without channels:history/groups:history),
    ``usergroups.users.list`` (``missing_scope`` without usergroups:read) and
    ``apps.connections.open``; any other is an ``unknown_method``.
    """

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int | None = 1,
        error: str = "ratelimited",
        channel: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (naming ``channel``, when given)
        with ``status`` and ``{"ok": false}``.
        """
        self._faults.setdefault(method, []).extend(
            Fault(status, retry_after, error, None, channel) for _ in range(times)
        )

    def fail_next_html(
        self, method: str, times: int = 1, status: int = 500, body: str = DEFAULT_HTML_ERROR
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an HTML error page."""
        self._faults.setdefault(method, []).extend(Fault(status, None, "", body) for _ in range(times))

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
            call = ApiCall(method, {}, dict(request.headers), time.monotonic())
            return self._answer(call, {"ok": False, "error": "invalid_json"})
        call = ApiCall(method, params, dict(request.headers), time.monotonic())
        fault = self._take_fault(method, params)
        if fault is not None:
            return self._faulty(call, fault)
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
        body = handler(params)
        if body.get("ok") is True and method in self.on_accept:
            # Slack took the call; what happens before its answer leaves (a crash) is the test's.
            call.response = body
            self.on_accept[method](call)
        return self._answer(call, body)

    def _take_fault(self, method: str, params: JsonDict) -> Fault | None:
        faults = self._faults.get(method) or []
        for index, fault in enumerate(faults):
            if fault.channel is None or fault.channel == params.get("channel"):
                return faults.pop(index)
        return None

    def _faulty(self, call: ApiCall, fault: Fault) -> web.Response:
        call.status, call.injected = fault.status, True
        if fault.html is not None:
            call.response = fault.html
            self._record(call)
            return web.Response(status=fault.status, text=fault.html, content_type="text/html")
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return self._answer(call, {"ok": False, "error": fault.error}, headers=headers)

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
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "usergroups.users.list": self._usergroups_users_list,
            "apps.connections.open": self._apps_connections_open,
        }

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": f"{WORKSPACE_URL}/",
            "team": self.team_name,
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
        blocks = maybe_json(params.get("blocks"))
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

    def _history_refusal(self, channel: str) -> JsonDict | None:
        """``missing_scope`` when the token may not read this channel's history."""
        needed = "groups:history" if channel.startswith("G") else "channels:history"
        if needed in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": needed,
                "provided": ",".join(self.scopes)}

    @staticmethod
    def _listed(messages: list[JsonDict], params: JsonDict) -> list[JsonDict]:
        """Messages since ``oldest``, metadata only with ``include_all_metadata``."""
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        listed = []
        for msg in messages:
            if float(msg["ts"]) < oldest:
                continue
            shown = copy.deepcopy(msg)
            if not with_metadata:
                shown.pop("metadata", None)
            listed.append(shown)
        return listed

    def _conversations_history(self, params: JsonDict) -> JsonDict:
        channel = str(params.get("channel") or "")
        refusal = self._history_refusal(channel)
        if refusal is not None:
            return refusal
        # Newest first, as Slack lists a channel.
        messages = self._listed(list(reversed(self._messages.get(channel, []))), params)
        return {"ok": True, "messages": messages, "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _conversations_replies(self, params: JsonDict) -> JsonDict:
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        refusal = self._history_refusal(channel)
        if refusal is not None:
            return refusal
        parent = next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        messages = self._listed([parent, *self._replies.get((channel, ts), [])], params)
        return {"ok": True, "messages": messages, "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _usergroups_users_list(self, params: JsonDict) -> JsonDict:
        if "usergroups:read" not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "usergroups:read",
                    "provided": ",".join(self.scopes)}
        group = str(params.get("usergroup") or "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _apps_connections_open(self, params: JsonDict) -> JsonDict:
        ticket = uuid.uuid4()
        return {
            "ok": True,
            "url": f"ws://127.0.0.1:{self._port}/socket?ticket={ticket}&app_id={APP_ID}",
        }
