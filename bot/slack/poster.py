"""Posting and updating messages in channels, in the domain's words, with Slack's errors
told apart for the callers.
"""

from __future__ import annotations

import asyncio
import time
from math import inf

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.message import Message


class SlackPoster:
    """Posts and updates messages, in the domain's words.

    Slack allows about one message per second per channel, so posts to one channel are
    spaced at least `min_interval` apart; 429s that still happen are retried by the
    client's rate-limit handler after Slack's Retry-After.
    """

    def __init__(self, client: AsyncWebClient, *, min_interval: float = 1.0) -> None:
        self._client = client
        self._min_interval = min_interval
        self._last_post: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None) -> str:
        """Post `message` in `channel` (in a thread when `thread_ts` is given); its ts."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wait = self._last_post.get(channel, -inf) + self._min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                response = await self._post(channel, message.as_kwargs(), thread_ts)
            except SlackApiError as exc:
                if slack_error(exc) not in REFUSED_CONTENT or not message.blocks:
                    raise
                # Slack will never take these blocks; the plain text still tells the news.
                response = await self._post(channel, {"text": message.text}, thread_ts)
            finally:
                self._last_post[channel] = time.monotonic()
        return str(response["ts"])

    async def _post(self, channel: str, content: dict, thread_ts: str | None) -> AsyncSlackResponse:
        return await self._client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **content
        )

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Draw an existing message again."""
        await self._client.chat_update(channel=channel, ts=ts, **message.as_kwargs())


# Errors after which posting to the channel cannot succeed until someone acts there.
CHANNEL_GONE = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "restricted_action",
    "team_access_not_granted", "access_denied",
})
# Errors about the message itself: sending the same again cannot succeed.
REFUSED_CONTENT = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text"})
PERMANENT_ERRORS = CHANNEL_GONE | REFUSED_CONTENT


def slack_error(exc: BaseException) -> str:
    """What went wrong, fit for a log line: Slack's error code, or else the exception's class
    (never its text, which may quote a URL or a token).
    """
    if not isinstance(exc, SlackApiError):
        return type(exc).__name__
    return str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
