"""The Slack Web API client, built once from settings.

`SLACK_API_URL` is honoured everywhere (Web API calls and Socket Mode's
`apps.connections.open`), so the bot runs against Slack, GovSlack or a local stand-in.
"""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

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
