"""The Slack Web API client, built once from settings.

`SLACK_API_URL` is honoured everywhere (Web API calls and Socket Mode's
`apps.connections.open`), so the bot runs against Slack, GovSlack or a local stand-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from math import inf
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import Settings
from bot.lookups.render import Message

WEB_API_TIMEOUT = 15  # seconds per call
RATE_LIMIT_RETRIES = 5  # each waits as long as Slack's Retry-After says


def web_client(settings: Settings, *, on_rate_limited: Callable[[str], None] | None = None) -> AsyncWebClient:
    """An `AsyncWebClient` with the bot token that retries connection errors and 429s;
    `on_rate_limited` is told the API method of each 429 (for metrics).
    """
    base_url = str(settings.slack_api_url)
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=WEB_API_TIMEOUT,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            CountingRateLimitHandler(on_rate_limited, max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


class CountingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handling (wait for Retry-After, try again), telling `on_rate_limited`
    about every 429 first, including the last one that is not retried.
    """

    def __init__(self, on_rate_limited: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_rate_limited = on_rate_limited

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if self._on_rate_limited is not None and response is not None and response.status_code == 429:
            self._on_rate_limited(api_method(request.url))
        return await super().can_retry_async(state=state, request=request, response=response, error=error)


def api_method(url: str) -> str:
    """The Web API method a request URL calls: `.../api/chat.postMessage` -> `chat.postMessage`."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


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
