"""Posting and updating messages in channels, in the domain's words, with Slack's errors
mapped once, here, to a small tree the callers catch:

    SlackError                 anything that kept a post or an update from Slack
    ├── PostRefused            Slack answered and said no (`ok: false`); `.code` is its error
    │   ├── ChannelUnavailable no access to the channel until someone acts there
    │   └── MessageRefused     Slack will never take this message as it is
    └── SlackUnavailable       no usable answer: 429 left after the client's retries, 5xx,
                               a timeout, a broken connection, a body that is not Slack JSON

Every error has a `.code` fit for a log line: Slack's error code, or else a word derived
from what failed (`http_503`, `TimeoutError`), never an exception's text, which may quote
a URL or a token. The exception it was mapped from is its `__cause__`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from math import inf
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.message import Message

# Errors after which posting to the channel cannot succeed until someone acts there.
CHANNEL_GONE = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "restricted_action",
    "team_access_not_granted", "access_denied",
})
# Errors about the message itself: sending the same again cannot succeed.
REFUSED_CONTENT = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text"})


class SlackError(Exception):
    """A post or an update did not reach Slack, or Slack did not take it."""

    def __init__(self, code: str, *, status: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


class PostRefused(SlackError):
    """Slack answered `ok: false` with the error `code`."""


class ChannelUnavailable(PostRefused):
    """The bot cannot post in the channel (gone, archived, not invited): trying again cannot
    help until someone acts there.
    """


class MessageRefused(PostRefused):
    """Slack will never take this message (blocks it rejects, text too long)."""


class SlackUnavailable(SlackError):
    """No usable answer from Slack: worth trying again later."""


def refusal(code: str, status: int | None = None) -> PostRefused:
    """The `PostRefused` for Slack's error `code`."""
    if code in CHANNEL_GONE:
        return ChannelUnavailable(code, status=status)
    if code in REFUSED_CONTENT:
        return MessageRefused(code, status=status)
    return PostRefused(code, status=status)


def from_api_error(exc: SlackApiError) -> SlackError:
    """What a `SlackApiError` means. Its `response` is usually a Slack response, but may be
    a bare HTTP response, and its body may be Slack JSON, a load balancer's text or nothing.
    """
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    status = status if isinstance(status, int) else None
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    if status is not None and (status == 429 or status >= 500):
        return SlackUnavailable(code if isinstance(code, str) else f"http_{status}", status=status)
    if not isinstance(code, str):
        return SlackUnavailable(f"http_{status}" if status else "not_slack_json", status=status)
    return refusal(code, status)


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Raise whatever the Web API call raises as a `SlackError`, chained to the original."""
    try:
        yield
    except SlackApiError as exc:
        raise from_api_error(exc) from exc
    except (TimeoutError, aiohttp.ClientError, SlackClientError, OSError) as exc:
        # A timeout or a broken connection left after the client's own retries.
        raise SlackUnavailable(type(exc).__name__) from exc
    except AttributeError as exc:
        # slack_sdk checks a 200 answer with `data.get("ok")`, which the text of a text/plain
        # body (a proxy's page, not Slack at all) does not have. Any other AttributeError is
        # a bug, and stays one.
        if not (isinstance(exc.obj, str) and exc.name == "get"):
            raise
        raise SlackUnavailable("not_slack_json") from exc


class SlackPoster:
    """Posts and updates messages, in the domain's words; raises only `SlackError`s.

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
                return await self._post(channel, message.as_kwargs(), thread_ts)
            except MessageRefused:
                if not message.blocks:
                    raise
                # Slack will never take these blocks; the plain text still tells the news.
                return await self._post(channel, {"text": message.text}, thread_ts)
            finally:
                self._last_post[channel] = time.monotonic()

    async def _post(self, channel: str, content: dict[str, Any], thread_ts: str | None) -> str:
        response = await _call(self._client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **content
        ))
        ts = response.get("ts") if isinstance(response, dict) else None
        if not isinstance(ts, str):
            raise SlackUnavailable("no_ts")  # accepted, says Slack, but not where
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Draw an existing message again."""
        await _call(self._client.chat_update(channel=channel, ts=ts, **message.as_kwargs()))


async def _call(call: Awaitable[Any]) -> dict[str, Any]:
    """The answer's data, with errors mapped."""
    with mapped_errors():
        response = await call
    data = getattr(response, "data", None)
    return data if isinstance(data, dict) else {}
