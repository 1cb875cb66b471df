"""The Slack Web API client, built once from settings.

`SLACK_API_URL` is honoured everywhere (Web API calls and Socket Mode's
`apps.connections.open`), so the bot runs against Slack, GovSlack or a local stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

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
