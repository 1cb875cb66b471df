"""Posting and updating messages in channels, in the domain's words, with Slack's errors
mapped once, here, to a small tree the callers catch:

    SlackError                 anything that kept a post or an update from Slack
    ├── PostRefused            Slack answered and said no (`ok: false`); `.code` is its error
    │   ├── ChannelUnavailable no access to the channel until someone acts there
    │   └── MessageRefused     Slack will never take this message as it is
    └── SlackUnavailable       no usable answer: 429 left after the client's retries, 5xx,
        │                      a timeout, a broken connection, a body that is not Slack JSON
        └── RateLimited        a 429: nothing was posted; `.retry_after` says when to retry

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

    @property
    def maybe_taken(self) -> bool:
        """Slack may have taken the call all the same (a timeout, a broken connection, a
        5xx): nothing tells it did not.
        """
        return True


class RateLimited(SlackUnavailable):
    """Slack answered 429: the call was not carried out; try again after `retry_after` s."""

    def __init__(self, code: str, *, retry_after: float, status: int | None = 429) -> None:
        super().__init__(code, status=status)
        self.retry_after = retry_after

    @property
    def maybe_taken(self) -> bool:
        return False


# Message metadata event type of every post the bot tags (the key names what it tells).
EVENT_TYPE = "cde_bot_notice"


def metadata(key: str) -> dict[str, Any]:
    """The Slack message metadata a post tagged with `key` carries."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key}}


def tagged_key(message: dict[str, Any]) -> str | None:
    """The key a message from Slack's history was tagged with, if the bot tagged it."""
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return None
    payload = meta.get("event_payload")
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


# Refusals of `conversations.history`/`.replies` that mean the bot cannot read a channel's
# history (`missing_scope`: without channels:history/groups:history), rather than "later".
NO_HISTORY = frozenset({"missing_scope", "not_allowed_token_type", "no_permission",
                        "channel_not_found", "not_in_channel"})
# Pages (of 200 messages) read looking for one tagged post since its attempt began.
HISTORY_PAGES = 5


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
    if status == 429:
        return RateLimited(code if isinstance(code, str) else "ratelimited",
                           retry_after=_retry_after(response), status=status)
    if status is not None and status >= 500:
        return SlackUnavailable(code if isinstance(code, str) else f"http_{status}", status=status)
    if not isinstance(code, str):
        return SlackUnavailable(f"http_{status}" if status else "not_slack_json", status=status)
    return refusal(code, status)


def _retry_after(response: Any) -> float:
    """Slack's Retry-After (seconds) on a 429; 1 s when it is missing or not a number."""
    headers = getattr(response, "headers", None) or {}
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(text))
            except (TypeError, ValueError):
                break
    return 1.0


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
    client's rate-limit handler after Slack's Retry-After, holding up only that channel's
    posts. A 429 left after those retries is raised as `RateLimited`, for the caller to
    wait out (the outbox does, per channel).
    """

    def __init__(self, client: AsyncWebClient, *, min_interval: float = 1.0) -> None:
        self._client = client
        self._min_interval = min_interval
        self._last_post: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> str:
        """Post `message` in `channel` (in a thread when `thread_ts` is given); its ts.
        `key` names what it tells, carried as message metadata (see `find_tagged`).
        """
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wait = self._last_post.get(channel, -inf) + self._min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            extra = {"metadata": metadata(key)} if key else {}
            try:
                return await self._post(channel, {**message.as_kwargs(), **extra}, thread_ts)
            except MessageRefused:
                if not message.blocks:
                    raise
                # Slack will never take these blocks; the plain text still tells the news.
                return await self._post(channel, {"text": message.text, **extra}, thread_ts)
            finally:
                self._last_post[channel] = time.monotonic()

    async def find_tagged(self, channel: str, key: str, *, oldest: float,
                          thread_ts: str | None = None) -> str | None:
        """The ts of the message tagged with `key` posted since `oldest` (a Unix time) in
        `channel`, or in the thread `thread_ts`; None when there is none. Raises
        `PostRefused` (`missing_scope` without channels:history/groups:history).
        """
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            args: dict[str, Any] = {"channel": channel, "oldest": f"{oldest:.6f}", "limit": 200,
                                    "include_all_metadata": True}
            if cursor:
                args["cursor"] = cursor
            if thread_ts:
                data = await _call(self._client.conversations_replies(ts=thread_ts, **args))
            else:
                data = await _call(self._client.conversations_history(**args))
            for found in data.get("messages") or []:
                if isinstance(found, dict) and tagged_key(found) == key:
                    ts = found.get("ts")
                    return ts if isinstance(ts, str) else None
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

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
