"""The stand-in's response_urls: at most five posts each within 30 minutes, checked like
Slack checks them, and applied to the channel (replace, delete, in_channel) as Slack would.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.standins.slack.blockkit import block_kit_errors
from tests.standins.slack.payloads import BOT_USER_ID
from tests.standins.slack.records import ResponsePost, ResponseUrl
from tests.standins.slack.state import SlackState

JsonDict = dict[str, Any]

# Slack's own response_url budget: 5 posts within 30 minutes.
RESPONSE_URL_MAX_POSTS = 5
RESPONSE_URL_WINDOW_SECONDS = 30 * 60


def _refusal(body: Any, recent: int) -> tuple[int, str]:
    """Slack's status and answer for a post to a response_url already used `recent` times."""
    if not isinstance(body, dict) or "_raw" in body:
        return 400, "invalid_payload"
    if recent >= RESPONSE_URL_MAX_POSTS:
        return 404, "used_url"
    if body.get("blocks") is not None and block_kit_errors(body["blocks"]):
        return 400, "invalid_blocks"
    if not (body.get("text") or body.get("blocks") or body.get("delete_original")):
        return 400, "no_text"
    return 200, "ok"


class ResponseUrls(SlackState):
    """response_urls handed out with each command or click, and what was posted to them."""

    def new_response_url(
        self,
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """A fresh response_url; with ``message_ts`` it can replace/delete that message."""
        url = f"{self.url}respond/{uuid.uuid4()}"
        self._response_urls[url] = ResponseUrl(url, channel_id, message_ts, user_id)
        return url

    def response_posts(self, url: str) -> list[ResponsePost]:
        """Every POST to ``url``, accepted or rejected, in order."""
        state = self._response_urls.get(url)
        return list(state.posts) if state is not None else []

    def responses(self, url: str) -> list[JsonDict]:
        """Bodies Slack accepted on ``url``, in order."""
        return [p.body for p in self.response_posts(url) if p.accepted]

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

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url = f"{self.url}respond/{request.match_info['rid']}"
        state = self._response_urls.setdefault(url, ResponseUrl(url, None, None, None))
        now = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        recent = [p for p in state.posts if p.accepted and now - p.time < RESPONSE_URL_WINDOW_SECONDS]
        status, answer = _refusal(body, len(recent))
        if not isinstance(body, dict):
            body = {"_raw": body}
        post = ResponsePost(url, body, now, status, status == 200, answer)
        state.posts.append(post)
        if post.accepted:
            self._apply_response(state, body)
        self._notify()
        return web.Response(status=status, text=answer, content_type="text/html")

    def _apply_response(self, state: ResponseUrl, body: JsonDict) -> None:
        """What Slack does with an accepted response_url post (an ephemeral one is only
        recorded: the stand-in keeps no ephemeral messages).
        """
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
