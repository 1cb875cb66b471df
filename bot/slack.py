"""The Slack Web API client, built once from settings.

`SLACK_API_URL` is honoured everywhere (Web API calls and Socket Mode's
`apps.connections.open`), so the bot runs against Slack, GovSlack or a local stand-in.
"""

from __future__ import annotations

import asyncio
import time
from math import inf

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.render import Message

WEB_API_TIMEOUT = 15  # seconds per call
RATE_LIMIT_RETRIES = 5  # each waits as long as Slack's Retry-After says


def web_client(settings: Settings) -> AsyncWebClient:
    """An `AsyncWebClient` with the bot token that retries connection errors and 429s."""
    base_url = str(settings.slack_api_url)
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=WEB_API_TIMEOUT,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


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
                response = await self._client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
                    **message.as_kwargs(),
                )
            finally:
                self._last_post[channel] = time.monotonic()
        return str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Draw an existing message again."""
        await self._client.chat_update(channel=channel, ts=ts, **message.as_kwargs())


# Errors after which posting to the channel cannot succeed until someone acts there.
CHANNEL_GONE = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "restricted_action",
    "team_access_not_granted", "access_denied",
})


def slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
